//! Postfix's `smtp-sink` for the benchmarks: started on a free port, its count of accepted
//! messages read from its `-c` output.

use std::{
    process::Stdio,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use tokio::io::AsyncReadExt;

/// Postfix's smtp-sink, with its running count of accepted messages.
pub struct Sink {
    pub port: u16,
    count: Arc<AtomicU64>,
    _child: tokio::process::Child,
}

impl Sink {
    pub async fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut cmd = tokio::process::Command::new("smtp-sink");
        // smtp-sink refuses to run as root without a user to switch to.
        if std::env::var("USER").map_or(true, |u| u == "root") {
            cmd.args(["-u", "nobody"]);
        }
        // `-m`: room for many connection pools (one per account) on one sink; its default is
        // 256 sessions, and connections beyond wait in the backlog.
        let mut child = cmd.args(["-m", "2000", "-c", &format!("127.0.0.1:{port}"), "1024"]).stdout(Stdio::piped()).kill_on_drop(true).spawn()?;
        let mut stdout = child.stdout.take().expect("piped");
        let count = Arc::new(AtomicU64::new(0));
        let counter = count.clone();
        // `-c` rewrites "sess=… quit=… mesg=N" in place after each event.
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            let mut tail = String::new();
            while let Ok(read) = stdout.read(&mut buf).await {
                if read == 0 {
                    break;
                }
                tail.push_str(&String::from_utf8_lossy(&buf[..read]));
                if let Some(at) = tail.rfind("mesg=") {
                    let digits: String = tail[at + 5..].chars().take_while(|c| c.is_ascii_digit()).collect();
                    if let Ok(n) = digits.parse() {
                        counter.store(n, Ordering::SeqCst);
                    }
                    tail = tail[at..].to_string();
                }
            }
        });
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self { port, count, _child: child })
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    pub async fn wait_for(&self, target: u64, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.count() < target && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
