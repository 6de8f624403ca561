//! The event bus that carries live events (audit events now; notifications later) from the
//! process that caused them to every process with a subscriber.
//!
//! With Redis, each process holds one pub/sub connection with one pattern subscription
//! (`<prefix>:*`) and fans messages out in memory to per-channel `broadcast` senders, as
//! mini-redis does: subscribers never open Redis connections of their own. Without Redis the
//! same in-memory fan-out is the whole bus (embedded, single process).
//!
//! A process hands what it publishes to its own subscribers directly, and to the others
//! through Redis: each message on Redis is prefixed with its sender's origin (a random id per
//! bus), and the listener drops the ones it sent itself. Local subscribers must not wait for
//! Redis: one account-wide event announced to ten thousand open panels of the publishing
//! process would otherwise make that round trip ten thousand times, on the same cores as the
//! panels. Order is kept per publisher; across processes there is none to keep.
//!
//! A value published in this process reaches its own subscribers as the value itself
//! ([`Message::value`]); only the other processes get its JSON, written after the local
//! deliveries. Ten thousand panels of one process then neither wait for ten thousand
//! announcements to be serialised nor parse one each. What the other processes get may also
//! be shorter than what the local subscribers got: one message on a topic that an
//! [`Expand`] registered in every process turns, there, into messages for that process's
//! own subscribers only (one account-wide event: one message through Redis, not ten
//! thousand, and each process builds just the announcements of the panels it holds).
//!
//! The bus is best-effort by design: a message published while a process is reconnecting to
//! Redis is not redelivered to the other processes. Consumers that must not lose anything
//! (the notification panel) replay from the database and use the bus only to learn that
//! there is something new. So publishing never waits for Redis: what goes to the other
//! processes is queued (bounded, [`REMOTE_QUEUE`]) for one sender task per process, and
//! dropped with a count (`herald_bus_dropped_total`) when the queue is full; a request that
//! publishes is never slower because Redis is slow or gone. [`Bus::state`] says how the
//! connection is, without a round trip.

use std::{
    any::Any,
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

/// Messages a slow subscriber may fall behind before it starts losing them (it is told, and
/// the panel feed then catches up from the database: a lag costs a read, never a
/// notification). Each channel allocates its slots up front, 40 bytes each, and every open
/// panel has a channel, so the capacity is kept small: every slot is paid by each idle panel.
const CHANNEL_CAPACITY: usize = 8;

/// Delivered to every local subscriber after the Redis subscription was re-established:
/// messages may have been lost meanwhile, and subscribers that keep state should re-read it.
pub const RESYNC: &str = r#"{"type":"resync"}"#;

/// Messages for the other processes that may wait for Redis; past that they are dropped.
pub const REMOTE_QUEUE: usize = 8192;
/// Messages sent to Redis in one pipeline.
const SEND_BATCH: usize = 1000;
/// How long one Redis command (or connecting) may take before it counts as failed.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// How the bus is connected, for `/readyz` and the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusState {
    /// In process only: there are no other processes to reach.
    Local,
    /// Subscribed to Redis, and the last messages sent there went through.
    Connected,
    /// Redis is unreachable or failing: messages to other processes are being lost, and
    /// this process's subscribers will resync when it is back.
    Reconnecting,
}

impl BusState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Connected => "connected",
            Self::Reconnecting => "reconnecting",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("encoding a bus message: {0}")]
    Encode(#[from] serde_json::Error),
}

/// What a subscriber receives: a text (from another process, or published as text), or a
/// value published in this process. One pointer, as the text alone was: every open panel's
/// channel holds its slots up front.
#[derive(Clone)]
pub struct Message(Arc<dyn Any + Send + Sync>);

impl Message {
    fn text(text: &str) -> Self {
        Self(Arc::new(Box::<str>::from(text)))
    }

    /// The message's text, unless it is a value of this process.
    pub fn as_text(&self) -> Option<&str> {
        self.0.downcast_ref::<Box<str>>().map(|t| &**t)
    }

    /// The value published in this process, if it is one and of type `T`.
    pub fn value<T: Any>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }

    /// A value for this process's subscribers (see [`Expand`]).
    pub fn of_value<T: Any + Send + Sync>(value: T) -> Self {
        Self(Arc::new(value))
    }
}

