//! GraphQL over WebSocket at `/graphql/ws`: the graphql-transport-ws protocol, and the legacy
//! graphql-ws (subscriptions-transport-ws) one for older clients.
//!
//! Written here rather than taken from async-graphql-axum because the guarantees Herald
//! needs are not all there: `connection_init` must arrive within a deadline and carry a valid
//! token or the socket closes with the protocol's code (4408, 4403) before any data flows;
//! an operation before the handshake closes with 4401; idle sockets get WebSocket pings
//! and a peer silent for two ping periods is dropped; a client too slow to take a message
//! within [`SEND_TIMEOUT`] is dropped rather than buffered without bound. Every connection
//! runs on its own task, so a slow client never holds up another.

use std::time::Duration;

use axum::{
    extract::{
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
        State,
    },
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use futures_util::{stream::BoxStream, FutureExt, SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::{sleep, Instant};
use tokio_stream::StreamMap;

use crate::{auth, graphql};

/// Read buffer of each socket.
const SOCKET_BUFFER: usize = 1024;

/// Results queued for a socket are written once this many bytes are waiting, or when no
/// further result is ready. The buffer is not allocated up front: it grows to what a burst
/// holds (a panel's new row and the counts after it) and is reused.
const WRITE_BATCH: usize = 4096;

/// Results written to a socket before it is flushed, at most, when more keep coming.
const RESULTS_PER_FLUSH: usize = 16;

/// How long one message may take to reach a client before it is judged too slow.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

pub const TRANSPORT_WS: &str = "graphql-transport-ws";
pub const LEGACY_WS: &str = "graphql-ws";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    /// graphql-transport-ws (the graphql-ws library).
    Transport,
    /// subscriptions-transport-ws (Apollo's legacy protocol, subprotocol `graphql-ws`).
    Legacy,
}

pub async fn upgrade(State(schemas): State<graphql::Schemas>, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    let app = schemas.app();
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        if !origin_allowed(&app.config.cors_origins, origin.to_str().unwrap_or(""), host) {
            return (StatusCode::FORBIDDEN, "WebSocket origin not allowed").into_response();
        }
    }
    ws.protocols([TRANSPORT_WS, LEGACY_WS])
        // Most sockets are idle panels: small buffers (128 KiB each by default) let one
        // process hold tens of thousands, since every byte of read buffer is allocated for
        // each socket up front. Larger messages still pass: a message is read across as many
        // reads as it takes.
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(WRITE_BATCH)
        // What a client sends is a GraphQL operation, never megabytes.
        .max_message_size(app.config.max_body_bytes)
        // The connection's future itself, not an `async` block around it: a block would keep
        // its own copy of the state and the socket beside the connection's, for every socket.
        .on_upgrade(move |socket| {
            let protocol = match socket.protocol().and_then(|p| p.to_str().ok()) {
                Some(LEGACY_WS) => Protocol::Legacy,
                _ => Protocol::Transport,
            };
            Connection::new(schemas, socket, protocol).serve()
        })
}

/// A browser may open a socket from the server's own origin or from a configured one.
fn origin_allowed(allowed: &[String], origin: &str, host: Option<&str>) -> bool {
    let origin = origin.trim_end_matches('/');
    if allowed.iter().any(|a| a.trim_end_matches('/') == origin) {
        return true;
    }
    match (host, origin.split_once("://")) {
        (Some(host), Some(("http" | "https", rest))) => rest == host,
        _ => false,
    }
}

#[derive(Deserialize)]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    payload: Option<Value>,
}

enum Flow {
    Continue,
    Stop,
}

/// One operation's results, numbered from 0 and ended by `None` so that completion can be
/// announced. Boxed: the connection's waiting future holds a slot for whichever branch wakes
/// it, and a response is 224 bytes of every idle socket otherwise.
type OperationStream = BoxStream<'static, (usize, Option<Box<async_graphql::Response>>)>;

