//! The ingest function: TMF632 listener routes through API Gateway (HTTP API, payload v2) and
//! SQS batches, both onto the host library's [`Ingest`].
//!
//! API Gateway: the region's TMF632 API (`host_core::api`: the listener routes `POST
//! /tmf-api/party/v{4,5}/listener/{individualCreateEvent, …}`, the resource routes, and the
//! hub's `POST hub` / `DELETE hub/{id}` when a listener table is configured), the
//! tenant the caller's: the `tenant` claim (`TENANT_CLAIM`) of the JWT the HTTP API's authorizer
//! verified, never a header (401 without a claim, 403 when `x-tenant-id` names another tenant);
//! an optional `idempotency-key`. The answer: 201 with the result when applied,
//! 200 with the first result for a replay, the TMF630 error body when refused (400, 409, 413,
//! 422), 503 with `retry-after` while another delivery of the key is in progress, and 202 when
//! the event could not be applied and is kept in the dead-letter queue.
//!
//! SQS: each message's body is an event, the tenant in the `tenant` message attribute and an
//! optional `idempotencyKey`. Every message that cannot be applied (invalid included) goes to
//! the dead-letter queue and counts as handled; a message is reported as a batch item failure
//! only when it must be retried (in progress elsewhere, or the dead-letter send failed), so one
//! bad message never redrives the rest.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::HeaderValue;
use aws_lambda_events::http::header::CONTENT_TYPE;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use host_core::api::{ApiRequest, Hub, body_json};
use host_core::event::Tmf630Error;
use host_core::ingest::{Ingest, Outcome};
use host_core::store::{DeadLetter, DeadLetterSink, IngestStore};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

use crate::FunctionError;
use crate::metrics::Metrics;

/// What the function is invoked with: an SQS batch (it has `Records`) or an API Gateway HTTP
/// API request, payload 2.0 (it has a `requestContext`).
#[derive(Clone, Debug)]
pub enum IngestEvent {
    Sqs(SqsEvent),
    Http(Box<ApiGatewayV2httpRequest>),
}

/// Chosen by shape, as the two sources never send the other's members, so that an event that
/// does not parse is reported against the type it was meant to be (untagged would only say
/// that it matched neither).
impl<'de> Deserialize<'de> for IngestEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let event = Value::deserialize(d)?;
        if event.get("Records").is_some() {
            serde_json::from_value(event)
                .map(IngestEvent::Sqs)
                .map_err(|e| D::Error::custom(format!("an SQS batch that does not parse: {e}")))
        } else if event.get("requestContext").is_some() {
            serde_json::from_value(event)
                .map(|r| IngestEvent::Http(Box::new(r)))
                .map_err(|e| {
                    D::Error::custom(format!("an API Gateway request that does not parse: {e}"))
                })
        } else {
            Err(D::Error::custom(
                "expected an API Gateway HTTP API request (payload 2.0) or an SQS batch",
            ))
        }
    }
}

/// The answer to each: the batch item failures, or the HTTP response.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum IngestResponse {
    Sqs(SqsBatchResponse),
    Http(Box<ApiGatewayV2httpResponse>),
}

