//! An account's SMTP server and the connections Herald keeps to it, shared by
//! `testSmtpSettings` (api) and the worker's deliveries, so that a test that passes means the
//! worker can send.
//!
//! lettre speaks SMTP; [`Mailer`] owns the sockets. lettre's own pooled transport opens its
//! sockets without `TCP_NODELAY`, and writes a message's body and its final `.` separately:
//! Nagle's algorithm then holds the final `.` until the server's delayed-ACK timer fires,
//! so every message waits for that timer and it caps a worker's rate. [`Mailer`] connects
//! itself (`TCP_NODELAY`, implicit TLS through rustls), hands the socket to lettre's
//! `AsyncSmtpConnection` for EHLO, STARTTLS, AUTH and the transaction, and pools the open
//! connections.
//!
//! A message costs two round trips where the server allows it, not four: `MAIL`, `RCPT` and
//! `DATA` go out together when the server offers PIPELINING (RFC 2920, which every common MTA
//! offers), and the socket holds what lettre writes until it turns to read the reply
//! ([`Corked`]), so the message's data and its final `.` leave as one segment. On loopback
//! each round trip is a wake-up of both processes, and those wake-ups are most of what a
//! send costs the worker and the server.
//!
//! Failures are sorted into what a person can act on ([`FailureReason`]) and into transient
//! or permanent for the worker's retries: SMTP 4xx replies, time-outs and lost connections
//! are transient; 5xx replies (including a refused login) are permanent.

use std::time::{Duration, Instant};

use lettre::{
    address::Envelope,
    message::Mailbox,
    transport::smtp::{
        authentication::{Credentials, Mechanism},
        client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters},
        commands::{Data, Ehlo, Mail, Rcpt},
        extension::{ClientId, Extension, MailBodyParameter, MailParameter},
    },
    Message,
};
use serde::Serialize;
use tokio::{
    net::TcpStream,
    sync::{Mutex, Semaphore, SemaphorePermit},
};

pub use crate::net::Credential;
use crate::net::Stream;

/// At most this long for any step of talking to a mail server.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A pooled connection idle longer than this is checked with NOOP before reuse.
const TRUST_IDLE: Duration = Duration::from_secs(2);
/// A pooled connection idle longer than this is closed rather than reused.
const MAX_IDLE: Duration = Duration::from_secs(50);

pub use entity::mail_security::Security;

/// The SMTP port a security implies when none is given.
pub fn default_port(security: Security) -> u16 {
    match security {
        Security::Starttls => 587,
        Security::Tls => 465,
        Security::None => 25,
    }
}

/// An SMTP server with its credential opened (`Debug` hides it). Without a username Herald
/// sends without AUTH.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpServer {
    pub host: String,
    pub port: Option<u16>,
    pub security: Security,
    pub username: Option<String>,
    pub credential: Option<Credential>,
}

impl SmtpServer {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(default_port(self.security))
    }
}

/// A name or address that cannot be put in an email header.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// A line break in a header value would start a new header (lettre's formatting refuses it
    /// by panicking); other control characters have no place in a name either.
    #[error("the name {0:?} contains a control character and cannot be put in an email header")]
    ControlInName(String),
    #[error("the address {0:?} is unusable: {1}")]
    Address(String, #[source] lettre::address::AddressError),
}

