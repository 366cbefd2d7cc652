//! X-Ray subsegments for the parts of an invocation worth seeing in a trace: every AWS SDK call
//! (DynamoDB, S3, SQS: the SDK opens a span per operation) and the policy's part of a
//! resolution (`policy.call`, opened by `host_core::resolve`). A `tracing` layer turns those
//! spans, when they run inside an invocation that X-Ray samples, into subsegment documents sent
//! to the X-Ray daemon over UDP, which Lambda runs beside the function when the function's
//! tracing is active (`Tracing: Active` in the template; `AWS_XRAY_DAEMON_ADDRESS` names it).
//!
//! The invocation comes from the runtime's own span ("Lambda runtime invoke", with the
//! invocation's `xrayTraceId` header); a subsegment's parent is the nearest enclosing traced
//! span, or the function's segment. Spans cross onto blocking threads with the handlers
//! (`in_current_span`), so calls made there are traced too. No AWS X-Ray SDK exists for Rust
//! and the OpenTelemetry route needs a collector layer in the function; the daemon's protocol
//! (a JSON header line, then the document) is small and documented.

use std::collections::hash_map::RandomState;
use std::fmt::Debug;
use std::hash::{BuildHasher, Hasher};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::FilterFn;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The runtime's span around one invocation (`lambda_runtime::layers::trace`).
const INVOCATION_SPAN: &str = "Lambda runtime invoke";
/// The policy's part of a resolution (`host_core::resolve`).
const POLICY_SPAN: &str = "policy.call";

/// The spans this layer needs to see; everything else passes it by. The SDK's operation
/// spans are at debug level, so the layer is given this filter of its own and the logs keep
/// theirs.
pub fn filter() -> FilterFn<impl Fn(&Metadata<'_>) -> bool + Clone> {
    tracing_subscriber::filter::filter_fn(|meta| {
        if !meta.is_span() {
            return false;
        }
        let target = meta.target();
        meta.name() == INVOCATION_SPAN
            || meta.name() == POLICY_SPAN
            || ["aws_sdk_dynamodb", "aws_sdk_s3", "aws_sdk_sqs"]
                .iter()
                .any(|sdk| target.starts_with(sdk))
    })
}

/// The X-Ray daemon's UDP address from `AWS_XRAY_DAEMON_ADDRESS` (`127.0.0.1:2000`, or the
/// `udp:127.0.0.1:2000 tcp:127.0.0.1:2000` form Lambda sets); `None` when tracing is off.
pub fn daemon_address() -> Option<String> {
    let raw = std::env::var("AWS_XRAY_DAEMON_ADDRESS").ok()?;
    let mut parts = raw.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(only), None) => Some(only.to_owned()),
        _ => raw
            .split_whitespace()
            .find_map(|part| part.strip_prefix("udp:"))
            .map(str::to_owned),
    }
}

/// Sends the subsegments of sampled invocations to the daemon at `address`.
#[derive(Debug)]
pub struct XRayLayer {
    socket: UdpSocket,
    ids: AtomicU64,
    seed: u64,
}

impl XRayLayer {
    pub fn new(address: &str) -> std::io::Result<Self> {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        socket.connect(address)?;
        Ok(XRayLayer {
            socket,
            ids: AtomicU64::new(0),
            seed: RandomState::new().build_hasher().finish(),
        })
    }

    /// A fresh 64-bit subsegment id, as X-Ray wants it: 16 hex digits.
    fn next_id(&self) -> String {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(self.seed);
        h.write_u64(self.ids.fetch_add(1, Ordering::Relaxed));
        format!("{:016x}", h.finish())
    }

    fn send(&self, document: &Value) {
        let mut packet = br#"{"format": "json", "version": 1}"#.to_vec();
        packet.push(b'\n');
        packet.extend_from_slice(document.to_string().as_bytes());
        // Tracing must never fail an invocation: a lost datagram is a gap in a trace.
        let _ = self.socket.send(&packet);
    }
}

/// The invocation a span runs in, from the runtime's `xrayTraceId` header
/// (`Root=1-…;Parent=…;Sampled=1`).
#[derive(Clone, Debug)]
struct Invocation {
    root: String,
    parent: String,
}

