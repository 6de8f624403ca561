//! GraphQL over WebSocket: both subprotocols, the handshake rules, pings, and delivery of
//! live events across processes.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    connect_async,
    tungstenite::{client::IntoClientRequest, http::HeaderValue, Error as WsError, Message},
    MaybeTlsStream, WebSocketStream,
};

use crate::helpers::{redis_url, spawn_app, spawn_with, TestApp};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect_to(url: String, protocol: &str, origin: Option<&str>) -> Result<Socket, WsError> {
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_str(protocol).unwrap());
    if let Some(origin) = origin {
        request.headers_mut().insert("origin", HeaderValue::from_str(origin).unwrap());
    }
    connect_async(request).await.map(|(socket, _)| socket)
}

async fn connect(app: &TestApp, protocol: &str) -> Socket {
    connect_to(app.ws_url(), protocol, None).await.expect("websocket upgrade")
}

async fn send(socket: &mut Socket, value: Value) {
    socket.send(Message::Text(value.to_string().into())).await.unwrap();
}

/// The next text message as JSON, or the close code as `{"close": code}`.
async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("a message within 10 s");
        match message {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(text.as_str()).unwrap(),
            Some(Ok(Message::Close(frame))) => return json!({"close": frame.map(|f| u16::from(f.code)).unwrap_or(1005)}),
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return json!({"close": "dropped"}),
        }
    }
}

async fn init(socket: &mut Socket, token: &str) {
    send(socket, json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}})).await;
    assert_eq!(next(socket).await["type"], "connection_ack");
}

#[tokio::test]
async fn a_socket_without_connection_init_is_closed_with_4408() {
    let app = spawn_with(|c| c.ws_init_timeout = Duration::from_millis(300)).await;
    let mut socket = connect(&app, "graphql-transport-ws").await;
    assert_eq!(next(&mut socket).await, json!({"close": 4408}));
}

#[tokio::test]
async fn an_invalid_token_is_closed_with_4403_on_both_protocols() {
    let app = spawn_app().await;
    let mut socket = connect(&app, "graphql-transport-ws").await;
    send(&mut socket, json!({"type": "connection_init", "payload": {"Authorization": "Bearer nope"}})).await;
    assert_eq!(next(&mut socket).await, json!({"close": 4403}));

    let mut socket = connect(&app, "graphql-transport-ws").await;
    send(&mut socket, json!({"type": "connection_init"})).await;
    assert_eq!(next(&mut socket).await, json!({"close": 4403}), "no token at all");

    let mut legacy = connect(&app, "graphql-ws").await;
    send(&mut legacy, json!({"type": "connection_init", "payload": {"authToken": "nope"}})).await;
    let error = next(&mut legacy).await;
    assert_eq!(error["type"], "connection_error");
    assert_eq!(next(&mut legacy).await, json!({"close": 4403}));
}

#[tokio::test]
async fn an_operation_before_the_handshake_is_closed_with_4401() {
    let app = spawn_app().await;
    let mut socket = connect(&app, "graphql-transport-ws").await;
    send(&mut socket, json!({"type": "subscribe", "id": "1", "payload": {"query": "subscription { auditEvents { action } }"}})).await;
    assert_eq!(next(&mut socket).await, json!({"close": 4401}));
}