struct Connection {
    /// The schemas operations run on, and through them the services.
    schemas: graphql::Schemas,
    socket: WebSocket,
    protocol: Protocol,
    caller: Option<auth::Caller>,
    init_received: bool,
    operations: StreamMap<String, OperationStream>,
    last_seen: Instant,
    /// Counts the connection in `herald_ws_connections` while it lives. A field rather than a
    /// future around `serve`: such a future would keep a second slot the size of the socket.
    _open: crate::telemetry::Held,
}

impl Connection {
    fn new(schemas: graphql::Schemas, socket: WebSocket, protocol: Protocol) -> Self {
        Self {
            schemas,
            socket,
            protocol,
            caller: None,
            init_received: false,
            operations: StreamMap::new(),
            last_seen: Instant::now(),
            _open: crate::telemetry::Held::new("herald_ws_connections"),
        }
    }

    /// Waits for the socket, the operations, the ping and the deadlines. What an event sets
    /// off (authentication, a subscription's start, sending) is boxed: an idle connection's
    /// future (what each of ten thousand open panels holds) is then only what waiting needs.
    async fn serve(mut self) {
        // One timer for both deadlines, which never overlap: `connection_init` must arrive in
        // time, then the token's expiry (if it has one) ends the authenticated socket.
        let deadline = sleep(self.schemas.app().config.ws_init_timeout);
        tokio::pin!(deadline);
        let mut deadline_armed = true;
        // One timer for the pings and the peer's silence: it wakes for the next ping or when
        // the peer will have been silent for two periods, whichever comes first.
        let period = self.schemas.app().config.ws_ping_interval;
        let mut next_ping = Instant::now() + period;
        let wake = sleep(period);
        tokio::pin!(wake);
        loop {
            let authenticated = self.caller.is_some();
            let flow = tokio::select! {
                _ = &mut deadline, if deadline_armed => {
                    let (code, reason) = if authenticated { (4403, "Token expired") } else { (4408, "Connection initialisation timeout") };
                    Box::pin(self.close(code, reason)).await
                }
                incoming = self.socket.recv() => match incoming {
                    None | Some(Err(_)) => Flow::Stop,
                    Some(Ok(message)) => {
                        self.last_seen = Instant::now();
                        Box::pin(self.on_message(message)).await
                    }
                },
                Some((id, (n, item))) = self.operations.next(), if !self.operations.is_empty() => {
                    Box::pin(self.on_results(id, n == 0, item)).await
                }
                _ = &mut wake => {
                    let flow = Box::pin(self.on_wake(period, &mut next_ping)).await;
                    wake.as_mut().reset(next_ping.min(self.last_seen + period * 2));
                    flow
                }
            };
            if !authenticated {
                if let Some(caller) = &self.caller {
                    deadline_armed = match caller.expires_at {
                        Some(exp) => {
                            let left = (exp - chrono::Utc::now().timestamp()).max(0) as u64;
                            deadline.as_mut().reset(Instant::now() + Duration::from_secs(left));
                            true
                        }
                        None => false,
                    };
                }
            }
            if let Flow::Stop = flow {
                return;
            }
        }
    }

    async fn send(&mut self, message: Message) -> Flow {
        within_send_timeout(self.socket.send(message)).await
    }

    /// Queues a message without flushing it: see [`Self::on_results`].
    async fn feed(&mut self, message: Message) -> Flow {
        within_send_timeout(self.socket.feed(message)).await
    }

    async fn flush(&mut self) -> Flow {
        within_send_timeout(self.socket.flush()).await
    }

    async fn send_json(&mut self, value: Value) -> Flow {
        self.send(text(&value)).await
    }

    async fn close(&mut self, code: u16, reason: &str) -> Flow {
        let _ = tokio::time::timeout(SEND_TIMEOUT, self.socket.send(Message::Close(Some(CloseFrame { code, reason: reason.to_string().into() })))).await;
        Flow::Stop
    }

