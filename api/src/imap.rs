//! Talking to users' IMAP servers (async-imap over our own sockets): connecting with the
//! mailbox's security, logging in, and listing folders. Shared by `testMailboxConnection`
//! (api) and the worker's scans, so that a test that passes means the worker can read.
//!
//! Failures are sorted like SMTP ones ([`crate::smtp::FailureReason`]): what a person can act
//! on, and whether a retry may help.

use std::time::Duration;

use futures_util::TryStreamExt;
use tokio::net::TcpStream;

pub use crate::net::{Credential, Stream};
use crate::smtp::{Failure, FailureReason, Security, TIMEOUT};

/// An IMAP server with the mailbox's login and opened credential (`Debug` hides it).
#[derive(Clone, Debug)]
pub struct ImapServer {
    pub host: String,
    pub port: Option<u16>,
    pub security: Security,
    pub login: String,
    pub credential: Credential,
}

impl ImapServer {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(default_port(self.security))
    }
}

/// 993 for implicit TLS, 143 otherwise.
pub fn default_port(security: Security) -> u16 {
    match security {
        Security::Tls => 993,
        Security::Starttls | Security::None => 143,
    }
}

pub type Session = async_imap::Session<Stream>;

#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("{step}: {source}")]
    Io { step: &'static str, source: std::io::Error },
    #[error("no answer within {secs} s while {0}", secs = TIMEOUT.as_secs())]
    Timeout(&'static str),
    #[error("{step}: {source}")]
    Imap { step: &'static str, source: async_imap::error::Error },
    #[error("the server refused the login: {0}")]
    Login(String),
    #[error("the server does not offer STARTTLS: {0}")]
    NoStartTls(String),
}

const STEP_RESOLVE: &str = "resolving the host name";
const STEP_CONNECT: &str = "connecting";
const STEP_TLS: &str = "TLS handshake";

/// Sorts a failure for people and retries.
pub fn classify(err: &ImapError) -> Failure {
    let message = err.to_string();
    let (reason, transient) = match err {
        ImapError::Timeout(_) => (FailureReason::Timeout, true),
        ImapError::Io { step, source } => match (*step, source.kind()) {
            (STEP_TLS, _) => (FailureReason::Tls, false),
            (_, std::io::ErrorKind::ConnectionRefused) => (FailureReason::ConnectionRefused, true),
            (STEP_RESOLVE, _) => (FailureReason::NameResolution, true),
            _ => (FailureReason::Protocol, true),
        },
        ImapError::Login(_) => (FailureReason::Authentication, false),
        ImapError::NoStartTls(_) => (FailureReason::Tls, false),
        ImapError::Imap { step, source } => match source {
            // A server speaking TLS to a plain client (or the reverse) answers garbage.
            async_imap::error::Error::Parse(_) | async_imap::error::Error::ConnectionLost if *step == "reading the greeting" => (FailureReason::Tls, false),
            _ => (FailureReason::Protocol, true),
        },
    };
    Failure { reason, smtp_code: None, message, transient }
}

fn io(step: &'static str) -> impl FnOnce(std::io::Error) -> ImapError {
    move |source| ImapError::Io { step, source }
}

async fn within<T>(step: &'static str, f: impl std::future::Future<Output = T>) -> Result<T, ImapError> {
    tokio::time::timeout(TIMEOUT, f).await.map_err(|_| ImapError::Timeout(step))
}

async fn tls(host: &str, tcp: TcpStream) -> Result<Stream, ImapError> {
    within(STEP_TLS, Stream::tls(host, tcp)).await?.map_err(io(STEP_TLS))
}

async fn greeting(client: &mut async_imap::Client<Stream>) -> Result<(), ImapError> {
    match within("reading the greeting", client.read_response()).await? {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ImapError::Imap { step: "reading the greeting", source: async_imap::error::Error::ConnectionLost }),
        Err(source) => Err(ImapError::Io { step: "reading the greeting", source }),
    }
}

/// Connects with the mailbox's security and logs in.
pub async fn connect(server: &ImapServer) -> Result<Session, ImapError> {
    let addresses: Vec<_> = within(STEP_RESOLVE, tokio::net::lookup_host((server.host.as_str(), server.port()))).await?.map_err(io(STEP_RESOLVE))?.collect();
    let tcp = within(STEP_CONNECT, TcpStream::connect(&addresses[..])).await?.map_err(io(STEP_CONNECT))?;
    tcp.set_nodelay(true).map_err(io(STEP_CONNECT))?;
    let client = match server.security {
        Security::Tls => {
            let mut client = async_imap::Client::new(tls(&server.host, tcp).await?);
            greeting(&mut client).await?;
            client
        }
        Security::None => {
            let mut client = async_imap::Client::new(Stream::Plain(tcp));
            greeting(&mut client).await?;
            client
        }
        Security::Starttls => {
            let mut client = async_imap::Client::new(Stream::Plain(tcp));
            greeting(&mut client).await?;
            within("negotiating STARTTLS", client.run_command_and_check_ok("STARTTLS", None)).await?.map_err(|e| ImapError::NoStartTls(e.to_string()))?;
            let Stream::Plain(tcp) = client.into_inner() else { unreachable!("STARTTLS starts from a plain socket") };
            // No greeting after STARTTLS (RFC 3501 §6.2.1).
            async_imap::Client::new(tls(&server.host, tcp).await?)
        }
    };
    let signed_in = match &server.credential {
        Credential::Password(password) => within("logging in", client.login(&server.login, password)).await?,
        Credential::AccessToken(token) => {
            within("logging in", client.authenticate("XOAUTH2", Xoauth2 { response: Some(Credential::xoauth2(&server.login, token)) })).await?
        }
    };
    match signed_in {
        Ok(session) => Ok(session),
        Err((async_imap::error::Error::No(text), _)) | Err((async_imap::error::Error::Bad(text), _)) => Err(ImapError::Login(text)),
        Err((source, _)) => Err(ImapError::Imap { step: "logging in", source }),
    }
}

/// SASL XOAUTH2: the initial response, then an empty answer to the error challenge a server
/// sends before it refuses a token (its JSON status), so that the refusal comes as a NO.
struct Xoauth2 {
    response: Option<String>,
}

impl async_imap::Authenticator for Xoauth2 {
    type Response = String;

    fn process(&mut self, _challenge: &[u8]) -> String {
        self.response.take().unwrap_or_default()
    }
}

/// Whether the server has CONDSTORE (RFC 7162): then a folder's HIGHESTMODSEQ, read with
/// STATUS, says whether anything in it changed since it was last read.
pub async fn has_condstore(session: &mut Session) -> Result<bool, ImapError> {
    let capabilities =
        within("reading the capabilities", session.capabilities()).await?.map_err(|source| ImapError::Imap { step: "reading the capabilities", source })?;
    Ok(capabilities.has_str("CONDSTORE"))
}

/// A folder of the server, as the settings page offers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Folder {
    /// The server's name for it (modified UTF-7), used to select it.
    pub path: String,
    /// The path as people read it (decoded from modified UTF-7).
    pub name: String,
    pub delimiter: Option<String>,
    /// False for `\Noselect` containers, which hold folders but no mail.
    pub selectable: bool,
}