#[tokio::test]
async fn a_browser_upgrade_from_a_foreign_origin_is_refused() {
    let app = spawn_with(|c| c.cors_origins = vec!["https://app.example.com".into()]).await;
    let refused = connect_to(app.ws_url(), "graphql-transport-ws", Some("https://evil.example")).await;
    match refused {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
    assert!(connect_to(app.ws_url(), "graphql-transport-ws", Some("https://app.example.com")).await.is_ok());
}

#[tokio::test]
async fn queries_and_subscriptions_flow_over_graphql_transport_ws() {
    let app = spawn_app().await;
    let mut socket = connect(&app, "graphql-transport-ws").await;
    init(&mut socket, &app.admin_token).await;

    send(&mut socket, json!({"type": "subscribe", "id": "q", "payload": {"query": "{ viewer { user { name } } }"}})).await;
    let result = next(&mut socket).await;
    assert_eq!(result["type"], "next");
    assert_eq!(result["payload"]["data"]["viewer"]["user"]["name"], "Administrator");
    assert_eq!(next(&mut socket).await, json!({"type": "complete", "id": "q"}));

    send(&mut socket, json!({"type": "ping"})).await;
    assert_eq!(next(&mut socket).await["type"], "pong");

    send(&mut socket, json!({"type": "subscribe", "id": "s", "payload": {"query": "subscription { auditEvents { action objectType actor { name } } }"}})).await;
    // Give the subscription a moment to be registered before the change it should see.
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.user("Carol", "USER").await;
    let event = next(&mut socket).await;
    assert_eq!(event["type"], "next", "{event}");
    assert_eq!(event["id"], "s");
    assert_eq!(event["payload"]["data"]["auditEvents"], json!({"action": "user.created", "objectType": "User", "actor": {"name": "Administrator"}}));

    send(&mut socket, json!({"type": "subscribe", "id": "s", "payload": {"query": "subscription { auditEvents { action } }"}})).await;
    assert_eq!(next(&mut socket).await, json!({"close": 4409}), "a duplicate id is a protocol error");
}

#[tokio::test]
async fn a_plain_user_may_not_subscribe_to_the_audit_log() {
    let app = spawn_app().await;
    let (_, token) = app.user("Dave", "USER").await;
    let mut socket = connect(&app, "graphql-transport-ws").await;
    init(&mut socket, &token).await;
    send(&mut socket, json!({"type": "subscribe", "id": "1", "payload": {"query": "subscription { auditEvents { action } }"}})).await;
    let error = next(&mut socket).await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["payload"][0]["extensions"]["code"], "FORBIDDEN");
}

#[tokio::test]
async fn the_legacy_graphql_ws_protocol_works_too() {
    let app = spawn_app().await;
    let mut socket = connect(&app, "graphql-ws").await;
    send(&mut socket, json!({"type": "connection_init", "payload": {"authToken": app.admin_token}})).await;
    assert_eq!(next(&mut socket).await["type"], "connection_ack");
    assert_eq!(next(&mut socket).await["type"], "ka");
    send(&mut socket, json!({"type": "start", "id": "1", "payload": {"query": "subscription { auditEvents { action } }"}})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.user("Erin", "USER").await;
    let data = next(&mut socket).await;
    assert_eq!(data, json!({"type": "data", "id": "1", "payload": {"data": {"auditEvents": {"action": "user.created"}}}}));
    send(&mut socket, json!({"type": "stop", "id": "1"})).await;
    assert_eq!(next(&mut socket).await, json!({"type": "complete", "id": "1"}));
}

#[tokio::test]
async fn idle_sockets_are_pinged_and_silent_peers_dropped() {
    let app = spawn_with(|c| c.ws_ping_interval = Duration::from_millis(300)).await;
    let mut socket = connect(&app, "graphql-transport-ws").await;
    init(&mut socket, &app.admin_token).await;
    // tungstenite answers pings while we read, so the connection stays up and pings arrive.
    let mut pings = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < deadline {
        if let Ok(Some(Ok(Message::Ping(_)))) = tokio::time::timeout(Duration::from_millis(500), socket.next()).await {
            pings += 1;
        }
    }
    assert!(pings >= 2, "expected pings, got {pings}");
    assert!(socket.send(Message::Text(json!({"type": "ping"}).to_string().into())).await.is_ok());

    // A peer that stops reading (and so never pongs) is dropped after two periods.
    let mut silent = connect(&app, "graphql-transport-ws").await;
    init(&mut silent, &app.admin_token).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut closed = false;
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(2), silent.next()).await {
        match message {
            Ok(Message::Close(_)) | Err(_) => {
                closed = true;
                break;
            }
            _ => continue,
        }
    }
    assert!(closed, "the silent peer was not dropped");
}

/// Two ping periods of silence drop a peer, counted from its last message, not from the next
/// ping after it: a peer that went quiet just after a ping is gone two periods later, not
/// three.
#[tokio::test]
async fn a_peer_is_dropped_two_ping_periods_after_it_went_silent() {
    let period = Duration::from_millis(1000);
    let app = spawn_with(|c| c.ws_ping_interval = period).await;
    let mut socket = connect(&app, "graphql-transport-ws").await;
    init(&mut socket, &app.admin_token).await;
    // Right after the first ping, the peer says something, then reads nothing more (and so
    // answers no ping).
    loop {
        if let Some(Ok(Message::Ping(_))) = socket.next().await {
            break;
        }
    }
    socket.send(Message::Text(json!({"type": "ping"}).to_string().into())).await.unwrap();
    let silent_since = tokio::time::Instant::now();
    tokio::time::sleep_until(silent_since + period * 5 / 2).await;
    // Two and a half periods on, the server has closed: the close frame is already there.
    let mut closed = false;
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_millis(100), socket.next()).await {
        if matches!(message, Ok(Message::Close(_)) | Err(_)) {
            closed = true;
            break;
        }
    }
    assert!(closed, "the peer silent for two and a half periods is still connected");
}

