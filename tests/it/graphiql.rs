//! GraphiQL as a developer meets it: Herald's own page in headless Chromium (Debian's
//! `chromium`), driven over the DevTools protocol. The page must load with no request leaving
//! the machine, fetch the schema, show the docs explorer and run a query with a token pasted
//! into its headers editor.

use std::{path::Path, process::Stdio, time::Duration};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::{connect_async, tungstenite::Message, MaybeTlsStream, WebSocketStream};

use crate::helpers::spawn_app;

const CHROMIUM: &str = "/usr/bin/chromium";

/// A headless Chromium with one page, and what the page did so far (the protocol's events).
struct Chromium {
    _child: tokio::process::Child,
    page: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    events: Vec<Value>,
    _profile: tempfile::TempDir,
}

impl Chromium {
    async fn launch() -> Self {
        assert!(Path::new(CHROMIUM).exists(), "{CHROMIUM} is missing: install Debian's chromium (tests/run.sh does)");
        let profile = tempfile::tempdir().unwrap();
        // The flags keep Chromium from reaching for Google's services at start, which would
        // show up as requests that have nothing to do with the page.
        let child = tokio::process::Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-default-apps",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its helpers (renderer, GPU, zygote) end with it.
            .kill_on_drop(true)
            .spawn()
            .expect("start chromium");
        // Chromium writes the port it took into the profile once it listens.
        let active = profile.path().join("DevToolsActivePort");
        let mut port = None;
        for _ in 0..200 {
            if let Some(line) = std::fs::read_to_string(&active).ok().and_then(|s| s.lines().next().map(str::to_string)) {
                port = line.parse::<u16>().ok();
                if port.is_some() {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let port = port.expect("chromium did not open its DevTools port within 20 s");
        let targets: Value = reqwest::get(format!("http://127.0.0.1:{port}/json/list")).await.unwrap().json().await.unwrap();
        let page_url = targets
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let (page, _) = connect_async(page_url).await.expect("connect to the page's DevTools socket");
        let mut browser = Self { _child: child, page, next_id: 0, events: Vec::new(), _profile: profile };
        for domain in ["Network.enable", "Page.enable", "Runtime.enable", "Log.enable"] {
            browser.call(domain, json!({})).await;
        }
        browser
    }

    /// Sends one command and answers its result, keeping the events that arrive meanwhile.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.page.send(Message::text(json!({"id": id, "method": method, "params": params}).to_string())).await.unwrap();
        loop {
            let message = tokio::time::timeout(Duration::from_secs(30), self.page.next()).await.expect("chromium answers").expect("socket open").unwrap();
            let Message::Text(text) = message else { continue };
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["id"] == id {
                assert!(value.get("error").is_none(), "{method}: {value}");
                return value["result"].clone();
            }
            self.events.push(value);
        }
    }

    /// Evaluates an expression in the page and answers its value.
    async fn eval(&mut self, expression: &str) -> Value {
        let result = self.call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true, "awaitPromise": true})).await;
        assert!(result.get("exceptionDetails").is_none(), "{expression}: {result}");
        result["result"]["value"].clone()
    }

    /// Waits (up to 20 s) until the expression is truthy, and answers its value.
    async fn wait_for(&mut self, what: &str, expression: &str) -> Value {
        for _ in 0..200 {
            let value = self.eval(expression).await;
            if !(value.is_null() || value == false || value == "") {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let body = self.eval("document.body.innerText.slice(0, 2000)").await;
        panic!("{what}: not within 20 s; the page shows:\n{body}\nevents: {:#?}", self.problems());
    }

    /// Every URL the page asked for (documents, scripts, fetches, WebSockets).
    fn requested(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e["method"].as_str() {
                Some("Network.requestWillBeSent") => e["params"]["request"]["url"].as_str(),
                Some("Network.webSocketCreated") => e["params"]["url"].as_str(),
                _ => None,
            })
            .map(str::to_string)
            .collect()
    }

    /// Uncaught exceptions, console errors and browser log errors (a CSP violation among them).
    fn problems(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e["method"].as_str() {
                Some("Runtime.exceptionThrown") => Some(e["params"]["exceptionDetails"].to_string()),
                Some("Runtime.consoleAPICalled") if e["params"]["type"] == "error" => Some(e["params"]["args"].to_string()),
                Some("Log.entryAdded") if e["params"]["entry"]["level"] == "error" => Some(e["params"]["entry"].to_string()),
                _ => None,
            })
            .collect()
    }
}