/// Turns a message of a topic, as it arrives from another process, into the messages it
/// stands for on this process's channels.
pub trait Expand: Send + Sync {
    /// `open` says whether a channel has subscribers in this process; only theirs are wanted.
    /// A message that cannot be read (from a process of another version) is an `Err` with
    /// the reason: every subscriber of this process is then told to resync ([`RESYNC`]), as
    /// after lost messages, since nobody can tell whose messages it held.
    fn expand(&self, payload: &str, open: &dyn Fn(&str) -> bool) -> Result<Vec<(String, Message)>, Unreadable>;
}

/// A topic message this process cannot read (one from a process of another version).
#[derive(Debug, thiserror::Error)]
#[error("unreadable bus message: {0}")]
pub struct Unreadable(#[from] pub serde_json::Error);

#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

/// Length of an origin on the wire: 32 hex digits and a `|`.
const ORIGIN_LEN: usize = 33;

struct Inner {
    prefix: String,
    /// This bus's origin as it prefixes each message it sends to Redis (`<32 hex digits>|`).
    origin: String,
    channels: Mutex<HashMap<String, broadcast::Sender<Message>>>,
    /// Topics whose messages from other processes are expanded, not delivered as they are.
    expanders: Mutex<HashMap<String, Arc<dyn Expand>>>,
    /// Messages (Redis channel, wire bytes) for the sender task; `None` without Redis.
    remote: Option<mpsc::Sender<(String, Vec<u8>)>>,
    /// Whether the pattern subscription is live, and whether the last send went through.
    subscribed: AtomicBool,
    sending: AtomicBool,
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

    fn with(prefix: String, remote: Option<mpsc::Sender<(String, Vec<u8>)>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                prefix,
                origin: format!("{}|", uuid::Uuid::new_v4().simple()),
                channels: Mutex::new(HashMap::new()),
                expanders: Mutex::new(HashMap::new()),
                remote,
                subscribed: AtomicBool::new(true),
                sending: AtomicBool::new(true),
                listener: Mutex::new(None),
            }),
        }
    }

    /// A bus over Redis. Returns once the pattern subscription is live, so that nothing
    /// published after start-up is missed.
    pub async fn redis(url: &str, prefix: &str) -> Result<Self, BusError> {
        let client = redis::Client::open(url)?;
        // Commands fail fast and reconnect in the background: only the sender task waits.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        let manager = client.get_connection_manager_with_config(config).await?;
        let (queue, queued) = mpsc::channel(REMOTE_QUEUE);
        let bus = Self::with(prefix.to_string(), Some(queue));
        tokio::spawn(send_remote(manager, queued, Arc::downgrade(&bus.inner)));
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
                        inner.received(channel, msg.get_payload_bytes());
                    }
                    tracing::warn!("redis pub/sub connection lost; reconnecting");
                    if let Some(inner) = weak.upgrade() {
                        inner.subscribed.store(false, Ordering::Release);
                        inner.report_state();
                    }
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
                            inner.subscribed.store(true, Ordering::Release);
                            inner.report_state();
                            metrics::counter!("herald_bus_reconnects_total").increment(1);
                            inner.deliver_all(Message::text(RESYNC));
                        }
                        Err(e) => tracing::warn!(error = %e, "redis psubscribe failed"),
                    },
                    Err(e) => tracing::warn!(error = %e, "redis pub/sub reconnect failed"),
                }
            }
        });
        *bus.inner.listener.lock().expect("bus listener lock") = Some(task);
        bus.inner.report_state();
        Ok(bus)
    }

    pub fn is_redis(&self) -> bool {
        self.inner.remote.is_some()
    }

    /// Publishes to every subscriber of `channel`, in every process.
    pub fn publish(&self, channel: &str, payload: &str) {
        self.inner.deliver(channel, Message::text(payload));
        self.inner.send(channel, payload);
    }

    /// Publishes values, in order: this process's subscribers get each value itself, at once;
    /// the other processes its JSON, serialised after the local deliveries.
    pub fn publish_values<T: Serialize + Send + Sync + 'static>(&self, messages: Vec<(String, T)>) -> Result<(), BusError> {
        let messages: Vec<(String, Arc<T>)> = messages.into_iter().map(|(channel, value)| (channel, Arc::new(value))).collect();
        self.deliver_values(&messages);
        if self.is_redis() {
            for (channel, value) in &messages {
                self.inner.send(channel, &serde_json::to_string(&**value)?);
            }
        }
        Ok(())
    }

    /// Hands values to this process's subscribers only: what the other processes get is
    /// the caller's to send ([`Bus::publish_remote`]), in another form.
    pub fn deliver_values<T: Send + Sync + 'static>(&self, messages: &[(String, Arc<T>)]) {
        for (channel, value) in messages {
            self.inner.deliver(channel, Message(value.clone()));
        }
    }

    /// Sends texts to the other processes only, in order: to channels, or to topics that each
    /// process [expands](Bus::expand). Nothing without Redis.
    pub fn publish_remote(&self, messages: &[(String, String)]) {
        for (channel, payload) in messages {
            self.inner.send(channel, payload);
        }
    }

    /// Messages from other processes on `topic` go through `expander` from now on.
    pub fn expand(&self, topic: &str, expander: Arc<dyn Expand>) {
        self.inner.expanders.lock().expect("bus expanders lock").insert(topic.to_string(), expander);
    }

    pub fn subscribe(&self, channel: &str) -> broadcast::Receiver<Message> {
        let mut channels = self.inner.channels.lock().expect("bus channels lock");
        channels.entry(channel.to_string()).or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0).subscribe()
    }

    /// How the bus is connected now (no round trip: `/readyz` answers at once).
    pub fn state(&self) -> BusState {
        self.inner.state()
    }
}

