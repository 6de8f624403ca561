//! An account's SMTP server as lettre sees it, shared by `testSmtpSettings` (api) and the
//! worker's deliveries, so that a test that passes means the worker can send.
//!
//! Failures are sorted into what a person can act on ([`FailureReason`]) and into transient
//! or permanent for the worker's retries: SMTP 4xx replies, time-outs and lost connections
//! are transient; 5xx replies (including a refused login) are permanent.

use std::time::Duration;

use lettre::{
    message::Mailbox,
    transport::smtp::{
        authentication::Credentials,
        client::{Tls, TlsParameters},
        PoolConfig,
    },
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use serde::Serialize;

/// At most this long for any step of talking to a mail server.
pub const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (required); default port 587.
    Starttls,
    /// TLS from the first byte ("SMTPS"); default port 465.
    Tls,
    /// No encryption; default port 25. Only for servers on a trusted network.
    None,
}

impl Security {
    pub fn code(self) -> &'static str {
        match self {
            Self::Starttls => "STARTTLS",
            Self::Tls => "TLS",
            Self::None => "NONE",
        }
    }
    pub fn parse(code: &str) -> Self {
        match code {
            "TLS" => Self::Tls,
            "NONE" => Self::None,
            _ => Self::Starttls,
        }
    }
    pub fn default_port(self) -> u16 {
        match self {
            Self::Starttls => 587,
            Self::Tls => 465,
            Self::None => 25,
        }
    }
}

/// An SMTP server with its password opened. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpServer {
    pub host: String,
    pub port: Option<u16>,
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for SmtpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpServer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl SmtpServer {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(self.security.default_port())
    }

    /// A pooled transport: up to `pool_size` connections kept open and reused.
    pub fn transport(&self, pool_size: u32) -> Result<AsyncSmtpTransport<Tokio1Executor>, lettre::transport::smtp::Error> {
        let tls = match self.security {
            Security::None => Tls::None,
            Security::Starttls => Tls::Required(TlsParameters::new(self.host.clone())?),
            Security::Tls => Tls::Wrapper(TlsParameters::new(self.host.clone())?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.clone())
            .port(self.port())
            .tls(tls)
            .timeout(Some(TIMEOUT))
            .pool_config(PoolConfig::new().max_size(pool_size.max(1)).idle_timeout(Duration::from_secs(60)));
        if let Some(user) = &self.username {
            builder = builder.credentials(Credentials::new(user.clone(), self.password.clone().unwrap_or_default()));
        }
        Ok(builder.build())
    }
}

/// The Message-ID of the email for outbox message `id`: the same on every attempt, so that a
/// message sent twice (a worker killed between the end of DATA and the server's reply) can be
/// recognised as one.
pub fn message_id(id: uuid::Uuid) -> String {
    format!("<{id}@herald.outbox>")
}

/// Why talking to a mail server failed, in terms a person can act on.
#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureReason {
    /// The host name does not resolve.
    NameResolution,
    /// Nothing listens on that host and port (or a firewall refused).
    ConnectionRefused,
    /// No answer within the time limit.
    Timeout,
    /// The TLS handshake failed (wrong security mode for the port, bad certificate).
    Tls,
    /// The server refused the username and password.
    Authentication,
    /// The server refused the sender or a recipient.
    Rejected,
    /// The server answered 4xx: try again later.
    TemporaryFailure,
    /// Anything else the server or the network did.
    Protocol,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub reason: FailureReason,
    /// The server's reply code, when it answered one.
    pub smtp_code: Option<u16>,
    pub message: String,
    /// Worth retrying later (4xx, time-outs, lost connections).
    pub transient: bool,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Sorts a lettre error.