#[tokio::test]
async fn graphiql_loads_from_herald_alone_fetches_the_schema_and_runs_a_query() {
    let app = spawn_app().await;
    let mut browser = Chromium::launch().await;
    let page = format!("http://{}/graphql", app.addr);
    browser.call("Page.navigate", json!({"url": page})).await;

    // The schema came: the docs explorer lists the root types, and Query's fields.
    browser.wait_for("the GraphiQL page", "!!document.querySelector('.graphiql-container')").await;
    browser.eval("document.querySelector('[aria-label=\"Show Documentation Explorer\"]').click()").await;
    let docs = browser
        .wait_for(
            "the docs explorer with the schema's root types",
            "(() => { const d = document.querySelector('.graphiql-doc-explorer'); return d && /Subscription/.test(d.innerText) ? d.innerText : null })()",
        )
        .await;
    assert!(docs.as_str().unwrap().contains("Mutation"), "{docs}");
    browser.eval("Array.from(document.querySelectorAll('.graphiql-doc-explorer a')).find(a => a.innerText === 'Query').click()").await;
    browser
        .wait_for("Query's fields in the docs explorer", "/viewer/.test(document.querySelector('.graphiql-doc-explorer').innerText) && /notifications/.test(document.querySelector('.graphiql-doc-explorer').innerText)")
        .await;

    // The headers editor is open and says how to authenticate; the token goes after Bearer.
    let editors = "Array.from(document.querySelectorAll('.CodeMirror')).map(e => e.CodeMirror)";
    let headers = browser.wait_for("the headers editor", &format!("{editors}.map(cm => cm.getValue()).find(v => v.includes('Authorization'))")).await;
    assert_eq!(serde_json::from_str::<Value>(headers.as_str().unwrap()).unwrap(), json!({"Authorization": "Bearer "}));
    let set = format!(
        "{editors}.find(cm => cm.getValue().includes('Authorization')).setValue({})",
        serde_json::to_string(&json!({"Authorization": format!("Bearer {}", app.admin_token)}).to_string()).unwrap()
    );
    browser.eval(&set).await;
    let query = browser.eval("document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.getValue()").await;
    assert!(query.as_str().unwrap().contains("query Me"), "the default query explains itself and asks for the viewer: {query}");
    browser.eval("document.querySelector('.graphiql-execute-button').click()").await;
    let response = browser
        .wait_for(
            "the query's result",
            "(() => { const v = document.querySelector('.graphiql-response .CodeMirror').CodeMirror.getValue(); return /\"viewer\"/.test(v) ? v : null })()",
        )
        .await;
    let response: Value = serde_json::from_str(response.as_str().unwrap()).unwrap();
    let me = app.admin("{ viewer { user { name email role } account { name timeZone } } }", json!({})).await;
    assert_eq!(response["data"], me, "{response:#}");

    // Nothing left the machine: every request went to Herald, and nothing was refused.
    let requested = browser.requested();
    let here = [format!("http://{}/", app.addr), format!("ws://{}/", app.addr)];
    let elsewhere: Vec<&String> = requested.iter().filter(|url| !url.starts_with("data:") && !here.iter().any(|h| url.starts_with(h))).collect();
    assert!(elsewhere.is_empty(), "requests that left Herald: {elsewhere:#?}");
    assert!(requested.iter().any(|u| u.ends_with("/graphiql/graphiql.min.js")), "{requested:#?}");
    assert_eq!(browser.problems(), Vec::<String>::new(), "errors on the page (a Content-Security-Policy violation would be one)");
    let _ = browser.call("Browser.close", json!({})).await;
}

/// The page's assets are embedded in the binary and served with the page's policy; a name
/// outside the set is not found.
#[tokio::test]
async fn graphiql_assets_are_served_by_herald() {
    let app = spawn_app().await;
    let page = app.http.get(app.url()).header("accept", "text/html").send().await.unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(policy.contains("script-src 'self';") && policy.contains("connect-src 'self';"), "{policy}");
    let html = page.text().await.unwrap();
    assert!(!html.contains("https://") && !html.contains("http://"), "the page names no other origin: {html}");
    for (file, media) in [("graphiql.min.js", "text/javascript"), ("graphiql.min.css", "text/css"), ("react.production.min.js", "text/javascript")] {
        let asset = app.http.get(format!("http://{}/graphiql/{file}", app.addr)).send().await.unwrap();
        assert_eq!(asset.status(), 200, "{file}");
        assert!(asset.headers()["content-type"].to_str().unwrap().starts_with(media), "{file}");
        assert!(asset.bytes().await.unwrap().len() > 10_000, "{file} is the real build");
    }
    let missing = app.http.get(format!("http://{}/graphiql/..%2FCargo.toml", app.addr)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}