/// A change made through one api process reaches a subscriber connected to another, over
/// Redis. Needs HERALD_TEST_REDIS_URL (set by .ci/run); without Redis there is one process.
#[tokio::test]
async fn events_cross_processes_over_redis() {
    if redis_url().is_none() {
        eprintln!("HERALD_TEST_REDIS_URL not set: cross-process delivery needs Redis; skipped on embedded defaults");
        return;
    }
    let app = spawn_app().await;
    let replica = app.spawn_replica().await;
    let mut socket = connect_to(format!("ws://{}/graphql/ws", replica.addr), "graphql-transport-ws", None).await.unwrap();
    init(&mut socket, &app.admin_token).await;
    send(&mut socket, json!({"type": "subscribe", "id": "s", "payload": {"query": "subscription { auditEvents { action objectType } }"}})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.user("Frank", "USER").await; // through the first process
    let event = next(&mut socket).await;
    assert_eq!(event["payload"]["data"]["auditEvents"], json!({"action": "user.created", "objectType": "User"}));
}

#[tokio::test]
async fn a_socket_closes_when_its_token_expires() {
    let app = spawn_app().await;
    let short = app.state.tokens.mint(app.admin_id.parse().unwrap(), None, Duration::from_secs(2));
    let mut socket = connect(&app, "graphql-transport-ws").await;
    init(&mut socket, &short).await;
    send(&mut socket, json!({"type": "subscribe", "id": "s", "payload": {"query": "subscription { auditEvents { action } }"}})).await;
    assert_eq!(next(&mut socket).await, json!({"close": 4403}));
}

const FEED: &str =
    "subscription($a: String) { notificationEvents(after: $a) { kind cursor notification { id title count } state { change at notificationIds truncated } counts { unseen total } } }";
const PUBLISH: &str = "mutation($i: PublishEventInput!) { publishEvent(input: $i) { notified } }";

async fn publish(app: &TestApp, key: &str, title: &str) {
    app.admin(PUBLISH, json!({"i": {"type": "WARNINGS", "title": title, "idempotencyKey": key}})).await;
}

async fn feed(url: String, token: &str, after: Value) -> Socket {
    let mut socket = connect_to(url, "graphql-transport-ws", None).await.unwrap();
    init(&mut socket, token).await;
    send(&mut socket, json!({"type": "subscribe", "id": "f", "payload": {"query": FEED, "variables": {"a": after}}})).await;
    socket
}

async fn item(socket: &mut Socket) -> Value {
    let message = next(socket).await;
    assert_eq!(message["type"], "next", "{message}");
    message["payload"]["data"]["notificationEvents"].clone()
}

#[tokio::test]
async fn the_panel_feed_goes_live_and_resumes_without_gap_or_duplicate() {
    let app = spawn_app().await;
    let (_, bob) = app.user("Bob", "USER").await;
    let mut socket = feed(app.ws_url(), &bob, Value::Null).await;
    assert_eq!(item(&mut socket).await["counts"], json!({"unseen": 0, "total": 0}));

    publish(&app, "w1", "First").await;
    let first = item(&mut socket).await;
    assert_eq!(first["notification"]["title"], "First");
    assert_eq!(item(&mut socket).await["counts"], json!({"unseen": 1, "total": 1}));
    let cursor = first["cursor"].clone();
    drop(socket);

    // Offline: two more arrive. Reconnecting after "First" replays exactly those, in order.
    publish(&app, "w2", "Second").await;
    publish(&app, "w3", "Third").await;
    let mut socket = feed(app.ws_url(), &bob, cursor).await;
    assert_eq!(item(&mut socket).await["notification"]["title"], "Second");
    assert_eq!(item(&mut socket).await["notification"]["title"], "Third");
    assert_eq!(item(&mut socket).await["counts"], json!({"unseen": 3, "total": 3}));

    // Then live, with nothing repeated at the seam.
    publish(&app, "w4", "Fourth").await;
    assert_eq!(item(&mut socket).await["notification"]["title"], "Fourth");
    assert_eq!(item(&mut socket).await["counts"]["total"], 4);

    // A change of state names the rows it changed, then pushes the counts.
    app.gql(Some(&bob), "mutation { markNotificationsSeen(input: {all: true}) { changed } }", json!({})).await;
    let seen = item(&mut socket).await;
    assert_eq!(seen["kind"], "STATE");
    assert_eq!(seen["state"]["change"], "SEEN");
    assert_eq!(seen["state"]["notificationIds"].as_array().unwrap().len(), 4, "{seen}");
    assert_eq!(seen["state"]["truncated"], false);
    assert!(seen["state"]["at"].is_string());
    assert_eq!(item(&mut socket).await["counts"], json!({"unseen": 0, "total": 4}));

    // One row read from another session: the feed names exactly that row.
    let fourth = app.gql(Some(&bob), "{ notifications(first: 1) { nodes { id } } }", json!({})).await["data"]["notifications"]["nodes"][0]["id"].clone();
    let read = app
        .gql(
            Some(&bob),
            "mutation($i: MarkNotificationsReadInput!) { markNotificationsRead(input: $i) { changed } }",
            json!({"i": {"ids": [fourth], "read": true}}),
        )
        .await;
    assert_eq!(read["data"]["markNotificationsRead"]["changed"], 1, "{read}");
    let state = item(&mut socket).await;
    assert_eq!(state["state"]["change"], "READ");
    assert_eq!(state["state"]["notificationIds"], json!([fourth]));
    assert_eq!(item(&mut socket).await["kind"], "COUNTS");
    // A change that changes nothing announces nothing: the next item is the next notification.
    app.gql(Some(&bob), "mutation { markNotificationsSeen(input: {all: true}) { changed } }", json!({})).await;
    publish(&app, "w5", "Fifth").await;
    assert_eq!(item(&mut socket).await["notification"]["title"], "Fifth");
}

/// A New Lead only Bob receives: a lead assigned to him, with his AU switch on (New Lead is
/// off by default for everyone else).
async fn publish_bobs_own_lead(app: &TestApp, bob_id: &str) -> Value {
    let contact = app
        .admin("mutation($u: ID!) { createContact(input: {kind: LEAD, name: \"L\", assigneeIds: [$u]}) { contact { id } } }", json!({"u": bob_id}))
        .await["createContact"]["contact"]["id"]
        .clone();
    app.gql(
        Some(&app.token_for(bob_id)),
        "mutation { updateNotificationControl(input: {changes: [{type: NEW_LEAD, switch: AU, enabled: true}]}) { control { version } } }",
        json!({}),
    )
    .await;
    app.admin(PUBLISH, json!({"i": {"type": "NEW_LEAD", "contactId": contact, "title": "Bob's lead", "idempotencyKey": "l1"}})).await;
    contact
}

#[tokio::test]
async fn a_feed_carries_only_its_users_notifications() {
    let app = spawn_app().await;
    let (bob_id, _) = app.user("Bob", "USER").await;
    let (_, carol) = app.user("Carol", "USER").await;
    let mut socket = feed(app.ws_url(), &carol, Value::Null).await;
    item(&mut socket).await; // counts
                             // Only Bob gets this one; then one for everyone.
    publish_bobs_own_lead(&app, &bob_id).await;
    publish(&app, "w1", "For everyone").await;
    assert_eq!(item(&mut socket).await["notification"]["title"], "For everyone", "Carol never sees Bob's row");
}

/// One event to several open panels at once: their counts are read together (one reader per
/// process), and each panel still gets its own user's counts.
#[tokio::test]
async fn panels_receiving_one_event_each_get_their_own_counts() {
    let app = spawn_app().await;
    let (bob_id, bob) = app.user("Bob", "USER").await;
    let (_, carol) = app.user("Carol", "USER").await;
    let (_, dave) = app.user("Dave", "USER").await;
    // Bob has two rows before, Carol one, Dave none.
    publish(&app, "w0", "For everyone").await;
    publish_bobs_own_lead(&app, &bob_id).await;
    app.gql(Some(&dave), "mutation { archiveNotifications(input: {all: true}) { changed } }", json!({})).await;

    let mut panels = Vec::new();
    for token in [&bob, &carol, &dave] {
        let mut socket = feed(app.ws_url(), token, Value::Null).await;
        item(&mut socket).await; // the counts on opening
        panels.push(socket);
    }
    publish(&app, "w1", "Again for everyone").await;
    let mut got = Vec::new();
    for socket in &mut panels {
        assert_eq!(item(socket).await["notification"]["title"], "Again for everyone");
        got.push(item(socket).await["counts"].clone());
    }
    assert_eq!(got, [json!({"unseen": 3, "total": 3}), json!({"unseen": 2, "total": 2}), json!({"unseen": 1, "total": 1})]);
}

/// The counts after a new row are worked out by the feed (the last ones sent, plus one) and
/// checked against the database a second later: a change the feed never heard of is
/// corrected then, and the badge ends where the database is.
#[tokio::test]
async fn counts_worked_out_after_a_new_row_are_corrected_from_the_database() {
    use sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter};

    let app = spawn_app().await;
    let (bob_id, bob) = app.user("Bob", "USER").await;
    publish(&app, "w0", "Before").await;
    let mut socket = feed(app.ws_url(), &bob, Value::Null).await;
    assert_eq!(item(&mut socket).await["counts"], json!({"unseen": 1, "total": 1}));

    // Behind the feed's back (nothing announced): Bob's row is marked seen.
    let bob_id: uuid::Uuid = bob_id.parse().unwrap();
    let marked = entity::notification::Entity::update_many()
        .col_expr(entity::notification::Column::SeenAt, Expr::value(chrono::Utc::now()))
        .filter(entity::notification::Column::UserId.eq(bob_id))
        .exec(&app.state.db)
        .await
        .unwrap();
    assert_eq!(marked.rows_affected, 1);

    publish(&app, "w1", "After").await;
    assert_eq!(item(&mut socket).await["notification"]["title"], "After");
    assert_eq!(item(&mut socket).await["counts"], json!({"unseen": 2, "total": 2}), "worked out from the last counts sent");
    assert_eq!(item(&mut socket).await["counts"], json!({"unseen": 1, "total": 2}), "corrected from the database");
}

