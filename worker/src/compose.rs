//! What a recipient sees: emails (subject, plain text and HTML) and texts, rendered from the
//! templates in `worker/templates` with minijinja (HTML auto-escaped).
//!
//! Rendering is deterministic for a given message: times are shown in the account's time zone
//! and "due in …" is measured from the moment the reminder fired (the event's time), not from
//! the attempt, so a retry sends exactly what the first attempt did.
//!
//! Sender rule for activity reminders with sender USER_ACCOUNT: the email goes through the
//! activity owner's main mailbox's outgoing side, From its address. When the owner has no
//! connected outgoing side, the system account sends it, From the system address with the
//! owner in `Reply-To:`, never a `From:` the sending server cannot vouch for; the message
//! records why ([`Sender::note`]). Late notifications with sender EMAIL are From that address.

pub use api::activities::records::ActivityData;
use api::activities::settings::{ActivitySettings, AlertSender, LateSender};
use api::smtp;
use chrono::{DateTime, Utc};
use entity::{account, contact, event, event::NotificationType, outbox_message, user};
use lettre::message::{header, Mailbox, MultiPart};
use minijinja::{context, Environment, Value};

/// Everything a message is rendered from.
pub struct Facts<'a> {
    pub event: &'a event::Model,
    pub recipient: &'a user::Model,
    pub account: &'a account::Model,
    pub contact: Option<&'a contact::Model>,
    /// The activity's owner, for reminders and escalations.
    pub owner: Option<&'a user::Model>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub struct Templates {
    env: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

macro_rules! templates {
    ($env:ident, $($name:literal),* $(,)?) => {
        $( $env.add_template($name, include_str!(concat!("../templates/", $name))).expect(concat!("template ", $name, " parses")); )*
    };
}

impl Templates {
    pub fn new() -> Self {
        let mut env = Environment::new();
        // `.html` auto-escapes by extension; subjects and texts are plain.
        env.set_auto_escape_callback(|name| if name.ends_with(".html") { minijinja::AutoEscape::Html } else { minijinja::AutoEscape::None });
        templates!(
            env,
            "activity_reminder.subject",
            "activity_reminder.txt",
            "activity_reminder.html",
            "late_activity.subject",
            "late_activity.txt",
            "late_activity.html",
            "notification.subject",
            "notification.txt",
            "notification.html",
            "text.txt",
        );
        Self { env }
    }

    fn render(&self, name: &str, ctx: &Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(ctx)
    }

    pub fn email(&self, facts: &Facts<'_>) -> Result<RenderedEmail, minijinja::Error> {
        let (family, ctx) = context_of(facts);
        let subject = self.render(&format!("{family}.subject"), &ctx)?;
        Ok(RenderedEmail {
            // One line, whatever the title held.
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            text: self.render(&format!("{family}.txt"), &ctx)?,
            html: self.render(&format!("{family}.html"), &ctx)?,
        })
    }

    /// A text message: one line, at most 320 characters (two SMS segments).
    pub fn text(&self, facts: &Facts<'_>) -> Result<String, minijinja::Error> {
        let (_, ctx) = context_of(facts);
        let body = self.render("text.txt", &ctx)?;
        let line = body.split_whitespace().collect::<Vec<_>>().join(" ");
        Ok(if line.chars().count() > 320 { line.chars().take(319).collect::<String>() + "…" } else { line })
    }
}

fn context_of(facts: &Facts<'_>) -> (&'static str, Value) {
    let tz: chrono_tz::Tz = facts.account.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let local = |t: DateTime<Utc>| t.with_timezone(&tz).format("%a %-d %b %Y, %H:%M %Z").to_string();
    let kind = api::notifications::catalog::info(facts.event.notification_type);
    let activity = ActivityData::of(facts.event);
    let family = match (facts.event.notification_type, &activity) {
        (NotificationType::ActivityReminder, Some(_)) => "activity_reminder",
        (NotificationType::LateActivity, Some(_)) => "late_activity",
        _ => "notification",
    };
    let activity_ctx = activity.as_ref().map(|a| {
        context! {
            title => a.title,
            kind_label => a.kind.label(),
            due_local => local(a.due_at),
        }
    });
    let (due_in, late_for) = match &activity {
        Some(a) => (humanize_until(facts.event.occurred_at, a.due_at), humanize_span(facts.event.occurred_at - a.due_at)),
        None => (String::new(), String::new()),
    };
    let ctx = context! {
        recipient => context! { name => facts.recipient.name },
        account => context! { name => facts.account.name },
        owner => facts.owner.map(|o| context! { name => o.name }),
        contact => facts.contact.map(|c| context! { name => c.name, email => c.main_email }),
        event => context! { title => facts.event.title, body => facts.event.body },
        type_label => kind.label,
        action_url => facts.event.action_url,
        activity => activity_ctx,
        due_in => due_in,
        late_for => late_for,
    };
    (family, ctx)
}