pub async fn folders(session: &mut Session) -> Result<Vec<Folder>, ImapError> {
    let names: Vec<_> = within("listing folders", async { session.list(Some(""), Some("*")).await?.try_collect::<Vec<_>>().await })
        .await?
        .map_err(|source| ImapError::Imap { step: "listing folders", source })?;
    let mut folders: Vec<Folder> = names
        .iter()
        .map(|n| Folder {
            path: n.name().to_string(),
            name: utf7_imap::decode_utf7_imap(n.name().to_string()),
            delimiter: n.delimiter().map(String::from),
            selectable: !n.attributes().iter().any(|a| matches!(a, async_imap::types::NameAttribute::NoSelect)),
        })
        .collect();
    folders.sort_by(|a, b| (a.path != "INBOX", &a.name).cmp(&(b.path != "INBOX", &b.name)));
    Ok(folders)
}

/// `testMailboxConnection`: connects, logs in and lists the folders, in at most [`TIMEOUT`].
pub async fn probe(server: &ImapServer) -> Result<Vec<Folder>, Failure> {
    let steps = async {
        let mut session = connect(server).await?;
        let folders = folders(&mut session).await?;
        let _ = tokio::time::timeout(Duration::from_secs(1), session.logout()).await;
        Ok::<_, ImapError>(folders)
    };
    match tokio::time::timeout(TIMEOUT, steps).await {
        Ok(Ok(folders)) => Ok(folders),
        Ok(Err(e)) => Err(classify(&e)),
        Err(_) => {
            Err(Failure { reason: FailureReason::Timeout, smtp_code: None, message: format!("no answer within {} s", TIMEOUT.as_secs()), transient: true })
        }
    }
}