    /// Drops a peer silent (no pong, no message) for two ping periods; pings when one is due.
    async fn on_wake(&mut self, period: Duration, next_ping: &mut Instant) -> Flow {
        let now = Instant::now();
        if now >= self.last_seen + period * 2 {
            tracing::info!("dropping an unresponsive WebSocket peer");
            return self.close(1001, "No pong received").await;
        }
        if now < *next_ping {
            return Flow::Continue;
        }
        *next_ping = now + period;
        if let Flow::Stop = self.send(Message::Ping(Default::default())).await {
            return Flow::Stop;
        }
        if self.protocol == Protocol::Legacy && self.caller.is_some() {
            return self.send_json(json!({"type": "ka"})).await;
        }
        Flow::Continue
    }

    async fn on_message(&mut self, message: Message) -> Flow {
        let text = match message {
            Message::Text(text) => text,
            Message::Close(_) => return Flow::Stop,
            Message::Ping(_) | Message::Pong(_) => return Flow::Continue,
            Message::Binary(_) => return self.close(4400, "Binary messages are not supported").await,
        };
        let Ok(message) = serde_json::from_str::<ClientMessage>(text.as_str()) else {
            return self.close(4400, "Invalid message").await;
        };
        match (self.protocol, message.kind.as_str()) {
            (_, "connection_init") => self.on_init(message.payload).await,
            (Protocol::Transport, "ping") => self.send_json(json!({"type": "pong"})).await,
            (Protocol::Transport, "pong") => Flow::Continue,
            (Protocol::Transport, "subscribe") | (Protocol::Legacy, "start") => self.on_subscribe(message.id, message.payload).await,
            (Protocol::Transport, "complete") => {
                if let Some(id) = message.id {
                    self.operations.remove(&id);
                }
                Flow::Continue
            }
            (Protocol::Legacy, "stop") => match message.id {
                Some(id) => {
                    self.operations.remove(&id);
                    self.send_json(json!({"type": "complete", "id": id})).await
                }
                None => Flow::Continue,
            },
            (Protocol::Legacy, "connection_terminate") => self.close(1000, "Terminated").await,
            _ => self.close(4400, &format!("Unexpected message type {:?}", message.kind)).await,
        }
    }

    async fn on_init(&mut self, payload: Option<Value>) -> Flow {
        if self.init_received {
            return self.close(4429, "Too many initialisation requests").await;
        }
        self.init_received = true;
        let token = payload.as_ref().and_then(token_from_payload);
        let caller = match token {
            None => None,
            Some(token) => auth::authenticate(&self.schemas.app().db, &self.schemas.app().tokens, Some(&token)).await.ok().flatten(),
        };
        match caller {
            Some(caller) => {
                self.caller = Some(caller);
                if let Flow::Stop = self.send_json(json!({"type": "connection_ack"})).await {
                    return Flow::Stop;
                }
                if self.protocol == Protocol::Legacy {
                    return self.send_json(json!({"type": "ka"})).await;
                }
                Flow::Continue
            }
            None => {
                if self.protocol == Protocol::Legacy {
                    let error = json!({"type": "connection_error", "payload": {"message": "Forbidden: a valid token is required", "extensions": {"code": "UNAUTHENTICATED"}}});
                    if let Flow::Stop = self.send_json(error).await {
                        return Flow::Stop;
                    }
                }
                self.close(4403, "Forbidden").await
            }
        }
    }