/// A display name and an address as one header mailbox, refused rather than built when the
/// name could break the message's headers. Every mailbox Herald writes is made here.
pub fn mailbox(name: Option<&str>, address: &str) -> Result<Mailbox, HeaderError> {
    if let Some(name) = name.filter(|n| n.chars().any(|c| c.is_control() && c != '\t')) {
        return Err(HeaderError::ControlInName(name.to_string()));
    }
    let parsed = address.parse().map_err(|e| HeaderError::Address(address.to_string(), e))?;
    Ok(Mailbox::new(name.map(String::from), parsed))
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
    /// The server refused the username and password (or the access token).
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

/// Why sending (or connecting) failed, before it is sorted for people and retries.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("{step}: {source}")]
    Io { step: &'static str, source: std::io::Error },
    #[error("no answer within {secs} s while {0}", secs = TIMEOUT.as_secs())]
    Timeout(&'static str),
    #[error("{0}")]
    Unsupported(&'static str),
}

/// Sorts a failure.
pub fn classify(err: &SendError) -> Failure {
    let failure = |reason, smtp_code, message: String, transient| Failure { reason, smtp_code, message, transient };
    let err = match err {
        SendError::Timeout(_) => return failure(FailureReason::Timeout, None, err.to_string(), true),
        SendError::Io { step, source } => {
            let message = err.to_string();
            return match (*step, source.kind()) {
                (STEP_TLS, _) => failure(FailureReason::Tls, None, message, false),
                (_, std::io::ErrorKind::ConnectionRefused) => failure(FailureReason::ConnectionRefused, None, message, true),
                (STEP_RESOLVE, _) => failure(FailureReason::NameResolution, None, message, true),
                _ => failure(FailureReason::Protocol, None, message, true),
            };
        }
        SendError::Unsupported(_) => return failure(FailureReason::Protocol, None, err.to_string(), false),
        SendError::Smtp(err) => err,
    };
    let code = err.status().map(|c| c.to_string().parse::<u16>().unwrap_or(0));
    let detail = error_chain(err);
    if err.is_timeout() {
        return failure(FailureReason::Timeout, None, format!("no answer within {} s: {detail}", TIMEOUT.as_secs()), true);
    }
    let lower = detail.to_lowercase();
    if err.is_tls() || ["invalidcontenttype", "certificate", "handshake", "tls"].iter().any(|w| lower.contains(w)) {
        return failure(FailureReason::Tls, None, format!("TLS failed: {detail}"), false);
    }
    if let Some(code) = code {
        let (reason, transient) = match code {
            530 | 534 | 535 | 538 => (FailureReason::Authentication, false),
            400..=499 => (FailureReason::TemporaryFailure, true),
            550..=553 => (FailureReason::Rejected, false),
            _ => (FailureReason::Protocol, false),
        };
        return failure(reason, Some(code), format!("the server answered {code}: {detail}"), transient);
    }
    // Connection resets, closed sockets, unreadable replies: transient, since a retry costs
    // little and a lost message costs a lot.
    failure(FailureReason::Protocol, None, detail, true)
}

/// An error and its causes on one line.
pub fn error_chain(err: &dyn std::error::Error) -> String {
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

const STEP_RESOLVE: &str = "resolving the host name";
const STEP_CONNECT: &str = "connecting";
const STEP_TLS: &str = "TLS handshake";

/// Connections to one SMTP server: at most `pool_size` at once, idle ones kept for reuse.
pub struct Mailer {
    server: SmtpServer,
    hello: ClientId,
    slots: Semaphore,
    idle: Mutex<Vec<(Connection, Instant)>>,
}

/// An open, logged-in connection, and whether its server takes pipelined commands.
pub struct Connection {
    smtp: AsyncSmtpConnection,
    pipelining: bool,
}

impl Connection {
    /// Says goodbye (QUIT).
    pub async fn quit(mut self) {
        let _ = self.smtp.quit().await;
    }
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("server", &self.server).finish()
    }
}

impl Mailer {
    pub fn new(server: SmtpServer, pool_size: usize) -> Self {
        Self { server, hello: ClientId::default(), slots: Semaphore::new(pool_size.max(1)), idle: Mutex::new(Vec::new()) }
    }

    /// Opens a connection: TCP (`TCP_NODELAY`), TLS as configured, greeting, EHLO, AUTH.
    pub async fn connect(&self) -> Result<Connection, SendError> {
        let server = &self.server;
        let step = |step, f: tokio::time::error::Elapsed| {
            let _ = f;
            SendError::Timeout(step)
        };
        let addresses: Vec<_> = tokio::time::timeout(TIMEOUT, tokio::net::lookup_host((server.host.as_str(), server.port())))
            .await
            .map_err(|e| step(STEP_RESOLVE, e))?
            .map_err(|source| SendError::Io { step: STEP_RESOLVE, source })?
            .collect();
        let tcp = tokio::time::timeout(TIMEOUT, TcpStream::connect(&addresses[..]))
            .await
            .map_err(|e| step(STEP_CONNECT, e))?
            .map_err(|source| SendError::Io { step: STEP_CONNECT, source })?;
        tcp.set_nodelay(true).map_err(|source| SendError::Io { step: STEP_CONNECT, source })?;
        let stream: Box<dyn AsyncTokioStream> = match server.security {
            Security::Tls => Box::new(
                tokio::time::timeout(TIMEOUT, Stream::tls(&server.host, tcp))
                    .await
                    .map_err(|e| step(STEP_TLS, e))?
                    .map_err(|source| SendError::Io { step: STEP_TLS, source })?,
            ),
            _ => Box::new(Stream::Plain(tcp)),
        };
        let stream: Box<dyn AsyncTokioStream> = Box::new(Corked::new(stream));
        let mut conn = tokio::time::timeout(TIMEOUT, AsyncSmtpConnection::connect_with_transport(stream, &self.hello))
            .await
            .map_err(|e| step("waiting for the greeting", e))??;
        if server.security == Security::Starttls {
            let params = TlsParameters::new(server.host.clone())?;
            tokio::time::timeout(TIMEOUT, conn.starttls(params, &self.hello)).await.map_err(|e| step("negotiating STARTTLS", e))??;
        }
        // lettre keeps only the EHLO keywords it knows, and PIPELINING is not one of them: ask
        // again, once per connection, before AUTH (where a client's EHLO belongs).
        let hello = tokio::time::timeout(TIMEOUT, conn.command(Ehlo::new(self.hello.clone()))).await.map_err(|e| step("saying EHLO", e))??;
        let pipelining = hello.message().skip(1).any(|k| k.split_whitespace().next().is_some_and(|k| k.eq_ignore_ascii_case("PIPELINING")));
        if let Some(user) = &server.username {
            let (mechanisms, secret): (&[Mechanism], _) = match &server.credential {
                Some(Credential::AccessToken(token)) => (&[Mechanism::Xoauth2], token.clone()),
                Some(Credential::Password(password)) => (&[Mechanism::Plain, Mechanism::Login], password.clone()),
                None => (&[Mechanism::Plain, Mechanism::Login], String::new()),
            };
            let credentials = Credentials::new(user.clone(), secret);
            tokio::time::timeout(TIMEOUT, conn.auth(mechanisms, &credentials)).await.map_err(|e| step("logging in", e))??;
        }
        Ok(Connection { smtp: conn, pipelining })
    }

    /// Sends one message over a pooled connection (opening one if none is idle).
    pub async fn send(&self, message: &Message) -> Result<(), SendError> {
        let gate = Semaphore::new(1);
        let (sent, _permit) = self.send_gated(message, &gate).await;
        sent
    }

    /// Sends one message, letting it through to the end of its data only with a permit of
    /// `gate`, which comes back with the outcome (none when the send failed before the data
    /// was through). A server cannot accept a message before the end of its data, so a
    /// caller that holds each permit until the outcome is recorded bounds how many messages
    /// may have been accepted without it: the ones a crash would send twice. Meanwhile the
    /// envelope of the next message is already on its way, while the outcome of the last one
    /// is still being written.
    ///
    /// The commands are lettre's own (`MAIL`, `RCPT`, `DATA`, then the message), issued here
    /// rather than through `AsyncSmtpConnection::send` so that the gate can sit between `DATA`
    /// and the message, and so that the envelope can be pipelined; as there, a failed command
    /// closes the connection.
    pub async fn send_gated<'g>(&self, message: &Message, gate: &'g Semaphore) -> (Result<(), SendError>, Option<SemaphorePermit<'g>>) {
        let _slot = self.slots.acquire().await.expect("the semaphore is never closed");
        let mut conn = match self.checkout().await {
            Ok(conn) => conn,
            Err(e) => return (Err(e), None),
        };
        let envelope: &Envelope = message.envelope();
        let body = message.formatted();
        let mut permit = None;
        let sent = async {
            tokio::time::timeout(TIMEOUT, envelope_commands(&mut conn, envelope, &body)).await.map_err(|_| SendError::Timeout("sending the envelope"))??;
            permit = Some(gate.acquire().await.expect("the gate is never closed"));
            tokio::time::timeout(TIMEOUT * 2, conn.smtp.message(&body)).await.map_err(|_| SendError::Timeout("sending the message"))??;
            Ok::<_, SendError>(())
        }
        .await;
        if sent.is_ok() {
            self.idle.lock().await.push((conn, Instant::now()));
        } else {
            conn.smtp.abort().await;
        }
        (sent, permit)
    }

    async fn checkout(&self) -> Result<Connection, SendError> {
        loop {
            let popped = self.idle.lock().await.pop();
            let Some((mut conn, since)) = popped else {
                return self.connect().await;
            };
            let idle = since.elapsed();
            if idle > MAX_IDLE {
                conn.smtp.abort().await;
                continue;
            }
            if idle > TRUST_IDLE && !matches!(tokio::time::timeout(TIMEOUT, conn.smtp.test_connected()).await, Ok(true)) {
                conn.smtp.abort().await;
                continue;
            }
            return Ok(conn);
        }
    }

    /// Closes the idle connections politely (QUIT).
    pub async fn close(&self) {
        for (conn, _) in self.idle.lock().await.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.quit()).await;
        }
    }
}