/// The sender task: what this process publishes for the others, in order, in pipelines of up
/// to [`SEND_BATCH`]. A pipeline that fails is lost (the bus is best effort; subscribers
/// elsewhere resync when their own connection comes back) and the bus reports itself
/// reconnecting until one goes through. Ends with the bus.
async fn send_remote(manager: redis::aio::ConnectionManager, mut queued: mpsc::Receiver<(String, Vec<u8>)>, bus: std::sync::Weak<Inner>) {
    let mut batch = Vec::with_capacity(SEND_BATCH);
    while queued.recv_many(&mut batch, SEND_BATCH).await > 0 {
        let mut pipe = redis::pipe();
        for (channel, wire) in batch.drain(..) {
            pipe.cmd("PUBLISH").arg(channel).arg(wire).ignore();
        }
        let mut conn = manager.clone();
        let sent: Result<(), _> = pipe.query_async(&mut conn).await;
        let Some(inner) = bus.upgrade() else { return };
        if let Err(e) = &sent {
            metrics::counter!("herald_bus_send_failures_total").increment(1);
            if inner.sending.swap(false, Ordering::AcqRel) {
                tracing::warn!(error = %e, "sending to redis failed; messages to other processes are lost until it is back");
                inner.report_state();
            }
        } else if !inner.sending.swap(true, Ordering::AcqRel) {
            tracing::info!("sending to redis works again");
            inner.report_state();
        }
    }
}

impl Inner {
    fn state(&self) -> BusState {
        if self.remote.is_none() {
            BusState::Local
        } else if self.subscribed.load(Ordering::Acquire) && self.sending.load(Ordering::Acquire) {
            BusState::Connected
        } else {
            BusState::Reconnecting
        }
    }

    /// `herald_bus_connected`: 1 while Redis carries this process's messages both ways.
    fn report_state(&self) {
        if self.remote.is_some() {
            metrics::gauge!("herald_bus_connected").set(if self.state() == BusState::Connected { 1.0 } else { 0.0 });
        }
    }

    /// Queues a message for the other processes; drops it, counted, when the queue is full.
    fn send(&self, channel: &str, payload: &str) {
        let Some(queue) = &self.remote else { return };
        if let Err(mpsc::error::TrySendError::Full(_)) = queue.try_send((format!("{}:{channel}", self.prefix), self.wire(payload))) {
            metrics::counter!("herald_bus_dropped_total").increment(1);
        }
    }

    /// A message as it goes to Redis: prefixed with this bus's origin.
    fn wire(&self, payload: &str) -> Vec<u8> {
        let mut wire = Vec::with_capacity(ORIGIN_LEN + payload.len());
        wire.extend_from_slice(self.origin.as_bytes());
        wire.extend_from_slice(payload.as_bytes());
        wire
    }