    async fn on_subscribe(&mut self, id: Option<String>, payload: Option<Value>) -> Flow {
        let Some(caller) = self.caller.clone() else {
            return self.close(4401, "Unauthorized").await;
        };
        let Some(id) = id else {
            return self.close(4400, "Operation id missing").await;
        };
        if self.operations.contains_key(&id) {
            return self.close(4409, &format!("Subscriber for {id} already exists")).await;
        }
        let Some(request) = payload.and_then(|p| serde_json::from_value::<async_graphql::Request>(p).ok()) else {
            return self.close(4400, "Invalid subscribe payload").await;
        };
        let running = crate::telemetry::Held::new("herald_ws_operations");
        let stream = graphql::execute_stream(&self.schemas, request, Some(caller))
            .map(move |response| {
                let _counted = &running; // as long as the operation runs
                Some(Box::new(response))
            })
            .chain(futures_util::stream::once(async { None }))
            .enumerate()
            .boxed();
        self.operations.insert(id, stream);
        Flow::Continue
    }

    /// Writes a result, and every other result that is ready by then, with one flush: a
    /// panel's new row and the counts after it leave in one `sendto`, so one event reaching
    /// ten thousand panels costs about one system call per panel, not one per result.
    async fn on_results(&mut self, id: String, first: bool, item: Option<Box<async_graphql::Response>>) -> Flow {
        if let Flow::Stop = self.on_result(id, first, item).await {
            return Flow::Stop;
        }
        for _ in 1..RESULTS_PER_FLUSH {
            // Polled once: what is not ready now is waited for by `serve`.
            match self.operations.next().now_or_never() {
                Some(Some((id, (n, item)))) => {
                    if let Flow::Stop = self.on_result(id, n == 0, item).await {
                        return Flow::Stop;
                    }
                }
                _ => break,
            }
        }
        self.flush().await
    }

    /// Queues one result (unflushed).
    async fn on_result(&mut self, id: String, first: bool, item: Option<Box<async_graphql::Response>>) -> Flow {
        let Some(response) = item else {
            return self.feed(text(&json!({"type": "complete", "id": id}))).await;
        };
        // An operation that fails before producing anything (validation, rights) gets the
        // protocol's `error` message, which also ends it.
        if first && response.data == async_graphql::Value::Null && !response.errors.is_empty() {
            self.operations.remove(&id);
            let errors = serde_json::to_value(&response.errors).unwrap_or(Value::Null);
            return self.feed(text(&json!({"type": "error", "id": id, "payload": errors}))).await;
        }
        let kind = match self.protocol {
            Protocol::Transport => "next",
            Protocol::Legacy => "data",
        };
        let payload = serde_json::to_value(&response).unwrap_or(Value::Null);
        self.feed(text(&json!({"type": kind, "id": id, "payload": payload}))).await
    }
}

/// A write to the socket: a client too slow to take it within [`SEND_TIMEOUT`] is dropped.
async fn within_send_timeout<E>(write: impl std::future::Future<Output = Result<(), E>>) -> Flow {
    match tokio::time::timeout(SEND_TIMEOUT, write).await {
        Ok(Ok(())) => Flow::Continue,
        Ok(Err(_)) => Flow::Stop,
        Err(_) => {
            tracing::info!("dropping a WebSocket client too slow to take messages");
            Flow::Stop
        }
    }
}

/// A protocol message as a text frame.
fn text(value: &Value) -> Message {
    Message::Text(value.to_string().into())
}

/// The token of a `connection_init` payload: `{"Authorization": "Bearer …"}` as the HTTP
/// header would carry it, or `{"token": "…"}` / `{"authToken": "…"}`.
fn token_from_payload(payload: &Value) -> Option<String> {
    let object = payload.as_object()?;
    ["Authorization", "authorization", "token", "authToken"].iter().find_map(|key| object.get(*key).and_then(Value::as_str)).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_allowed_from_the_list_or_the_same_host() {
        let allowed = vec!["https://app.example.com".to_string()];
        assert!(origin_allowed(&allowed, "https://app.example.com", Some("api.example.com")));
        assert!(origin_allowed(&allowed, "http://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(!origin_allowed(&allowed, "https://evil.example", Some("api.example.com")));
        assert!(!origin_allowed(&[], "null", Some("api.example.com")));
    }
}
