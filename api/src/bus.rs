//! The event bus that carries live events (audit events now; notifications later) from the
//! process that caused them to every process with a subscriber.
//!
//! With Redis, each process holds one pub/sub connection with one pattern subscription
//! (`<prefix>:*`) and fans messages out in memory to per-channel `broadcast` senders, as
//! mini-redis does: subscribers never open Redis connections of their own. Without Redis the
//! same in-memory fan-out is the whole bus (embedded, single process).
//!
//! The bus is best-effort by design: a message published while a process is reconnecting to
//! Redis is not redelivered. Consumers that must not lose anything (the notification panel)
//! replay from the database and use the bus only to learn that there is something new.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::StreamExt;
use tokio::sync::broadcast;

/// Messages a slow subscriber may fall behind before it starts losing them (it is told, and
/// the panel feed then catches up from the database: a lag costs a read, never a
/// notification). Each channel allocates its slots up front, 40 bytes each, and every open
/// panel has a channel: 8 rather than 16 saved 0.3 KiB of each idle panel.
const CHANNEL_CAPACITY: usize = 8;

/// Delivered to every local subscriber after the Redis subscription was re-established:
/// messages may have been lost meanwhile, and subscribers that keep state should re-read it.
pub const RESYNC: &str = r#"{"type":"resync"}"#;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

struct Inner {
    prefix: String,
    channels: Mutex<HashMap<String, broadcast::Sender<Arc<str>>>>,
    redis: Option<redis::aio::ConnectionManager>,
    listener: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.listener.lock().expect("bus listener lock").take() {
            task.abort();
        }
    }
}

impl Bus {
    /// An in-process bus.
    pub fn local() -> Self {
        Self::with(String::new(), None)
    }

    fn with(prefix: String, redis: Option<redis::aio::ConnectionManager>) -> Self {
        Self {
            inner: Arc::new(Inner { prefix, channels: Mutex::new(HashMap::new()), redis, listener: Mutex::new(None) }),
        }
    }

    /// A bus over Redis. Returns once the pattern subscription is live, so that nothing
    /// published after start-up is missed.
    pub async fn redis(url: &str, prefix: &str) -> Result<Self, BusError> {
        let client = redis::Client::open(url)?;
        let manager = client.get_connection_manager().await?;
        let bus = Self::with(prefix.to_string(), Some(manager));
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.psubscribe(format!("{prefix}:*")).await?;
        let weak = Arc::downgrade(&bus.inner);
        let pattern = format!("{prefix}:*");
        let task = tokio::spawn(async move {
            let mut pubsub = Some(pubsub);
            let mut backoff = Duration::from_millis(100);
            loop {
                if let Some(mut live) = pubsub.take() {
                    backoff = Duration::from_millis(100);
                    let mut messages = live.on_message();
                    while let Some(msg) = messages.next().await {
                        let Some(inner) = weak.upgrade() else { return };
                        let Some(channel) = msg.get_channel_name().strip_prefix(&inner.prefix).and_then(|c| c.strip_prefix(':')) else {
                            continue;
                        };
                        match msg.get_payload::<String>() {
                            Ok(payload) => inner.deliver(channel, Arc::from(payload)),
                            Err(e) => tracing::warn!(error = %e, channel, "non-text bus message dropped"),
                        }
                    }
                    tracing::warn!("redis pub/sub connection lost; reconnecting");
                }
                if weak.strong_count() == 0 {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                match client.get_async_pubsub().await {
                    Ok(mut fresh) => match fresh.psubscribe(&pattern).await {
                        Ok(()) => {
                            pubsub = Some(fresh);
                            // Whatever was published meanwhile is lost: tell every local
                            // subscriber to catch up from the database.
                            let Some(inner) = weak.upgrade() else { return };
                            inner.deliver_all(Arc::from(RESYNC));
                        }
                        Err(e) => tracing::warn!(error = %e, "redis psubscribe failed"),
                    },
                    Err(e) => tracing::warn!(error = %e, "redis pub/sub reconnect failed"),
                }
            }
        });
        *bus.inner.listener.lock().expect("bus listener lock") = Some(task);
        Ok(bus)
    }

    pub fn is_redis(&self) -> bool {
        self.inner.redis.is_some()
    }

    /// Publishes to every subscriber of `channel`, in every process.
    pub async fn publish(&self, channel: &str, payload: &str) -> Result<(), BusError> {
        match &self.inner.redis {
            Some(manager) => {
                let mut conn = manager.clone();
                let _receivers: i64 = redis::cmd("PUBLISH")
                    .arg(format!("{}:{channel}", self.inner.prefix))
                    .arg(payload)
                    .query_async(&mut conn)
                    .await?;
                Ok(())
            }
            None => {
                self.inner.deliver(channel, Arc::from(payload));
                Ok(())
            }
        }
    }

    /// Publishes several messages in one round trip (a Redis pipeline), in order.
    pub async fn publish_many(&self, messages: &[(String, String)]) -> Result<(), BusError> {
        match &self.inner.redis {
            Some(manager) => {
                for chunk in messages.chunks(1000) {
                    let mut pipe = redis::pipe();
                    for (channel, payload) in chunk {
                        pipe.cmd("PUBLISH").arg(format!("{}:{channel}", self.inner.prefix)).arg(payload).ignore();
                    }
                    let mut conn = manager.clone();
                    let () = pipe.query_async(&mut conn).await?;
                }
                Ok(())
            }
            None => {
                for (channel, payload) in messages {
                    self.inner.deliver(channel, Arc::from(payload.as_str()));
                }
                Ok(())
            }
        }
    }

    pub fn subscribe(&self, channel: &str) -> broadcast::Receiver<Arc<str>> {
        let mut channels = self.inner.channels.lock().expect("bus channels lock");
        channels.entry(channel.to_string()).or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0).subscribe()
    }

    /// For `/readyz`: whether the bus can carry a message now.
    pub async fn ping(&self) -> Result<(), BusError> {
        if let Some(manager) = &self.inner.redis {
            let mut conn = manager.clone();
            let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        }
        Ok(())
    }
}

impl Inner {
    fn deliver_all(&self, payload: Arc<str>) {
        let mut channels = self.channels.lock().expect("bus channels lock");
        channels.retain(|_, sender| sender.send(payload.clone()).is_ok());
    }

    fn deliver(&self, channel: &str, payload: Arc<str>) {
        let mut channels = self.channels.lock().expect("bus channels lock");
        if let Some(sender) = channels.get(channel) {
            if sender.send(payload).is_err() {
                // No receiver left: forget the channel so the map does not grow forever.
                channels.remove(channel);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_bus_delivers_to_each_subscriber_of_the_channel_only() {
        let bus = Bus::local();
        let mut a1 = bus.subscribe("a");
        let mut a2 = bus.subscribe("a");
        let mut b = bus.subscribe("b");
        bus.publish("a", "hello").await.unwrap();
        assert_eq!(&*a1.recv().await.unwrap(), "hello");
        assert_eq!(&*a2.recv().await.unwrap(), "hello");
        assert!(b.try_recv().is_err());
    }
}