pub struct IngestFunction<S, D> {
    ingest: Arc<Ingest<S, D>>,
    region: String,
    /// The JWT claim that names the caller's tenant.
    tenant_claim: String,
    /// Where `POST hub` registers listeners; `None`: the API answers `hub` with 501.
    hub: Option<Arc<dyn Hub>>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

impl<S, D> IngestFunction<S, D>
where
    S: IngestStore + 'static,
    D: DeadLetterSink + 'static,
{
    pub fn new(ingest: Ingest<S, D>, region: impl Into<String>) -> Self {
        IngestFunction {
            ingest: Arc::new(ingest),
            region: region.into(),
            tenant_claim: "tenant".into(),
            hub: None,
        }
    }

    /// Serves `POST hub` and `DELETE hub/{id}` with `hub` (the notifier delivers the changes).
    pub fn with_hub(mut self, hub: Arc<dyn Hub>) -> Self {
        self.hub = Some(hub);
        self
    }

    /// Reads the caller's tenant from the JWT claim `claim` (default `tenant`).
    pub fn with_tenant_claim(mut self, claim: impl Into<String>) -> Self {
        self.tenant_claim = claim.into();
        self
    }

    pub fn ingest(&self) -> &Ingest<S, D> {
        &self.ingest
    }

    /// One invocation: an API Gateway request or an SQS batch; `deadline_ms` is the
    /// invocation's deadline (an in-progress claim lasts until then).
    pub async fn handle(&self, event: IngestEvent, deadline_ms: u64) -> IngestResponse {
        let answer = match event {
            IngestEvent::Sqs(batch) => {
                IngestResponse::Sqs(self.handle_sqs(batch, deadline_ms).await)
            }
            IngestEvent::Http(request) => {
                IngestResponse::Http(Box::new(self.handle_http(*request, deadline_ms).await))
            }
        };
        crate::metrics::emit_policy_stats(
            "ingest",
            &self.region,
            self.ingest.resolver().map(|r| &**r),
        );
        answer
    }

    async fn apply(
        &self,
        tenant: String,
        payload: Value,
        key: Option<String>,
        deadline_ms: u64,
    ) -> Result<Outcome, FunctionError> {
        let ingest = self.ingest.clone();
        crate::blocking(move || {
            ingest.handle(&tenant, &payload, key.as_deref(), now_ms(), deadline_ms)
        })
        .await
        .map_err(|e| FunctionError::Retryable(format!("the ingest task failed: {e}")))
    }

    /// One API Gateway request: the region's TMF632 API ([`host_core::api`]), the tenant in
    /// `x-tenant-id`.
    pub async fn handle_http(
        &self,
        request: ApiGatewayV2httpRequest,
        deadline_ms: u64,
    ) -> ApiGatewayV2httpResponse {
        let path = request
            .raw_path
            .clone()
            .or_else(|| request.request_context.http.path.clone())
            .unwrap_or_default();
        // The tenant is the authenticated caller's: the claim the JWT authorizer verified.
        let claimed = request
            .request_context
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .and_then(|jwt| jwt.claims.get(&self.tenant_claim))
            .cloned();
        let body = match decode_body(request.body.as_deref(), request.is_base64_encoded) {
            Ok(b) => b,
            Err(e) => return refused(e),
        };
        // A stage or custom-domain prefix before /tmf-api/ is the gateway's, not the route's.
        let at = path.find("/tmf-api/").unwrap_or(0);
        let (base, route) = path.split_at(at);
        let mut api = ApiRequest::new(request.request_context.http.method.as_str(), route)
            .with_base(base)
            .with_raw_query(request.raw_query_string.as_deref())
            .with_body(body);
        for (name, value) in &request.headers {
            if let Ok(v) = value.to_str() {
                api = api.with_header(name.as_str(), v);
            }
        }
        let tenant = match host_core::api::tenant_of(claimed.as_deref(), &api) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(route = %path, code = %e.code, "ingest.request.refused");
                return refused(e);
            }
        };
        let (ingest, hub) = (self.ingest.clone(), self.hub.clone());
        let answered = crate::blocking(move || {
            host_core::api::handle(
                &ingest,
                hub.as_deref(),
                &tenant,
                &api,
                now_ms(),
                deadline_ms,
            )
        })
        .await;
        let answer = match answered {
            Ok(a) => a,
            Err(e) => {
                return http(
                    500,
                    json!({"message": format!("the request task failed: {e}")}),
                );
            }
        };
        if let Some(outcome) = &answer.outcome {
            Metrics::new("ingest", &self.region).outcome(outcome).emit();
            tracing::info!(route = %path, outcome = outcome_name(outcome), "ingest.request");
        }
        let r = answer.response;
        let mut response = http(r.status, r.body.clone().unwrap_or(Value::Null));
        if r.body.is_none() {
            response.body = None;
        }
        for (name, value) in &r.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                response.headers.insert(*name, v);
            }
        }
        response
    }

    /// One SQS batch.
    pub async fn handle_sqs(&self, batch: SqsEvent, deadline_ms: u64) -> SqsBatchResponse {
        let mut answer = SqsBatchResponse::default();
        for message in batch.records {
            let id = message.message_id.clone().unwrap_or_default();
            let attr = |name: &str| {
                message
                    .message_attributes
                    .get(name)
                    .and_then(|a| a.string_value.clone())
            };
            let tenant = attr("tenant").unwrap_or_default();
            let key = attr("idempotencyKey");
            let body = message.body.clone().unwrap_or_default();
            let parsed = if tenant.is_empty() {
                Err(Tmf630Error::new(
                    400,
                    "missingTenant",
                    "Bad Request",
                    "the tenant message attribute is required",
                ))
            } else {
                body_json(body.as_bytes())
            };
            let outcome = match parsed {
                Ok(payload) => match self
                    .apply(tenant.clone(), payload, key.clone(), deadline_ms)
                    .await
                {
                    Ok(o) => o,
                    Err(_) => Outcome::InProgress,
                },
                Err(e) => Outcome::Refused(e),
            };
            Metrics::new("ingest", &self.region)
                .outcome(&outcome)
                .emit();
            tracing::info!(tenant, message = %id, outcome = outcome_name(&outcome), "ingest.message");
            let retry = match outcome {
                Outcome::Applied { .. } => false,
                Outcome::InProgress => true,
                // Invalid in the SQS path: nobody is waiting for an answer, so it is kept.
                Outcome::Refused(e) => {
                    let payload =
                        serde_json::from_str(&body).unwrap_or(Value::String(body.clone()));
                    let letter = DeadLetter {
                        tenant: tenant.clone(),
                        region: self.region.clone(),
                        reason: format!("refused: {} ({})", e.message, e.code),
                        idempotency_key: key.clone(),
                        payload,
                    };
                    let ingest = self.ingest.clone();
                    let sent = crate::blocking(move || ingest.dead_letters().send(&letter)).await;
                    !matches!(sent, Ok(Ok(())))
                }
                Outcome::DeadLettered(reason) => reason.contains("dead-letter send failed"),
            };
            if retry {
                answer.add_failure(id);
            }
        }
        answer
    }
}

fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Applied { replay: false, .. } => "applied",
        Outcome::Applied { replay: true, .. } => "replayed",
        Outcome::Refused(_) => "refused",
        Outcome::InProgress => "in-progress",
        Outcome::DeadLettered(_) => "dead-lettered",
    }
}

fn http(status: u16, body: Value) -> ApiGatewayV2httpResponse {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(status);
    response
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.is_base64_encoded = false;
    response.body = Some(Body::Text(body.to_string()));
    response
}

fn refused(e: Tmf630Error) -> ApiGatewayV2httpResponse {
    http(e.status(), e.to_json())
}

fn decode_body(body: Option<&str>, base64: bool) -> Result<Vec<u8>, Tmf630Error> {
    let body = body.unwrap_or_default();
    if base64 {
        aws_smithy_types::base64::decode(body).map_err(|e| {
            Tmf630Error::new(
                400,
                "invalidBody",
                "Bad Request",
                format!("the body is not valid base64: {e}"),
            )
        })
    } else {
        Ok(body.as_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_told_apart_by_shape() {
        let sqs: IngestEvent =
            serde_json::from_value(json!({"Records": [{"messageId": "m1", "body": "{}"}]}))
                .unwrap();
        assert!(matches!(sqs, IngestEvent::Sqs(b) if b.records.len() == 1));
        let http: IngestEvent = serde_json::from_value(json!({
            "version": "2.0", "rawPath": "/tmf-api/party/v5/listener/individualCreateEvent",
            "requestContext": {"http": {"method": "POST", "path": "/tmf-api/party/v5/listener/individualCreateEvent"}}
        }))
        .unwrap();
        assert!(matches!(http, IngestEvent::Http(_)));
        let neither = serde_json::from_value::<IngestEvent>(json!({"action": "receive"}));
        assert!(
            neither
                .unwrap_err()
                .to_string()
                .contains("expected an API Gateway HTTP API request (payload 2.0) or an SQS batch")
        );
        let broken = serde_json::from_value::<IngestEvent>(json!({"Records": 3}));
        let text = broken.unwrap_err().to_string();
        assert!(
            text.starts_with("an SQS batch that does not parse"),
            "{text}"
        );
    }

    /// What API Gateway (payload 2.0) and the SQS event source read from the answer.
    #[test]
    fn answers_have_the_wire_shape() {
        let answer = IngestResponse::Http(Box::new(http(201, json!({"partyId": "42"}))));
        let v = serde_json::to_value(answer).unwrap();
        assert_eq!(v["statusCode"], json!(201));
        assert_eq!(v["headers"]["content-type"], json!("application/json"));
        assert_eq!(v["isBase64Encoded"], json!(false));
        assert_eq!(v["body"], json!(r#"{"partyId":"42"}"#));
        let mut batch = SqsBatchResponse::default();
        batch.add_failure("m1");
        assert_eq!(
            serde_json::to_value(IngestResponse::Sqs(batch)).unwrap(),
            json!({"batchItemFailures": [{"itemIdentifier": "m1"}]})
        );
    }
}
