//! A real Dovecot IMAP server for Herald's tests and benchmarks (included by path from both).

use std::time::Duration;

/// A real Dovecot IMAP server on loopback (Debian's dovecot-imapd) with its own configuration,
/// a passwd-file of test users and a temporary mail store. Dovecot will not serve mail as
/// uid 0: when the tests run as root, the store belongs to `nobody`. With an introspection
/// URL it also takes XOAUTH2 and OAUTHBEARER, checking bearer tokens with the identity
/// provider there (Dovecot's `oauth2` passdb); passwords then stay PLAIN and LOGIN only, so a
/// token is never tried as a password.
pub struct TestImap {
    pub port: u16,
    _dir: tempfile::TempDir,
    child: tokio::process::Child,
}

impl TestImap {
    /// Starts Dovecot with `users` (address, password).
    pub async fn start(users: &[(&str, &str)]) -> Self {
        Self::start_with(users, None).await
    }

    /// Starts Dovecot with `users`, and bearer tokens checked at `introspection_url` (RFC 7662).
    pub async fn start_with(users: &[(&str, &str)], introspection_url: Option<&str>) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mail = root.join("mail");
        std::fs::create_dir(&mail).unwrap();
        let running_as_root = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false);
        let (mail_user, mail_group) = if running_as_root {
            std::os::unix::fs::chown(&mail, Some(65534), Some(65534)).expect("chown the mail store to nobody");
            ("nobody".to_string(), "nogroup".to_string())
        } else {
            let me = std::env::var("USER").unwrap_or_else(|_| "nobody".into());
            (me.clone(), me)
        };
        let passwd: String = users.iter().map(|(u, p)| format!("{u}:{{PLAIN}}{p}::::::\n")).collect();
        std::fs::write(root.join("passwd"), passwd).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let unprivileged = if running_as_root {
            String::new()
        } else {
            format!("default_internal_user = {mail_user}\ndefault_login_user = {mail_user}\ndefault_internal_group = {mail_group}\n")
        };
        let r = root.display();
        // No delay after a failed login, and no growing penalty for a client that failed
        // before (every test connects from 127.0.0.1): a refused token is an expected step here.
        let (mechanisms, oauth_passdb) = match introspection_url {
            Some(url) => {
                std::fs::write(
                    root.join("oauth2.conf.ext"),
                    format!(
                        "introspection_mode = post\nintrospection_url = {url}\nusername_attribute = username\nactive_attribute = active\nactive_value = true\n"
                    ),
                )
                .unwrap();
                (
                    "plain login xoauth2 oauthbearer",
                    format!("passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {r}/oauth2.conf.ext\n}}\n"),
                )
            }
            None => ("plain login", String::new()),
        };
        let config = format!(
            "base_dir = {r}/run\nstate_dir = {r}/state\nlog_path = {r}/dovecot.log\n{unprivileged}\
             protocols = imap\nlisten = 127.0.0.1\nssl = no\ndisable_plaintext_auth = no\nauth_mechanisms = {mechanisms}\nauth_failure_delay = 0\n\
             first_valid_uid = 1\nmail_location = maildir:~/Maildir\n\
             {oauth_passdb}passdb {{\n  driver = passwd-file\n  mechanisms = plain login\n  args = scheme=PLAIN {r}/passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid={mail_user} gid={mail_group} home={r}/mail/%u\n}}\n\
             service imap-login {{\n  chroot =\n  inet_listener imap {{\n    port = {port}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
             service anvil {{\n  chroot =\n  unix_listener anvil-auth-penalty {{\n    mode = 0\n  }}\n}}\n"
        );
        std::fs::write(root.join("dovecot.conf"), config).unwrap();
        let child = tokio::process::Command::new("/usr/sbin/dovecot")
            .arg("-F")
            .arg("-c")
            .arg(root.join("dovecot.conf"))
            .kill_on_drop(true)
            .spawn()
            .expect("/usr/sbin/dovecot runs (Debian package dovecot-imapd)");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Self { port, _dir: dir, child }
    }

    /// A logged-in session as `user`, to arrange the mailbox the way a test needs it.
    pub async fn session(&self, user: &str, password: &str) -> api::imap::Session {
        let server = api::imap::ImapServer {
            host: "127.0.0.1".into(),
            port: Some(self.port),
            security: api::smtp::Security::None,
            login: user.into(),
            credential: api::imap::Credential::Password(password.into()),
        };
        api::imap::connect(&server).await.expect("log in to the test Dovecot")
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