    /// A message from Redis: delivered unless this bus sent it (its subscribers have it).
    fn received(&self, channel: &str, wire: &[u8]) {
        let Some(payload) = wire.get(ORIGIN_LEN..).filter(|_| wire[ORIGIN_LEN - 1] == b'|') else {
            tracing::warn!(channel, "bus message without an origin dropped");
            return;
        };
        if wire.starts_with(self.origin.as_bytes()) {
            return;
        }
        let payload = match std::str::from_utf8(payload) {
            Ok(payload) => payload,
            Err(e) => return tracing::warn!(error = %e, channel, "non-text bus message dropped"),
        };
        let expander = self.expanders.lock().expect("bus expanders lock").get(channel).cloned();
        match expander {
            Some(expander) => {
                let messages = {
                    let channels = self.channels.lock().expect("bus channels lock");
                    expander.expand(payload, &|c| channels.contains_key(c))
                };
                match messages {
                    Ok(messages) => {
                        for (channel, message) in messages {
                            self.deliver(&channel, message);
                        }
                    }
                    Err(reason) => {
                        tracing::warn!(topic = channel, error = %reason, "unreadable bus message; every local subscriber resyncs");
                        self.deliver_all(Message::text(RESYNC));
                    }
                }
            }
            None => self.deliver(channel, Message::text(payload)),
        }
    }

    fn deliver_all(&self, payload: Message) {
        let mut channels = self.channels.lock().expect("bus channels lock");
        channels.retain(|_, sender| sender.send(payload.clone()).is_ok());
    }

    fn deliver(&self, channel: &str, payload: Message) {
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
        bus.publish("a", "hello");
        assert_eq!(a1.recv().await.unwrap().as_text(), Some("hello"));
        assert_eq!(a2.recv().await.unwrap().as_text(), Some("hello"));
        assert!(b.try_recv().is_err());
    }

    #[tokio::test]
    async fn local_subscribers_get_a_published_value_itself() {
        let bus = Bus::local();
        let mut rx = bus.subscribe("a");
        bus.publish_values(vec![("a".to_string(), vec![1u32, 2])]).unwrap();
        let message = rx.recv().await.unwrap();
        assert_eq!(message.value::<Vec<u32>>(), Some(&vec![1, 2]));
        assert_eq!(message.as_text(), None);
        assert_eq!(message.value::<String>(), None, "a value is only ever read as its own type");
    }

    /// Splits "a,b,c" into a message per listed channel that is open, noting which those were.
    #[derive(Default)]
    struct Split(Mutex<Vec<String>>);

    impl Expand for Split {
        fn expand(&self, payload: &str, open: &dyn Fn(&str) -> bool) -> Result<Vec<(String, Message)>, Unreadable> {
            if payload.is_empty() {
                return Err(serde_json::from_str::<()>("").unwrap_err().into());
            }
            let open: Vec<&str> = payload.split(',').filter(|c| open(c)).collect();
            self.0.lock().unwrap().extend(open.iter().map(|c| c.to_string()));
            Ok(open.into_iter().map(|c| (c.to_string(), Message::of_value(c.len()))).collect())
        }
    }

    #[tokio::test]
    async fn a_topic_from_another_process_is_expanded_for_the_open_channels_only() {
        let (here, elsewhere) = (Bus::local(), Bus::local());
        let split = Arc::new(Split::default());
        here.expand("topic", split.clone());
        let (mut a, mut bb) = (here.subscribe("a"), here.subscribe("bb"));
        here.inner.received("topic", &elsewhere.inner.wire("a,bb,unopened"));
        assert_eq!(a.recv().await.unwrap().value::<usize>(), Some(&1));
        assert_eq!(bb.recv().await.unwrap().value::<usize>(), Some(&2));
        assert_eq!(*split.0.lock().unwrap(), ["a", "bb"], "nothing is built for a channel without subscribers here");
        here.inner.received("topic", &here.inner.wire("a"));
        assert!(a.try_recv().is_err(), "its own topic messages are dropped like the others");
        here.inner.received("topic", &elsewhere.inner.wire(""));
        assert_eq!(a.try_recv().unwrap().as_text(), Some(RESYNC), "an unreadable one makes every subscriber resync");
        assert_eq!(bb.try_recv().unwrap().as_text(), Some(RESYNC));
    }

    #[tokio::test]
    async fn messages_from_redis_are_delivered_unless_this_bus_sent_them() {
        let (here, elsewhere) = (Bus::local(), Bus::local());
        let mut rx = here.subscribe("a");
        here.inner.received("a", &here.inner.wire("mine"));
        here.inner.received("a", b"no origin");
        here.inner.received("a", &elsewhere.inner.wire("theirs"));
        assert_eq!(rx.recv().await.unwrap().as_text(), Some("theirs"));
        assert!(rx.try_recv().is_err(), "its own message and the one without an origin are dropped");
    }
}
