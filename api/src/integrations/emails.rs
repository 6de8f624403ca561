//! The integration report emails as their recipients see them: one template per email
//! (`api/templates/reports/<name>.{subject,txt,html}`, minijinja, HTML auto-escaped), each
//! on a common layout that states the deadline and the recommended actions.
//!
//! They are rendered once, when queued (the outbox keeps the result), so a retry sends what
//! the first attempt did; times are shown in the account's time zone.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use minijinja::{context, Environment, Value};
use serde::Serialize;

/// A rendered email.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Which email.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template {
    IntegrationEnabled,
    IntegrationDisabled,
    ReauthenticationRequired,
    ConnectionError,
    ConnectionRestored,
    ContactMappingErrors,
    DataSyncSummary,
}

impl Template {
    fn name(self) -> &'static str {
        match self {
            Template::IntegrationEnabled => "integration_enabled",
            Template::IntegrationDisabled => "integration_disabled",
            Template::ReauthenticationRequired => "reauthentication_required",
            Template::ConnectionError => "connection_error",
            Template::ConnectionRestored => "connection_restored",
            Template::ContactMappingErrors => "contact_mapping_errors",
            Template::DataSyncSummary => "data_sync_summary",
        }
    }
}

macro_rules! templates {
    ($env:ident, $($name:literal),* $(,)?) => {
        $( $env.add_template(concat!("reports/", $name), include_str!(concat!("../../templates/reports/", $name))).expect(concat!("template ", $name, " parses")); )*
    };
}

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|name| if name.ends_with(".html") { minijinja::AutoEscape::Html } else { minijinja::AutoEscape::None });
        // A field the code forgot is an error at render time, not an empty string in a
        // recipient's email.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        templates!(
            env,
            "base.txt",
            "base.html",
            "integration_enabled.subject",
            "integration_enabled.txt",
            "integration_enabled.html",
            "integration_disabled.subject",
            "integration_disabled.txt",
            "integration_disabled.html",
            "reauthentication_required.subject",
            "reauthentication_required.txt",
            "reauthentication_required.html",
            "connection_error.subject",
            "connection_error.txt",
            "connection_error.html",
            "connection_restored.subject",
            "connection_restored.txt",
            "connection_restored.html",
            "contact_mapping_errors.subject",
            "contact_mapping_errors.txt",
            "contact_mapping_errors.html",
            "data_sync_summary.subject",
            "data_sync_summary.txt",
            "data_sync_summary.html",
        );
        env
    })
}

/// What every report email says: whose, about which integration, when, by when and what to do.
#[derive(Clone, Debug, Serialize)]
pub struct Common {
    pub account: String,
    pub provider: &'static str,
    /// The account's time zone (an unknown one shows UTC).
    #[serde(skip)]
    pub time_zone: String,
    #[serde(skip)]
    pub occurred_at: DateTime<Utc>,
    /// The deadline, or why there is none.
    #[serde(skip)]
    pub deadline: Deadline,
    pub actions: Vec<String>,
}

#[derive(Clone, Debug)]
pub enum Deadline {
    At(DateTime<Utc>),
    /// No deadline, and why (shown as is).
    None(&'static str),
}

impl Common {
    fn tz(&self) -> chrono_tz::Tz {
        self.time_zone.parse().unwrap_or(chrono_tz::UTC)
    }

    /// A moment as recipients read it, in the account's time zone.
    pub fn local(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.tz()).format("%a %-d %b %Y, %H:%M %Z").to_string()
    }
}

/// Renders `template` with `common` and the email's own fields (`fields`, a map).
pub fn render(template: Template, common: &Common, fields: Value) -> Result<Email, minijinja::Error> {
    let deadline = match &common.deadline {
        Deadline::At(t) => common.local(*t),
        Deadline::None(why) => (*why).to_string(),
    };
    let ctx = context! {
        account => context! { name => common.account },
        integration => context! { provider => common.provider },
        occurred => common.local(common.occurred_at),
        deadline => deadline,
        actions => common.actions,
        ..fields
    };
    let env = environment();
    let name = template.name();
    let subject = env.get_template(&format!("reports/{name}.subject"))?.render(&ctx)?;
    // One line, whatever the fields held.
    let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    let ctx = context! { subject => subject, ..ctx };
    Ok(Email {
        text: env.get_template(&format!("reports/{name}.txt"))?.render(&ctx)?,
        html: env.get_template(&format!("reports/{name}.html"))?.render(&ctx)?,
        subject,
    })
}