/// "in 24 hours", "in 3 hours 30 minutes", "in 45 minutes", "now".
fn humanize_until(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let span = to - from;
    if span.num_minutes() < 1 {
        return "now".into();
    }
    format!("in {}", humanize_span(span))
}

fn humanize_span(span: chrono::Duration) -> String {
    let minutes = span.num_minutes().max(0);
    // Hours up to two days ("in 24 hours" reads better than "in 1 day"), days beyond.
    let (d, h, m) = if minutes < 48 * 60 { (0, minutes / 60, minutes % 60) } else { (minutes / (24 * 60), (minutes / 60) % 24, minutes % 60) };
    let unit = |n: i64, one: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {one}s")
        }
    };
    let mut parts = Vec::new();
    if d > 0 {
        parts.push(unit(d, "day"));
    }
    if h > 0 {
        parts.push(unit(h, "hour"));
    }
    if m > 0 && d == 0 {
        parts.push(unit(m, "minute"));
    }
    if parts.is_empty() {
        return "less than a minute".into();
    }
    parts.join(" ")
}

/// [`smtp::mailbox`], its error naming whose name or address it was.
pub fn mailbox(whose: &str, name: Option<&str>, address: &str) -> Result<Mailbox, String> {
    smtp::mailbox(name, address).map_err(|e| format!("the {whose}: {e}"))
}

/// Whose server sends an email, `From:` whom.
pub struct Sender {
    pub from: Mailbox,
    /// Where replies go, when not to `from` (the owner, when the system sends for them).
    pub reply_to: Option<Mailbox>,
    pub via: Via,
    /// Why the system sends when the settings asked for the owner's own account.
    pub note: Option<String>,
}

/// The server an email goes through.
pub enum Via {
    /// The account's SMTP server, as its system sender.
    System,
    /// The owner's main mailbox's outgoing side.
    Mailbox(Box<entity::mailbox::Model>),
}

/// Who an email is from under the account's settings; `owner_mailbox` is the activity
/// owner's main mailbox when it has an outgoing side. `Ok(None)` when the system would send
/// and the account has no system sender address; an error when a name or address cannot be a
/// header.
pub fn sender(settings: &ActivitySettings, facts: &Facts<'_>, owner_mailbox: Option<&entity::mailbox::Model>) -> Result<Option<Sender>, String> {
    let system = |reply_to: Option<Mailbox>, note: Option<String>| -> Result<Option<Sender>, String> {
        Ok(system_sender(settings)?.map(|s| Sender { reply_to, note, ..s }))
    };
    match facts.event.notification_type {
        NotificationType::ActivityReminder if settings.alert_sender() == AlertSender::UserAccount => {
            let Some(owner) = facts.owner else { return system(None, Some("the activity has no owner".into())) };
            match owner_mailbox {
                Some(m) => Ok(Some(Sender {
                    from: mailbox("activity owner", Some(&owner.name), &m.email_address)?,
                    reply_to: None,
                    via: Via::Mailbox(Box::new(m.clone())),
                    note: None,
                })),
                // Never the owner's address in From through another server: receivers that
                // check SPF and DMARC would refuse or flag it.
                None => {
                    let reply_to =
                        owner.email.parse::<lettre::Address>().ok().map(|_| mailbox("activity owner", Some(&owner.name), &owner.email)).transpose()?;
                    system(reply_to, Some("the activity owner has no connected outgoing mailbox: sent by the system account, replies to the owner".into()))
                }
            }
        }
        NotificationType::LateActivity if settings.late_sender() == LateSender::Email => {
            match settings.late_sender_email().filter(|a| a.parse::<lettre::Address>().is_ok()) {
                Some(address) => {
                    let Some(_) = settings.sender_address() else { return Ok(None) };
                    Ok(Some(Sender { from: mailbox("late-response sender", settings.sender_name(), address)?, reply_to: None, via: Via::System, note: None }))
                }
                None => system(None, None),
            }
        }
        _ => system(None, None),
    }
}

