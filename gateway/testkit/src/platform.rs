//! A loopback stand-in for the central platform's CloudEvents intake.
//!
//! It behaves like the real endpoint: it accepts `POST /events` with
//! `Content-Type: application/cloudevents+json` (or a batch as
//! `application/cloudevents-batch+json`, each event validated and recorded), checks that the body is a
//! CloudEvent whose `id` matches the `ce-id` and `Idempotency-Key` headers
//! (400 otherwise), optionally requires a bearer token (401), de-duplicates by
//! event id, and answers 202. Tests script failures: a queue of one-off replies
//! and a rule evaluated per request (e.g. "400 for this case's first event").

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use tokio::sync::oneshot;

/// What the receiver answers to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Validate, record and answer 202 (the normal behaviour).
    Accept,
    /// Answer this status with a body, without recording the event.
    Status {
        /// HTTP status.
        code: u16,
        /// Response body (the receiver's error text).
        body: String,
        /// A `Retry-After` header value.
        retry_after: Option<String>,
    },
    /// Do not answer for this long (longer than the client's timeout), then 503.
    Hang(Duration),
    /// Hold the answer until [`PlatformReceiver::release`] is called, then
    /// validate and accept as [`Reply::Accept`] (a slow platform, without a
    /// timeout in the way).
    Held,
}

impl Reply {
    /// A status answer with a short body.
    pub fn status(code: u16, body: &str) -> Reply {
        Reply::Status {
            code,
            body: body.to_owned(),
            retry_after: None,
        }
    }

    /// 429 with `Retry-After: secs`.
    pub fn too_many(secs: u64) -> Reply {
        Reply::Status {
            code: 429,
            body: "slow down".to_owned(),
            retry_after: Some(secs.to_string()),
        }
    }
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The `ce-id` header.
    pub ce_id: Option<String>,
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The parsed body, when it was a JSON object (one structured event).
    pub event: Option<Value>,
    /// The events of a CloudEvents batch (`application/cloudevents-batch+json`),
    /// empty for a single event.
    pub batch: Vec<Value>,
    /// How many requests for this event id arrived so far, including this one.
    pub attempt: usize,
    /// What was answered.
    pub status: u16,
    /// When it arrived.
    pub at: std::time::Instant,
    /// When the answer was decided (just before it was sent).
    pub answered_at: std::time::Instant,
}

type Rule = Box<dyn Fn(&Request) -> Option<Reply> + Send + Sync>;

#[derive(Default)]
struct Shared {
    queue: VecDeque<Reply>,
    rule: Option<Rule>,
    token: Option<String>,
    requests: Vec<Request>,
    arrivals: usize,
    accepted: Vec<Value>,
    accepted_ids: HashMap<String, usize>,
    attempts: HashMap<String, usize>,
    /// Becomes `true` once held requests may be answered.
    released: Option<tokio::sync::watch::Receiver<bool>>,
}

/// The running receiver. Stops when dropped.
pub struct PlatformReceiver {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<Mutex<Shared>>,
    stop: Option<oneshot::Sender<()>>,
    release: tokio::sync::watch::Sender<bool>,
}

