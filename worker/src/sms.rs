//! Texts through an account's Twilio-compatible gateway.

use api::{activities::sms::Gateway, smtp::FailureReason};

/// Why a text was not accepted; `transient` ones are retried.
#[derive(Debug, Clone)]
pub struct SmsFailure {
    pub message: String,
    pub transient: bool,
    pub reason: FailureReason,
}

/// Sends `body` to `to`. The gateway's 2xx is success; 429 and 5xx (and the network) are
/// transient; any other answer is permanent, with the gateway's own message when it gives one.
pub async fn send(http: &reqwest::Client, gateway: &Gateway, to: &str, body: &str) -> Result<(), SmsFailure> {
    let response = http
        .post(gateway.messages_url())
        .basic_auth(&gateway.account_sid, Some(&gateway.auth_token))
        .form(&[("To", to), ("From", gateway.from_number.as_str()), ("Body", body)])
        .send()
        .await
        .map_err(|e| SmsFailure {
            message: format!("SMS gateway unreachable: {e}"),
            transient: true,
            reason: if e.is_timeout() { FailureReason::Timeout } else { FailureReason::ConnectionRefused },
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    // Twilio answers {"code": 21211, "message": "The 'To' number … is not a valid phone number."}.
    let said = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(String::from))
        .unwrap_or_else(|| text.chars().take(300).collect());
    let transient = status.as_u16() == 429 || status.is_server_error();
    let reason = match status.as_u16() {
        401 | 403 => FailureReason::Authentication,
        429 => FailureReason::TemporaryFailure,
        s if s >= 500 => FailureReason::TemporaryFailure,
        _ => FailureReason::Rejected,
    };
    Err(SmsFailure { message: format!("SMS gateway answered {status}: {said}"), transient, reason })
}