/// The account's system sender, as addressed emails (reports) are sent: `Ok(None)` when the
/// activity settings have no sender address.
pub fn system_sender(settings: &ActivitySettings) -> Result<Option<Sender>, String> {
    let Some(address) = settings.sender_address() else { return Ok(None) };
    Ok(Some(Sender { from: mailbox("system sender", settings.sender_name(), address)?, reply_to: None, via: Via::System, note: None }))
}

/// Builds an addressed email: To and Cc in its headers, Bcc in its envelope only (lettre
/// drops the `Bcc:` header once the envelope is made). Its Message-ID is derived from the
/// outbox id, the same on every attempt.
pub fn addressed_message(
    outbox_id: uuid::Uuid,
    from: &Sender,
    recipients: &[outbox_message::Recipient],
    rendered: RenderedEmail,
    date: DateTime<Utc>,
) -> Result<lettre::Message, String> {
    use outbox_message::Field;
    let mut builder = lettre::Message::builder()
        .message_id(Some(smtp::message_id(outbox_id)))
        .date(date.into())
        .from(from.from.clone())
        .subject(rendered.subject)
        .header(AutoSubmitted);
    if recipients.iter().all(|r| r.field == Field::Bcc) {
        return Err("the email has no To or Cc recipient".into());
    }
    for r in recipients {
        let to = mailbox("recipient", r.name.as_deref(), &r.address)?;
        builder = match r.field {
            Field::To => builder.to(to),
            Field::Cc => builder.cc(to),
            Field::Bcc => builder.bcc(to),
        };
    }
    if let Some(reply_to) = &from.reply_to {
        builder = builder.reply_to(reply_to.clone());
    }
    builder.multipart(MultiPart::alternative_plain_html(rendered.text, rendered.html)).map_err(|e| format!("the email could not be built: {e}"))
}

/// Builds the email for outbox message `outbox_id`. Its Message-ID is derived from the
/// outbox id, the same on every attempt.
pub fn message(
    outbox_id: uuid::Uuid,
    from: &Sender,
    to: Mailbox,
    rendered: RenderedEmail,
    date: DateTime<Utc>,
) -> Result<lettre::Message, lettre::error::Error> {
    let mut builder = lettre::Message::builder()
        .message_id(Some(smtp::message_id(outbox_id)))
        .date(date.into())
        .from(from.from.clone())
        .to(to)
        .subject(rendered.subject)
        // RFC 3834: machine-generated, so auto-responders stay quiet.
        .header(AutoSubmitted);
    if let Some(reply_to) = &from.reply_to {
        builder = builder.reply_to(reply_to.clone());
    }
    builder.multipart(MultiPart::alternative_plain_html(rendered.text, rendered.html))
}

#[derive(Clone, Copy)]
struct AutoSubmitted;