/// "3 hours 20 minutes", "2 days 4 hours", "less than a minute".
pub fn span(d: chrono::Duration) -> String {
    let minutes = d.num_minutes().max(0);
    let (days, hours, mins) = (minutes / 1440, (minutes / 60) % 24, minutes % 60);
    let unit = |n: i64, one: &str| if n == 1 { format!("1 {one}") } else { format!("{n} {one}s") };
    let parts: Vec<String> =
        [(days, "day"), (hours, "hour"), (if days > 0 { 0 } else { mins }, "minute")].into_iter().filter(|(n, _)| *n > 0).map(|(n, u)| unit(n, u)).collect();
    if parts.is_empty() {
        "less than a minute".into()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn common(actions: &[&str], deadline: Deadline) -> Common {
        Common {
            account: "Acme Roofing".into(),
            provider: "HubSpot",
            time_zone: "Europe/Paris".into(),
            occurred_at: Utc.with_ymd_and_hms(2026, 12, 6, 9, 15, 0).unwrap(),
            deadline,
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn due() -> Deadline {
        Deadline::At(Utc.with_ymd_and_hms(2026, 12, 8, 17, 0, 0).unwrap())
    }

    #[test]
    fn reauthentication_required() {
        let c = common(&["Open Settings > Integrations > HubSpot and click Reconnect.", "Sign in as a HubSpot super admin."], due());
        let email = render(
            Template::ReauthenticationRequired,
            &c,
            context! { connection => "HubSpot portal 4471 <main>", reason => "The refresh token was revoked in HubSpot." },
        )
        .unwrap();
        insta::assert_snapshot!("reauth_subject", email.subject);
        insta::assert_snapshot!("reauth_text", email.text);
        insta::assert_snapshot!("reauth_html", email.html);
    }

    #[test]
    fn connection_error_and_restored() {
        let c =
            common(&["Check that the HubSpot API is reachable.", "Contact support if it persists."], Deadline::None("none set (fix it as soon as you can)"));
        let email = render(Template::ConnectionError, &c, context! { connection => "portal 4471", reason => "HTTP 503 from api.hubapi.com" }).unwrap();
        insta::assert_snapshot!("error_text", email.text);
        let c = common(&[], Deadline::None("none (no action is required)"));
        let since = Utc.with_ymd_and_hms(2026, 12, 6, 6, 0, 0).unwrap();
        let email = render(
            Template::ConnectionRestored,
            &c,
            context! { connection => "portal 4471", problem => "re-authentication required", since => c.local(since), lasted => span(c.occurred_at - since) },
        )
        .unwrap();
        insta::assert_snapshot!("restored_subject", email.subject);
        insta::assert_snapshot!("restored_text", email.text);
    }

    #[test]
    fn toggles() {
        let c = common(&["Review the sync direction and the contact property mapping."], Deadline::None("none (no action is required)"));
        let email = render(Template::IntegrationEnabled, &c, context! { by => "Ann Admin", features => vec!["sync", "filters"] }).unwrap();
        insta::assert_snapshot!("enabled_subject", email.subject);
        insta::assert_snapshot!("enabled_text", email.text);
        let email = render(Template::IntegrationDisabled, &c, context! { by => "an API key (Zapier)" }).unwrap();
        insta::assert_snapshot!("disabled_html", email.html);
    }

    #[test]
    fn mapping_errors_listed_and_escaped() {
        let c = common(&["Fix each record in HubSpot or in the CRM; the next sync retries them."], due());
        let records = vec![
            context! { object => "Contact", record_id => "901", name => "Globex <Corp> & Sons", field => "email", error => "Email is not a valid address: \"bob@\"", tips => vec!["HubSpot rejects addresses without a domain."], actions => vec!["Correct the email in the CRM."], occurrences => 3 },
            context! { object => "Company", record_id => "77", name => Value::from(()), field => Value::from(()), error => "Duplicate domain globex.example", tips => Vec::<String>::new(), actions => vec!["Merge the two companies in HubSpot."], occurrences => 1 },
        ];
        let email = render(
            Template::ContactMappingErrors,
            &c,
            context! { total => 2, records => records, more => 0, window => "reported between 10:00 and 10:15 CET" },
        )
        .unwrap();
        insta::assert_snapshot!("mapping_subject", email.subject);
        insta::assert_snapshot!("mapping_text", email.text);
        insta::assert_snapshot!("mapping_html", email.html);
        assert!(email.html.contains("Globex &lt;Corp&gt; &amp; Sons"));
    }

    #[test]
    fn data_sync_summary() {
        let c = common(&["Review the 2 contacts skipped for missing owners (by Tue 8 Dec 2026, 18:00 CET)."], due());
        let operations = vec![
            context! { object => "Contacts", created => 12, updated => 340, deleted => 0, skipped => 2, failed => 0 },
            context! { object => "Deals", created => 3, updated => 9, deleted => 1, skipped => 0, failed => 4 },
        ];
        let warnings = vec![context! { object => "Deals", message => "4 deals reference a pipeline stage that no longer exists", count => 4 }];
        let email = render(
            Template::DataSyncSummary,
            &c,
            context! { operations => operations, warnings => warnings, totals => context! { changed => 365, failed => 4 },
            started => "Sun 6 Dec 2026, 10:00 CET", finished => "Sun 6 Dec 2026, 10:04 CET", duration => "4 minutes" },
        )
        .unwrap();
        insta::assert_snapshot!("sync_subject", email.subject);
        insta::assert_snapshot!("sync_text", email.text);
        insta::assert_snapshot!("sync_html", email.html);
    }

    #[test]
    fn an_unknown_field_is_an_error() {
        let c = common(&[], due());
        assert!(render(Template::ConnectionError, &c, context! { connection => "x" }).is_err(), "a missing field fails, it does not render empty");
    }

    #[test]
    fn spans() {
        assert_eq!(span(chrono::Duration::minutes(200)), "3 hours 20 minutes");
        assert_eq!(span(chrono::Duration::hours(52)), "2 days 4 hours");
        assert_eq!(span(chrono::Duration::seconds(20)), "less than a minute");
    }
}