/// `MAIL FROM` (with `SMTPUTF8` and `8BITMIME` where the addresses or the message need
/// them, as lettre does), `RCPT TO` per recipient, `DATA`: written together when the server
/// takes pipelined commands, their replies then read in order. The first refusal is the
/// answer; the caller then closes the connection, so replies left unread do not matter (and a
/// `354` to `DATA` after a refused recipient gets no data).
async fn envelope_commands(connection: &mut Connection, envelope: &Envelope, body: &[u8]) -> Result<(), SendError> {
    let Connection { smtp: conn, pipelining } = connection;
    let mut options = Vec::new();
    let non_ascii = envelope.from().into_iter().chain(envelope.to()).any(|a: &lettre::Address| !AsRef::<str>::as_ref(a).is_ascii());
    if non_ascii {
        if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
            return Err(SendError::Unsupported("the addresses are not ASCII and the server does not offer SMTPUTF8"));
        }
        options.push(MailParameter::SmtpUtfEight);
    }
    if !body.is_ascii() {
        if !conn.server_info().supports_feature(Extension::EightBitMime) {
            return Err(SendError::Unsupported("the message is not ASCII and the server does not offer 8BITMIME"));
        }
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let mail = Mail::new(envelope.from().cloned(), options);
    let rcpts = envelope.to().iter().map(|to| Rcpt::new(to.clone(), vec![]));
    if *pipelining {
        use std::fmt::Write;
        let mut group = mail.to_string();
        for rcpt in rcpts {
            let _ = write!(group, "{rcpt}");
        }
        let _ = write!(group, "{Data}");
        // lettre writes the group as one command and reads the first reply (MAIL's).
        conn.command(Pipelined(group)).await?;
        for _ in envelope.to() {
            conn.read_response().await?;
        }
        conn.read_response().await?;
    } else {
        conn.command(mail).await?;
        for rcpt in rcpts {
            conn.command(rcpt).await?;
        }
        conn.command(Data).await?;
    }
    Ok(())
}