impl header::Header for AutoSubmitted {
    fn name() -> header::HeaderName {
        header::HeaderName::new_from_ascii_str("Auto-Submitted")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }
    fn display(&self) -> header::HeaderValue {
        header::HeaderValue::new(Self::name(), "auto-generated".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use entity::{contact::ContactKind, user::Role};
    use uuid::Uuid;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn account() -> account::Model {
        account::Model {
            id: Uuid::nil(),
            name: "Acme Roofing".into(),
            parent_id: None,
            time_zone: "Europe/Paris".into(),
            paused: false,
            add_ons: serde_json::json!([]),
            version: 1,
            created_at: at(2026, 1, 1, 0, 0),
            updated_at: at(2026, 1, 1, 0, 0),
            updated_by: None,
            primary_admin_id: None,
        }
    }

    fn person(name: &str, email: &str) -> user::Model {
        user::Model {
            id: Uuid::now_v7(),
            account_id: Uuid::nil(),
            name: name.into(),
            email: email.into(),
            phone: None,
            role: Role::User,
            active: true,
            created_at: at(2026, 1, 1, 0, 0),
            updated_at: at(2026, 1, 1, 0, 0),
        }
    }

    fn customer() -> contact::Model {
        contact::Model {
            id: Uuid::nil(),
            account_id: Uuid::nil(),
            kind: ContactKind::Customer,
            name: "Globex <Corp> & Sons".into(),
            main_email: Some("buyer@globex.example".into()),
            email_domain: Some("globex.example".into()),
            valid: true,
            created_at: at(2026, 1, 1, 0, 0),
            updated_at: at(2026, 1, 1, 0, 0),
        }
    }

    fn activity_event(kind: NotificationType, fired: DateTime<Utc>, due: DateTime<Utc>, owner: &user::Model) -> event::Model {
        let data = ActivityData {
            activity_id: Uuid::nil(),
            kind: entity::activity::Kind::Call,
            title: "Call about the roof quote".into(),
            due_at: due,
            owner_id: owner.id,
        };
        event::Model {
            id: Uuid::nil(),
            account_id: Uuid::nil(),
            notification_type: kind,
            contact_id: Some(Uuid::nil()),
            title: "Call due soon: Call about the roof quote".into(),
            body: None,
            data: Some(serde_json::json!({ "activity": data })),
            action_url: Some("https://crm.example/activities/42".into()),
            occurred_at: fired,
            idempotency_key: "k".into(),
            created_at: fired,
            published_by_user: None,
            published_by_key: None,
        }
    }

    #[test]
    fn reminder_as_the_owner_sees_it() {
        let owner = person("Ann Owner", "ann@acme.example");
        let event = activity_event(NotificationType::ActivityReminder, at(2026, 11, 23, 13, 0), at(2026, 11, 24, 13, 0), &owner);
        let (account, contact) = (account(), customer());
        let facts = Facts { event: &event, recipient: &owner, account: &account, contact: Some(&contact), owner: Some(&owner) };
        let email = Templates::new().email(&facts).unwrap();
        insta::assert_snapshot!("reminder_subject", email.subject);
        insta::assert_snapshot!("reminder_text", email.text);
        insta::assert_snapshot!("reminder_html", email.html);
    }

    #[test]
    fn escalation_as_a_default_person_sees_it() {
        let owner = person("Ann Owner", "ann@acme.example");
        let boss = person("Bob Manager", "bob@acme.example");
        let event = activity_event(NotificationType::LateActivity, at(2026, 11, 24, 15, 30), at(2026, 11, 24, 13, 0), &owner);
        let (account, contact) = (account(), customer());
        let facts = Facts { event: &event, recipient: &boss, account: &account, contact: Some(&contact), owner: Some(&owner) };
        let email = Templates::new().email(&facts).unwrap();
        insta::assert_snapshot!("escalation_subject", email.subject);
        insta::assert_snapshot!("escalation_text", email.text);
        insta::assert_snapshot!("escalation_html", email.html);
    }

    #[test]
    fn any_event_by_email_and_text() {
        let user = person("Ann Owner", "ann@acme.example");
        let mut event = activity_event(NotificationType::NewLead, at(2026, 11, 23, 9, 5), at(2026, 11, 23, 9, 5), &user);
        event.title = "New lead: Globex".into();
        event.body = Some("Asked for a quote <today>.".into());
        event.data = None;
        let (account, contact) = (account(), customer());
        let facts = Facts { event: &event, recipient: &user, account: &account, contact: Some(&contact), owner: None };
        let templates = Templates::new();
        let email = templates.email(&facts).unwrap();
        insta::assert_snapshot!("notification_subject", email.subject);
        insta::assert_snapshot!("notification_text", email.text);
        assert!(email.html.contains("Asked for a quote &lt;today&gt;."), "HTML is escaped: {}", email.html);
        insta::assert_snapshot!("text_message", templates.text(&facts).unwrap());
    }

    #[test]
    fn spans_read_naturally() {
        let t = at(2026, 1, 1, 0, 0);
        assert_eq!(humanize_until(t, t + chrono::Duration::hours(24)), "in 24 hours");
        assert_eq!(humanize_until(t, t + chrono::Duration::hours(50)), "in 2 days 2 hours");
        assert_eq!(humanize_until(t, t + chrono::Duration::minutes(210)), "in 3 hours 30 minutes");
        assert_eq!(humanize_until(t, t + chrono::Duration::minutes(1)), "in 1 minute");
        assert_eq!(humanize_until(t, t), "now");
    }
}