/// A notification published through one process reaches a panel on another, over Redis.
/// Between processes, new rows of an event travel as one message and bumped rows one per
/// user: the panel gets both, the bumped row as the same row, counted twice.
#[tokio::test]
async fn the_panel_feed_crosses_processes_over_redis() {
    if redis_url().is_none() {
        eprintln!("HERALD_TEST_REDIS_URL not set: cross-process delivery needs Redis; skipped on embedded defaults");
        return;
    }
    let app = spawn_app().await;
    let (bob_id, bob) = app.user("Bob", "USER").await;
    let replica = app.spawn_replica().await;
    let mut socket = feed(format!("ws://{}/graphql/ws", replica.addr), &bob, Value::Null).await;
    item(&mut socket).await; // counts
    publish(&app, "x1", "Across").await;
    assert_eq!(item(&mut socket).await["notification"]["title"], "Across");
    assert_eq!(item(&mut socket).await["counts"], json!({"unseen": 1, "total": 1}));

    let contact = publish_bobs_own_lead(&app, &bob_id).await;
    let first = item(&mut socket).await;
    assert_eq!((first["notification"]["title"].as_str(), first["notification"]["count"].as_i64()), (Some("Bob's lead"), Some(1)));
    assert_eq!(item(&mut socket).await["counts"], json!({"unseen": 2, "total": 2}));

    app.admin(PUBLISH, json!({"i": {"type": "NEW_LEAD", "contactId": contact, "title": "Bob's lead again", "idempotencyKey": "l2"}})).await;
    let bumped = item(&mut socket).await;
    assert_eq!(bumped["notification"]["id"], first["notification"]["id"], "{bumped}");
    assert_eq!((bumped["notification"]["title"].as_str(), bumped["notification"]["count"].as_i64()), (Some("Bob's lead again"), Some(2)));
    assert_eq!(item(&mut socket).await["counts"], json!({"unseen": 2, "total": 2}));
}