impl PlatformReceiver {
    /// Starts on `127.0.0.1:0` (a free port), plain HTTP.
    pub async fn start() -> PlatformReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the loopback receiver");
        Self::serve(listener, false).await
    }

    /// Starts an HTTPS receiver on `127.0.0.1:0` with `config` (see
    /// [`crate::tls::TestPki::server_config`]); failed handshakes are dropped.
    pub async fn start_tls(config: Arc<rustls::ServerConfig>) -> PlatformReceiver {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the loopback receiver");
        let listener = TlsListener {
            tcp,
            acceptor: tokio_rustls::TlsAcceptor::from(config),
        };
        Self::serve(listener, true).await
    }

    async fn serve<L>(listener: L, tls: bool) -> PlatformReceiver
    where
        L: axum::serve::Listener<Addr = SocketAddr>,
    {
        let (release, released) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Mutex::new(Shared {
            released: Some(released),
            ..Shared::default()
        }));
        let app = Router::new()
            .route("/events", post(intake))
            .with_state(shared.clone());
        let addr = listener.local_addr().expect("receiver address");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        PlatformReceiver {
            addr,
            tls,
            shared,
            stop: Some(stop),
            release,
        }
    }

    /// Answers every [`Reply::Held`] request, now and from now on.
    pub fn release(&self) {
        let _ = self.release.send(true);
    }

    /// The intake URL (`http://127.0.0.1:PORT/events`, or `https://localhost:PORT/events`
    /// for a TLS receiver).
    pub fn url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}/events", self.addr.port())
        } else {
            format!("http://{}/events", self.addr)
        }
    }

    /// Requires `Authorization: Bearer <token>` (401 otherwise).
    pub fn require_token(&self, token: &str) {
        self.lock().token = Some(token.to_owned());
    }

    /// Queues one-off replies used by the next requests, in order (before the rule).
    pub fn enqueue(&self, replies: impl IntoIterator<Item = Reply>) {
        self.lock().queue.extend(replies);
    }

    /// Sets a rule consulted for every request the queue does not answer;
    /// `None` from the rule means [`Reply::Accept`].
    pub fn set_rule(&self, rule: impl Fn(&Request) -> Option<Reply> + Send + Sync + 'static) {
        self.lock().rule = Some(Box::new(rule));
    }

    /// Removes the rule: accept everything.
    pub fn clear_rule(&self) {
        self.lock().rule = None;
    }

    /// Events accepted (202), in arrival order, each id once (re-deliveries of
    /// an accepted id are answered 202 but not recorded again).
    pub fn accepted(&self) -> Vec<Value> {
        self.lock().accepted.clone()
    }

    /// Requests that arrived, including those not answered yet.
    pub fn arrivals(&self) -> usize {
        self.lock().arrivals
    }

    /// Every answered request, in order of answer.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// Waits until at least `n` events were accepted or `timeout` passes; returns
    /// the accepted count.
    pub async fn wait_accepted(&self, n: usize, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let count = self.lock().accepted.len();
            if count >= n || tokio::time::Instant::now() >= deadline {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for PlatformReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// TCP accept plus TLS handshake; connections whose handshake fails (e.g. no
/// client certificate) are dropped, as a real TLS terminator would.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, peer)) = self.tcp.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let handshake =
                tokio::time::timeout(Duration::from_secs(5), self.acceptor.accept(stream)).await;
            if let Ok(Ok(tls)) = handshake {
                return (tls, peer);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn intake(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let (event, batch) = match parsed {
        Some(Value::Array(events)) => (None, events),
        other => (other, Vec::new()),
    };
    let ce_id = header(&headers, "ce-id");
    let mut request = Request {
        ce_id: ce_id.clone(),
        idempotency_key: header(&headers, "idempotency-key"),
        authorization: header(&headers, "authorization"),
        content_type: header(&headers, "content-type"),
        event,
        batch,
        attempt: 0,
        status: 0,
        at: std::time::Instant::now(),
        answered_at: std::time::Instant::now(),
    };
    let reply = {
        let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
        s.arrivals += 1;
        let key = ce_id.clone().unwrap_or_default();
        let n = s.attempts.entry(key).or_insert(0);
        *n += 1;
        request.attempt = *n;
        match s.queue.pop_front() {
            Some(r) => r,
            None => s
                .rule
                .as_ref()
                .and_then(|rule| rule(&request))
                .unwrap_or(Reply::Accept),
        }
    };
    let (status, body, retry_after) = match reply {
        Reply::Hang(d) => {
            tokio::time::sleep(d).await;
            (503, "hung".to_owned(), None)
        }
        Reply::Status {
            code,
            body,
            retry_after,
        } => (code, body, retry_after),
        Reply::Held => {
            let released = shared
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .released
                .clone();
            if let Some(mut released) = released {
                let _ = released.wait_for(|r| *r).await;
            }
            validate(&shared, &request)
        }
        Reply::Accept => validate(&shared, &request),
    };
    request.status = status;
    request.answered_at = std::time::Instant::now();
    let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
    if status == 202 {
        let single = request.event.iter().zip(request.ce_id.clone());
        let batch = request.batch.iter().filter_map(|e| {
            let id = e.get("id").and_then(Value::as_str)?;
            Some((e, id.to_owned()))
        });
        for (event, id) in single.chain(batch) {
            if !s.accepted_ids.contains_key(&id) {
                let idx = s.accepted.len();
                s.accepted_ids.insert(id, idx);
                s.accepted.push(event.clone());
            }
        }
    }
    s.requests.push(request);
    drop(s);
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (code, body).into_response();
    if let Some(after) = retry_after
        && let Ok(v) = after.parse()
    {
        response.headers_mut().insert("retry-after", v);
    }
    response
}

/// The platform's own checks on an event it would accept.
fn validate(shared: &Arc<Mutex<Shared>>, request: &Request) -> (u16, String, Option<String>) {
    let token = shared
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .token
        .clone();
    if let Some(token) = token
        && request.authorization.as_deref() != Some(&format!("Bearer {token}"))
    {
        return (401, "missing or wrong bearer token".to_owned(), None);
    }
    if request
        .content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("application/cloudevents-batch+json"))
    {
        if request.batch.is_empty() {
            return (
                400,
                "a batch must be a non-empty JSON array".to_owned(),
                None,
            );
        }
        return match request.batch.iter().find_map(|e| invalid_event(e)) {
            Some(why) => (400, why.to_owned(), None),
            None => (202, String::new(), None),
        };
    }
    if !request
        .content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("application/cloudevents+json"))
    {
        return (
            415,
            "expected application/cloudevents+json".to_owned(),
            None,
        );
    }
    let Some(event) = &request.event else {
        return (400, "body is not JSON".to_owned(), None);
    };
    let id = event.get("id").and_then(Value::as_str);
    if id.is_none() || id != request.ce_id.as_deref() || id != request.idempotency_key.as_deref() {
        return (400, "id, ce-id and Idempotency-Key differ".to_owned(), None);
    }
    match invalid_event(event) {
        Some(why) => (400, why.to_owned(), None),
        None => (202, String::new(), None),
    }
}

/// Why `event` is not a CloudEvents 1.0 case event, if it is not.
fn invalid_event(event: &Value) -> Option<&'static str> {
    if event.get("id").and_then(Value::as_str).is_none()
        || event.get("specversion").and_then(Value::as_str) != Some("1.0")
        || event.get("subject").and_then(Value::as_str).is_none()
        || event.get("data").is_none()
    {
        return Some("not a CloudEvents 1.0 case event");
    }
    None
}