fn parse_header(header: &str) -> Option<Invocation> {
    let mut root = None;
    let mut parent = None;
    let mut sampled = false;
    for part in header.split(';') {
        match part.trim().split_once('=') {
            Some(("Root", v)) => root = Some(v.to_owned()),
            Some(("Parent", v)) => parent = Some(v.to_owned()),
            Some(("Sampled", v)) => sampled = v == "1",
            _ => {}
        }
    }
    sampled.then_some(Invocation {
        root: root?,
        parent: parent?,
    })
}

/// A traced span, open: its subsegment's fields so far.
#[derive(Debug)]
struct Open {
    invocation: Invocation,
    id: String,
    parent_id: String,
    name: String,
    start: f64,
    aws: Option<Map<String, Value>>,
    annotations: Map<String, Value>,
}

/// The fields of a span this layer reads.
#[derive(Default)]
struct Fields {
    trace_header: Option<String>,
    service: Option<String>,
    operation: Option<String>,
    tenant: Option<String>,
    digest: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.set(
            field.name(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
}

impl Fields {
    fn set(&mut self, name: &str, value: String) {
        let slot = match name {
            "xrayTraceId" => &mut self.trace_header,
            "rpc.service" => &mut self.service,
            "rpc.method" => &mut self.operation,
            "tenant" => &mut self.tenant,
            "digest" => &mut self.digest,
            _ => return,
        };
        *slot = Some(value);
    }
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

impl<S> Layer<S> for XRayLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if span.name() == INVOCATION_SPAN {
            if let Some(invocation) = fields.trace_header.as_deref().and_then(parse_header) {
                span.extensions_mut().insert(invocation);
            }
            return;
        }
        // The nearest enclosing subsegment, else the invocation's segment.
        let mut enclosing = None;
        for ancestor in span.scope().skip(1) {
            let ext = ancestor.extensions();
            if let Some(open) = ext.get::<Open>() {
                enclosing = Some((open.invocation.clone(), open.id.clone()));
                break;
            }
            if let Some(invocation) = ext.get::<Invocation>() {
                enclosing = Some((invocation.clone(), invocation.parent.clone()));
                break;
            }
        }
        let Some((invocation, parent_id)) = enclosing else {
            return;
        };
        let (name, aws) = match (&fields.service, &fields.operation) {
            (Some(service), Some(operation)) => (
                service.clone(),
                Some(Map::from_iter([(
                    "operation".to_owned(),
                    Value::String(operation.clone()),
                )])),
            ),
            // An SDK span inside an operation (an attempt, serialisation): not its own
            // subsegment.
            _ if span.name() != POLICY_SPAN => return,
            _ => (POLICY_SPAN.to_owned(), None),
        };
        let mut annotations = Map::new();
        if let Some(tenant) = fields.tenant {
            annotations.insert("tenant".into(), Value::String(tenant));
        }
        if let Some(digest) = fields.digest {
            annotations.insert("policy_digest".into(), Value::String(digest));
        }
        span.extensions_mut().insert(Open {
            invocation,
            id: self.next_id(),
            parent_id,
            name,
            start: now_seconds(),
            aws,
            annotations,
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(open) = span.extensions_mut().remove::<Open>() else {
            return;
        };
        let mut document = json!({
            "type": "subsegment",
            "name": open.name,
            "id": open.id,
            "trace_id": open.invocation.root,
            "parent_id": open.parent_id,
            "start_time": open.start,
            "end_time": now_seconds(),
        });
        if let Some(aws) = open.aws {
            document["namespace"] = json!("aws");
            document["aws"] = Value::Object(aws);
        }
        if !open.annotations.is_empty() {
            document["annotations"] = Value::Object(open.annotations);
        }
        self.send(&document);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sampled_invocations_are_traced() {
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let invocation = parse_header(header).unwrap();
        assert_eq!(invocation.root, "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(invocation.parent, "53995c3f42cd8ad8");
        assert!(parse_header(&header.replace("Sampled=1", "Sampled=0")).is_none());
        assert!(parse_header("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1").is_none());
    }
}