/// A panel stays open for hours: each item shows the contact as it is now, not as the
/// subscription first loaded it.
#[tokio::test]
async fn a_live_feed_shows_current_contact_names() {
    let app = spawn_app().await;
    let contact = app.admin("mutation { createContact(input: {kind: LEAD, name: \"Old name\"}) { contact { id } } }", json!({})).await["createContact"]
        ["contact"]["id"]
        .clone();
    let admin = app.admin_token.clone();
    let mut socket = connect_to(app.ws_url(), "graphql-transport-ws", None).await.unwrap();
    init(&mut socket, &admin).await;
    let query = "subscription { notificationEvents { kind notification { count contact { name } } } }";
    send(&mut socket, json!({"type": "subscribe", "id": "f", "payload": {"query": query}})).await;
    assert_eq!(item(&mut socket).await["kind"], "COUNTS");
    let voicemail = |key: &str| json!({"i": {"type": "VOICEMAILS", "contactId": contact, "title": "Voicemail", "idempotencyKey": key}});
    app.admin(PUBLISH, voicemail("v1")).await;
    assert_eq!(item(&mut socket).await["notification"]["contact"]["name"], "Old name");
    assert_eq!(item(&mut socket).await["kind"], "COUNTS");
    app.admin("mutation($i: UpdateContactInput!) { updateContact(input: $i) { contact { name } } }", json!({"i": {"id": contact, "name": "New name"}})).await;
    app.admin(PUBLISH, voicemail("v2")).await;
    let bumped = item(&mut socket).await;
    assert_eq!(bumped["notification"]["count"], 2);
    assert_eq!(bumped["notification"]["contact"]["name"], "New name");
}