/// Commands already formatted, each with its CRLF, to be written as one.
struct Pipelined(String);

impl std::fmt::Display for Pipelined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A socket that holds what is written until the writer turns to read.
///
/// lettre flushes every write, and writes a message's data and its final `.` separately:
/// with `TCP_NODELAY` each flush is a segment of its own and a wake-up of the server. SMTP is
/// a dialogue, the client writing and then reading the reply, so what was written goes out
/// when the reply is awaited (or the socket is shut down), all of it at once. A flush alone
/// sends nothing: nobody here waits for bytes to leave without then waiting for an answer.
/// Past [`Corked::HOLD`] bytes (a large message) the writes go out as they come.
#[derive(Debug)]
struct Corked {
    inner: Box<dyn AsyncTokioStream>,
    held: Vec<u8>,
    /// How much of `held` the socket has taken.
    sent: usize,
}

impl Corked {
    const HOLD: usize = 64 * 1024;

    fn new(inner: Box<dyn AsyncTokioStream>) -> Self {
        Self { inner, held: Vec::new(), sent: 0 }
    }

    /// Writes out and flushes what is held.
    fn poll_release(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        use std::task::{ready, Poll};
        use tokio::io::AsyncWrite;
        while self.sent < self.held.len() {
            let n = ready!(std::pin::Pin::new(&mut self.inner).poll_write(cx, &self.held[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.held.clear();
        self.sent = 0;
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
}

impl AsyncTokioStream for Corked {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.inner.peer_addr()
    }
}

impl tokio::io::AsyncRead for Corked {
    fn poll_read(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_release(cx))?;
        std::pin::Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Corked {
    fn poll_write(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &[u8]) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.held.len() >= Self::HOLD {
            std::task::ready!(this.poll_release(cx))?;
        }
        this.held.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: std::pin::Pin<&mut Self>, _cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_release(cx))?;
        std::pin::Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// `testSmtpSettings`: resolves the host, connects, negotiates TLS, logs in, and sends a test
/// message to `send_to` when given, over the very connection code the worker uses. Answers
/// the first step that failed; the whole test takes at most [`TIMEOUT`].
pub async fn probe(server: &SmtpServer, from: Option<Mailbox>, send_to: Option<Mailbox>) -> Result<(), Failure> {
    let mailer = Mailer::new(server.clone(), 1);
    let steps = async {
        let conn = mailer.connect().await.map_err(|e| classify(&e))?;
        conn.quit().await;
        if let (Some(from), Some(to)) = (from, send_to) {
            let message = Message::builder()
                .from(from)
                .to(to)
                .subject("Herald: SMTP settings test")
                .body(String::from("This message confirms that Herald can send email through your SMTP settings.\n"))
                .map_err(|e| Failure {
                    reason: FailureReason::Rejected,
                    smtp_code: None,
                    message: format!("cannot build the test message: {e}"),
                    transient: false,
                })?;
            mailer.send(&message).await.map_err(|e| classify(&e))?;
            mailer.close().await;
        }
        Ok(())
    };
    match tokio::time::timeout(TIMEOUT, steps).await {
        Ok(result) => result,
        Err(_) => {
            Err(Failure { reason: FailureReason::Timeout, smtp_code: None, message: format!("no answer within {} s", TIMEOUT.as_secs()), transient: true })
        }
    }
}