pub fn classify(err: &lettre::transport::smtp::Error) -> Failure {
    let code = err.status().map(|c| c.to_string().parse::<u16>().unwrap_or(0));
    let detail = error_chain(err);
    if err.is_timeout() {
        return Failure { reason: FailureReason::Timeout, smtp_code: None, message: format!("no answer within {} s: {detail}", TIMEOUT.as_secs()), transient: true };
    }
    let lower = detail.to_lowercase();
    let tls_words = ["invalidcontenttype", "certificate", "handshake", "tls"];
    if err.is_tls() || tls_words.iter().any(|w| lower.contains(w)) {
        return Failure { reason: FailureReason::Tls, smtp_code: None, message: format!("TLS failed: {detail}"), transient: false };
    }
    if let Some(code) = code {
        let (reason, transient) = match code {
            530 | 534 | 535 | 538 => (FailureReason::Authentication, false),
            400..=499 => (FailureReason::TemporaryFailure, true),
            550..=553 => (FailureReason::Rejected, false),
            _ => (FailureReason::Protocol, false),
        };
        return Failure { reason, smtp_code: Some(code), message: format!("the server answered {code}: {detail}"), transient };
    }
    if detail.contains("Connection refused") {
        return Failure { reason: FailureReason::ConnectionRefused, smtp_code: None, message: format!("connection refused: {detail}"), transient: true };
    }
    if detail.contains("failed to lookup") || detail.contains("Name or service not known") || detail.contains("nodename nor servname") {
        return Failure { reason: FailureReason::NameResolution, smtp_code: None, message: format!("the host name does not resolve: {detail}"), transient: true };
    }
    // Connection resets, closed sockets, unreadable replies: transient by default, since a
    // retry costs little and a lost message costs a lot.
    Failure { reason: FailureReason::Protocol, smtp_code: None, message: detail, transient: true }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let s = cause.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = cause.source();
    }
    text
}

/// `testSmtpSettings`: resolves the host, connects, negotiates TLS, logs in, and sends a test
/// message to `send_to` when given. Answers the first step that failed; the whole test takes
/// at most [`TIMEOUT`].
pub async fn probe(server: &SmtpServer, from: Option<Mailbox>, send_to: Option<Mailbox>) -> Result<(), Failure> {
    let stage = std::sync::Mutex::new("resolving the host name");
    match tokio::time::timeout(TIMEOUT, probe_steps(server, from, send_to, &stage)).await {
        Ok(result) => result,
        Err(_) => {
            let step = *stage.lock().unwrap_or_else(|e| e.into_inner());
            Err(Failure {
                reason: FailureReason::Timeout,
                smtp_code: None,
                message: format!("no answer within {} s while {step}", TIMEOUT.as_secs()),
                transient: true,
            })
        }
    }
}

async fn probe_steps(
    server: &SmtpServer,
    from: Option<Mailbox>,
    send_to: Option<Mailbox>,
    stage: &std::sync::Mutex<&'static str>,
) -> Result<(), Failure> {
    let fail = |reason, message: String| Failure { reason, smtp_code: None, message, transient: true };
    let enter = |step: &'static str| *stage.lock().unwrap_or_else(|e| e.into_inner()) = step;
    // Name resolution and the TCP connection first, so their failures are named precisely.
    let target = format!("{}:{}", server.host, server.port());
    let addresses: Vec<_> = match tokio::net::lookup_host(target.clone()).await {
        Err(e) => return Err(fail(FailureReason::NameResolution, format!("{} does not resolve: {e}", server.host))),
        Ok(a) => a.collect(),
    };
    if addresses.is_empty() {
        return Err(fail(FailureReason::NameResolution, format!("{} has no address", server.host)));
    }
    enter("connecting");
    match tokio::net::TcpStream::connect(&addresses[..]).await {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(fail(FailureReason::ConnectionRefused, format!("{target} refused the connection")))
        }
        Err(e) => return Err(fail(FailureReason::ConnectionRefused, format!("cannot connect to {target}: {e}"))),
        Ok(_probe) => {}
    }
    // Then the SMTP conversation (TLS, EHLO, AUTH) through the very transport the worker uses.
    enter("talking SMTP (greeting, TLS, login)");
    let transport = server.transport(1).map_err(|e| classify(&e))?;
    transport.test_connection().await.map_err(|e| classify(&e))?;
    if let (Some(from), Some(to)) = (from, send_to) {
        enter("sending the test message");
        let message = Message::builder()
            .from(from)
            .to(to)
            .subject("Herald: SMTP settings test")
            .body(String::from("This message confirms that Herald can send email through your SMTP settings.\n"))
            .map_err(|e| Failure { reason: FailureReason::Rejected, smtp_code: None, message: format!("cannot build the test message: {e}"), transient: false })?;
        transport.send(message).await.map_err(|e| classify(&e))?;
    }
    Ok(())
}