/// Sockets read and write through small buffers (idle panels are most of them); messages far
/// larger than those buffers still pass both ways, whole.
#[tokio::test]
async fn messages_larger_than_the_socket_buffers_pass_both_ways() {
    let app = spawn_app().await;
    let mut socket = connect(&app, "graphql-transport-ws").await;
    init(&mut socket, &app.admin_token).await;
    // 20 KiB of operation in, through a 1 KiB read buffer.
    let query = format!("# {}\n{{ viewer {{ user {{ name }} }} }}", "x".repeat(20 * 1024));
    send(&mut socket, json!({"type": "subscribe", "id": "big", "payload": {"query": query}})).await;
    assert_eq!(next(&mut socket).await["payload"]["data"]["viewer"]["user"]["name"], "Administrator");
    assert_eq!(next(&mut socket).await["type"], "complete");
    // A 9,000-character notification body out, through a 1 KiB write buffer.
    let subscription = "subscription { notificationEvents { kind notification { body } } }";
    send(&mut socket, json!({"type": "subscribe", "id": "f", "payload": {"query": subscription}})).await;
    assert_eq!(next(&mut socket).await["payload"]["data"]["notificationEvents"]["kind"], "COUNTS");
    let body = "y".repeat(9000);
    app.admin(PUBLISH, json!({"i": {"type": "WARNINGS", "title": "Long", "body": body, "idempotencyKey": "long-1"}})).await;
    assert_eq!(next(&mut socket).await["payload"]["data"]["notificationEvents"]["notification"]["body"], body.as_str());
}

