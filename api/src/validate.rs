//! Input checks shared by every mutation. Each names the input field it judged, so that a
//! form can put the message next to the right box.

use crate::error::{ApiError, ApiResult};

pub const MAX_NAME: usize = 200;

/// Refuses control characters (CR, LF, NUL, ESC, …) in a value that is one line: names and
/// titles end up in email headers and log lines, where a line break starts a new header.
pub fn single_line(field: &str, value: &str) -> ApiResult<()> {
    match value.chars().find(|c| c.is_control()) {
        Some(c) => Err(ApiError::bad_input(field, format!("{field} must be one line without control characters (found {:?})", c))),
        None => Ok(()),
    }
}

/// A required display name: one line, trimmed, not empty, bounded.
pub fn name(field: &str, value: &str) -> ApiResult<String> {
    let trimmed = value.trim();
    single_line(field, trimmed)?;
    if trimmed.is_empty() {
        return Err(ApiError::bad_input(field, format!("{field} must not be empty")));
    }
    if trimmed.chars().count() > MAX_NAME {
        return Err(ApiError::bad_input(field, format!("{field} must be at most {MAX_NAME} characters")));
    }
    Ok(trimmed.to_string())
}

/// An email address (RFC 5322 addr-spec, as `email_address` judges it), lower-cased.
pub fn email(field: &str, value: &str) -> ApiResult<String> {
    let trimmed = value.trim();
    // A dot in the domain too: `ann@localhost` is valid RFC 5322 but never a CRM user's mail.
    let dotted_domain = trimmed.rsplit_once('@').is_some_and(|(_, domain)| domain.contains('.'));
    if trimmed.len() > 254 || !email_address::EmailAddress::is_valid(trimmed) || !dotted_domain {
        return Err(ApiError::bad_input(field, format!("{trimmed:?} is not a valid email address")));
    }
    Ok(trimmed.to_lowercase())
}

/// An email domain such as `example.com`, lower-cased.
pub fn domain(field: &str, value: &str) -> ApiResult<String> {
    let d = value.trim().trim_start_matches('@').to_lowercase();
    let label_ok =
        |l: &str| !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') && !l.starts_with('-') && !l.ends_with('-');
    if d.len() > 253 || !d.contains('.') || !d.split('.').all(label_ok) {
        return Err(ApiError::bad_input(field, format!("{value:?} is not a valid email domain")));
    }
    Ok(d)
}

/// The domain part of an already validated address.
pub fn domain_of(email: &str) -> Option<String> {
    email.rsplit_once('@').map(|(_, d)| d.to_string())
}

/// A host name or IP literal, as a mail server's address, lower-cased.
pub fn host(field: &str, value: &str) -> ApiResult<String> {
    let h = value.trim().to_lowercase();
    if h.parse::<std::net::IpAddr>().is_ok() {
        return Ok(h);
    }
    let label_ok =
        |l: &str| !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') && !l.starts_with('-') && !l.ends_with('-');
    if h.is_empty() || h.len() > 253 || !h.split('.').all(label_ok) {
        return Err(ApiError::bad_input(field, format!("{value:?} is not a host name or IP address")));
    }
    Ok(h)
}

/// An IANA time-zone name such as `Europe/Paris`.
pub fn time_zone(field: &str, value: &str) -> ApiResult<String> {
    value
        .trim()
        .parse::<chrono_tz::Tz>()
        .map(|tz| tz.name().to_string())
        .map_err(|_| ApiError::bad_input(field, format!("{value:?} is not an IANA time zone (e.g. Europe/Paris)")))
}

/// A phone number in E.164 form (`+` and 8 to 15 digits), spaces and dashes removed.
pub fn phone(field: &str, value: &str) -> ApiResult<String> {
    let compact: String = value.chars().filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.')).collect();
    let digits = compact.strip_prefix('+').unwrap_or("");
    if !(8..=15).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(ApiError::bad_input(field, format!("{value:?} is not a phone number in international form (+15551234567)")));
    }
    Ok(compact)
}

/// An optional one-line value: trimmed, empty becomes `None`, bounded, no control characters.
pub fn optional_text(field: &str, value: Option<&str>) -> ApiResult<Option<String>> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    single_line(field, v)?;
    if v.chars().count() > MAX_NAME {
        return Err(ApiError::bad_input(field, format!("{field} must be at most {MAX_NAME} characters")));
    }
    Ok(Some(v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_and_normalises_common_inputs() {
        assert_eq!(email("e", " Ann@Example.COM ").unwrap(), "ann@example.com");
        for bad in ["", "ann", "ann@", "@example.com", "ann@example", "a.b@localhost", "a b@example.com"] {
            assert!(email("e", bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(time_zone("tz", "Europe/Paris").unwrap(), "Europe/Paris");
        assert!(time_zone("tz", "Mars/Olympus").is_err());
        assert_eq!(domain("d", "@Example.com").unwrap(), "example.com");
        assert!(domain("d", "exa mple.com").is_err());
        assert_eq!(phone("p", "+1 555-123-4567").unwrap(), "+15551234567");
        assert!(phone("p", "555").is_err());
        assert!(name("name", "   ").is_err());
        for bad in ["Mallory\r\nBcc: x@evil.example", "a\0b", "a\u{1b}[31mb", "tab\there"] {
            assert!(matches!(name("input.name", bad), Err(ApiError::BadUserInput { ref field, .. }) if field == "input.name"), "{bad:?} accepted");
            assert!(optional_text("input.senderName", Some(bad)).is_err(), "{bad:?} accepted");
        }
        let err = email("input.email", "nope").unwrap_err();
        assert!(matches!(err, ApiError::BadUserInput { ref field, .. } if field == "input.email"));
    }
}
