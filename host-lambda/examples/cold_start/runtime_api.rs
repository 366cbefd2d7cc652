//! A local stand-in for the Lambda runtime API (the HTTP interface a custom runtime polls), so
//! that a function binary runs here exactly as in an execution environment: it polls
//! `GET /2018-06-01/runtime/invocation/next`, answers on `.../invocation/{id}/response` or
//! `.../error`, and reports a failed start on `/2018-06-01/runtime/init/error`.
//!
//! It exists to time a cold start from the outside (cargo-lambda's emulator hides when the
//! process started and when it first polled) and is shared by the cold-start benchmark and its
//! smoke test.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, Response, StatusCode};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{Notify, mpsc, oneshot};

/// How the function answered one invocation.
#[derive(Debug)]
pub enum Outcome {
    Response(Value),
    /// The function's error (`errorType`, `errorMessage`).
    Error(Value),
}

/// One answered invocation, with when the function took it and when it answered.
#[derive(Debug)]
pub struct Answered {
    pub outcome: Outcome,
    pub handed_at: Instant,
    pub answered_at: Instant,
}

impl Answered {
    /// What the function spent on the event (handed out → answer received).
    pub fn duration(&self) -> Duration {
        self.answered_at - self.handed_at
    }
}

struct Pending {
    id: String,
    event: Value,
    answer: oneshot::Sender<(Outcome, Instant)>,
    handed: oneshot::Sender<Instant>,
}

struct Shared {
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<(Outcome, Instant)>>>,
    first_poll: Mutex<Option<Instant>>,
    init_error: Mutex<Option<Value>>,
    init_failed: Notify,
}

/// The runtime API of one execution environment (one function process at a time).
pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    sender: mpsc::UnboundedSender<Pending>,
    next_id: Mutex<u64>,
}

const BASE: &str = "/2018-06-01/runtime";

impl RuntimeApi {
    /// Listens on a free port of 127.0.0.1; call inside a tokio runtime.
    pub async fn start() -> std::io::Result<Self> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queue: tokio::sync::Mutex::new(receiver),
            waiting: Mutex::new(HashMap::new()),
            first_poll: Mutex::new(None),
            init_error: Mutex::new(None),
            init_failed: Notify::new(),
        });
        let app = Router::new()
            .route(&format!("{BASE}/invocation/next"), get(next))
            .route(
                &format!("{BASE}/invocation/{{id}}/{{outcome}}"),
                post(invocation_outcome),
            )
            .route(&format!("{BASE}/init/error"), post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RuntimeApi {
            addr,
            shared,
            sender,
            next_id: Mutex::new(0),
        })
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API` for the function process.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// When the process first asked for an invocation: the end of its init phase.
    pub fn first_poll(&self) -> Option<Instant> {
        *self.shared.first_poll.lock().unwrap()
    }

    /// What the process reported on `/init/error`, if it did.
    pub fn init_error(&self) -> Option<Value> {
        self.shared.init_error.lock().unwrap().clone()
    }

    /// Queues one event and waits for the function's answer (or its init error).
    pub async fn invoke(&self, event: Value) -> Result<Answered, String> {
        let id = {
            let mut n = self.next_id.lock().unwrap();
            *n += 1;
            format!("invocation-{n}")
        };
        let (answer, answered) = oneshot::channel();
        let (handed, handed_rx) = oneshot::channel();
        let init_failed = self.shared.init_failed.notified();
        if let Some(e) = self.init_error() {
            return Err(format!("the function reported an init error: {e}"));
        }
        self.sender
            .send(Pending {
                id,
                event,
                answer,
                handed,
            })
            .map_err(|_| "the runtime API is closed".to_owned())?;
        tokio::select! {
            got = answered => {
                let (outcome, answered_at) = got.map_err(|_| "the invocation was dropped".to_owned())?;
                let handed_at = handed_rx.await.map_err(|_| "never handed out".to_owned())?;
                Ok(Answered { outcome, handed_at, answered_at })
            }
            () = init_failed => Err(format!(
                "the function reported an init error: {}",
                self.init_error().unwrap_or_default()
            )),
        }
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response<axum::body::Body> {
    shared
        .first_poll
        .lock()
        .unwrap()
        .get_or_insert_with(Instant::now);
    let Some(pending) = shared.queue.lock().await.recv().await else {
        return Response::builder()
            .status(StatusCode::GONE)
            .body(axum::body::Body::empty())
            .unwrap();
    };
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        + Duration::from_secs(60);
    shared
        .waiting
        .lock()
        .unwrap()
        .insert(pending.id.clone(), pending.answer);
    let _ = pending.handed.send(Instant::now());
    let header = |v: &str| HeaderValue::from_str(v).expect("an ASCII header value");
    Response::builder()
        .header("content-type", "application/json")
        .header("lambda-runtime-aws-request-id", header(&pending.id))
        .header(
            "lambda-runtime-deadline-ms",
            header(&deadline.as_millis().to_string()),
        )
        .header(
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:000000000000:function:bench",
        )
        .header(
            "lambda-runtime-trace-id",
            "Root=1-00000000-000000000000000000000000",
        )
        .body(axum::body::Body::from(pending.event.to_string()))
        .unwrap()
}

fn answer(shared: &Shared, id: &str, outcome: Outcome) -> StatusCode {
    let at = Instant::now();
    match shared.waiting.lock().unwrap().remove(id) {
        Some(waiter) => {
            let _ = waiter.send((outcome, at));
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

fn json(body: &Bytes) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// `POST …/invocation/{id}/response` and `…/invocation/{id}/error`.
async fn invocation_outcome(
    State(shared): State<Arc<Shared>>,
    Path((id, outcome)): Path<(String, String)>,
    body: Bytes,
) -> StatusCode {
    let outcome = match outcome.as_str() {
        "response" => Outcome::Response(json(&body)),
        "error" => Outcome::Error(json(&body)),
        _ => return StatusCode::NOT_FOUND,
    };
    answer(&shared, &id, outcome)
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    *shared.init_error.lock().unwrap() = Some(json(&body));
    shared.init_failed.notify_waiters();
    StatusCode::ACCEPTED
}