/// A publish that waits (here for a row lock on the row it folds into) commits after a later
/// publish, with the earlier position. A panel that reconnects with the later row's cursor must
/// still receive it, as a panel that stayed connected does.
#[tokio::test]
async fn a_row_that_commits_late_reaches_a_panel_that_reconnected_meanwhile() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let Some(url) = std::env::var("HERALD_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) else {
        eprintln!("HERALD_TEST_DATABASE_URL not set: this test holds a PostgreSQL row lock; skipped on embedded defaults");
        return;
    };
    let app = spawn_app().await;
    let (bob_id, bob) = app.user("Bob", "USER").await;
    let contact = publish_bobs_own_lead(&app, &bob_id).await;
    let mut socket = feed(app.ws_url(), &bob, Value::Null).await;
    assert_eq!(item(&mut socket).await["counts"]["total"], 1);

    // The test holds Bob's lead row: the next lead about the contact folds into it and waits.
    let db = sea_orm::Database::connect(url.as_str()).await.unwrap();
    let schema = app.config.database_schema.clone().unwrap();
    let lock = db.begin().await.unwrap();
    lock.execute_unprepared(&format!("SELECT 1 FROM \"{schema}\".notification WHERE user_id = '{bob_id}' FOR UPDATE")).await.unwrap();
    let held = {
        let app = &app;
        let contact = contact.clone();
        async move { app.admin(PUBLISH, json!({"i": {"type": "NEW_LEAD", "contactId": contact, "title": "Bob's lead again", "idempotencyKey": "l2"}})).await }
    };
    let waiting = async {
        for _ in 0..200 {
            let waits = db
                .query_one(sea_orm::Statement::from_string(
                    db.get_database_backend(),
                    "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
                ))
                .await
                .unwrap()
                .unwrap()
                .try_get::<i64>("", "n")
                .unwrap();
            if waits > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Meanwhile a later publish commits, and the panel gets it; then it disconnects.
        publish(&app, "w1", "Later").await;
        let later = item(&mut socket).await;
        assert_eq!(later["notification"]["title"], "Later", "{later}");
        drop(socket);
        lock.commit().await.unwrap();
        later["cursor"].clone()
    };
    let (_, cursor) = tokio::join!(held, waiting);

    // Reconnecting after "Later": the fold that committed late comes, and "Later" not again.
    let mut socket = feed(app.ws_url(), &bob, cursor).await;
    let late = item(&mut socket).await;
    assert_eq!(late["notification"]["title"], "Bob's lead again", "{late}");
    assert_eq!(late["notification"]["count"], 2);
    assert_eq!(item(&mut socket).await["counts"]["total"], 2);
    publish(&app, "w2", "Live again").await;
    assert_eq!(item(&mut socket).await["notification"]["title"], "Live again");
}

/// The API's `/metrics` counts open sockets and the operations running on them, and the
/// event writers' queue.
#[tokio::test]
async fn metrics_count_open_sockets_and_operations() {
    let app = spawn_app().await;
    let (_, bob) = app.user("Bob", "USER").await;
    let mut socket = feed(app.ws_url(), &bob, Value::Null).await;
    item(&mut socket).await; // counts: the subscription runs
    publish(&app, "w1", "First").await;
    item(&mut socket).await;
    let metrics = app.http.get(format!("http://{}/metrics", app.addr)).send().await.unwrap().text().await.unwrap();
    let value = |series: &str| -> f64 {
        let line = metrics.lines().find(|l| l.starts_with(series)).unwrap_or_else(|| panic!("no {series} in:\n{metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(value("herald_ws_connections ") >= 1.0);
    assert!(value("herald_ws_operations ") >= 1.0);
    value("herald_event_writer_queue ");
    if redis_url().is_some() {
        value("herald_bus_connected ");
    }
}

/// Panels that close while their feed catches up from the database (a reload storm) cost the
/// pool no connection: the feed's reads run to their end.
#[tokio::test]
async fn panels_closing_mid_catch_up_close_no_pooled_connection() {
    let Some((app, proxy, _)) = crate::outages::behind_proxy().await else { return };
    let (_, bob) = app.user("Bob", "USER").await;
    for i in 0..300 {
        publish(&app, &format!("w{i}"), &format!("Warning {i}")).await;
    }
    // The oldest row's cursor: resuming from it reads some three hundred rows.
    let oldest = app.gql(Some(&bob), "{ notifications(last: 1) { edges { cursor } } }", json!({})).await["data"]["notifications"]["edges"][0]["cursor"].clone();
    let storm = |rounds: u64| {
        let (app, bob, oldest) = (&app, &bob, &oldest);
        async move {
            for round in 0..rounds {
                let closing = (0..16u64).map(|i| {
                    let (url, token, after) = (app.ws_url(), bob.clone(), oldest.clone());
                    async move {
                        let mut socket = connect_to(url, "graphql-transport-ws", None).await.unwrap();
                        init(&mut socket, &token).await;
                        send(&mut socket, json!({"type": "subscribe", "id": "f", "payload": {"query": FEED, "variables": {"a": after}}})).await;
                        tokio::time::sleep(Duration::from_micros(500 * ((i + round) % 8))).await;
                        drop(socket);
                    }
                });
                futures_util::future::join_all(closing).await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    storm(2).await; // the pool grows to what the storm needs
    let before = proxy.connections();
    storm(10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.gql(Some(&bob), "{ notificationCounts { total } }", json!({})).await["data"]["notificationCounts"]["total"], 300);
    assert_eq!(proxy.connections() - before, 0, "pooled connections were closed under feeds dropped mid-read");
}
