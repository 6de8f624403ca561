//! A workflow action's subject and body: minijinja templates over the customer, the contact
//! the message is for, the sender and the account. Checked when the workflow is saved (a
//! field that does not exist is refused there, named), rendered when the action goes out.

use std::collections::BTreeSet;

use minijinja::{Environment, Value};

use crate::error::{ApiError, ApiResult};

/// The fields a template may use.
pub const FIELDS: &[&str] = &[
    "customer.name",
    "customer.email",
    "contact.name",
    "contact.email",
    "contact.position",
    "contact.phone",
    "sender.name",
    "sender.email",
    "account.name",
    "action.due_date",
];

/// The longest template accepted.
pub const MAX_LEN: usize = 20_000;

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // Plain text: the HTML of an email is made from the text, escaped.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env
}

/// Checks a template: it parses, and every variable it reads is one of [`FIELDS`]. Errors
/// name `field` and, for an unknown variable, the variable and what exists.
pub fn check(field: &str, source: &str) -> ApiResult<()> {
    if source.chars().count() > MAX_LEN {
        return Err(ApiError::bad_input(field, format!("at most {MAX_LEN} characters")));
    }
    let env = environment();
    let template = env.template_from_str(source).map_err(|e| ApiError::bad_input(field, format!("the template does not parse: {e}")))?;
    let used: BTreeSet<String> = template.undeclared_variables(true).into_iter().collect();
    if let Some(unknown) = used.iter().find(|v| !FIELDS.contains(&v.as_str())) {
        return Err(ApiError::bad_input(field, format!("unknown field {unknown:?}: use {}", FIELDS.join(", "))));
    }
    Ok(())
}

/// Renders a checked template.
pub fn render(source: &str, ctx: &Value) -> Result<String, minijinja::Error> {
    environment().template_from_str(source)?.render(ctx)
}

/// The HTML of a plain-text body: escaped, paragraphs and line breaks kept.
pub fn html_of(text: &str) -> String {
    let escaped = text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let paragraphs: Vec<String> = escaped.split("\n\n").map(|p| format!("<p>{}</p>", p.trim().replace('\n', "<br>\n"))).collect();
    format!("<!DOCTYPE html>\n<html><body style=\"font-family: Arial, Helvetica, sans-serif;\">\n{}\n</body></html>\n", paragraphs.join("\n"))
}

#[cfg(test)]
mod tests {
    use minijinja::context;

    use super::*;

    #[test]
    fn known_fields_pass_and_unknown_ones_are_named() {
        check("t", "Dear {{ contact.name }}, your invoice for {{ customer.name }} is due on {{ action.due_date }}.").unwrap();
        let e = check("input.actions[0].bodyTemplate", "Hi {{ contact.nickname }}").unwrap_err();
        assert!(e.to_string().contains("contact.nickname"), "{e}");
        assert!(check("t", "{% if contact.position %}{{ contact.position }}{% endif %}").is_ok());
        assert!(check("t", "{{ unknown }}").is_err());
        assert!(check("t", "{{ contact.name ").is_err(), "a syntax error");
    }

    #[test]
    fn renders_plain_text_and_its_html() {
        let ctx = context! { contact => context! { name => "Ann <CFO>" } };
        let text = render("Dear {{ contact.name }},\n\nPlease pay.", &ctx).unwrap();
        assert_eq!(text, "Dear Ann <CFO>,\n\nPlease pay.");
        assert_eq!(html_of(&text).lines().filter(|l| l.starts_with("<p>")).count(), 2);
        assert!(html_of(&text).contains("Ann &lt;CFO&gt;"));
    }
}
