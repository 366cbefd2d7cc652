//! One reading of the AWS SDK's errors for every store in this crate. A call's failure (after
//! the SDK's own retries) becomes an [`AwsError`]: whether a retry can fix it, and a message
//! that names the call, the table, bucket or queue, and what to do — never the SDK's `Debug`
//! dump. The stores turn it into the host core's errors ([`StoreError`], [`RegistryError`],
//! [`LogError`]) through the `From` impls below, after handling the outcomes they expect
//! (a failed condition they retry on, an object that is absent).

use std::error::Error;
use std::fmt;

use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::endpoint::error::ResolveEndpointError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use host_core::conflict_log::LogError;
use host_core::registry::RegistryError;
use host_core::store::StoreError;

use crate::ITEM_LIMIT;

/// What a call worked on, for messages.
#[derive(Clone, Copy, Debug)]
pub enum Resource<'a> {
    Table(&'a str),
    Bucket(&'a str),
    Queue(&'a str),
}

impl fmt::Display for Resource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Table(name) => write!(f, "table {name}"),
            Resource::Bucket(name) => write!(f, "bucket {name}"),
            Resource::Queue(url) => write!(f, "queue {url}"),
        }
    }
}

/// One AWS call, described for its error messages.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// What the call was for ("reading party 42 of tenant acme").
    pub action: &'a str,
    pub resource: Resource<'a>,
    /// The client's region; `None` when none is configured.
    pub region: Option<&'a str>,
}

/// How an AWS call failed, as far as its caller is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Throttling, a service's internal error, a timeout, a dropped connection, credentials
    /// that could not be fetched in time: the same call may succeed later.
    Transient,
    /// The table, bucket or queue does not exist, no region or credentials are configured,
    /// access is denied, or the service refuses the request as made: it will fail again.
    Permanent,
    /// A conditional write's condition did not hold (`ConditionalCheckFailedException`).
    ConditionFailed,
    /// DynamoDB refused the item as over its size limit.
    TooLarge,
}

/// What an AWS call failed with, read once (see the module documentation).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct AwsError {
    pub kind: Kind,
    message: String,
}

/// Error codes of throttling, as DynamoDB, S3 and SQS name them.
fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException"
            | "ProvisionedThroughputExceeded"
            | "ThrottlingException"
            | "ThrottlingError"
            | "Throttling"
            | "RequestLimitExceeded"
            | "TooManyRequestsException"
            | "SlowDown"
            | "RequestThrottled"
            | "KMSThrottlingException"
    )
}

/// Codes a retry can fix besides throttling: the service's own failures and races.
fn is_transient_code(code: &str) -> bool {
    matches!(
        code,
        "InternalServerError"
            | "InternalError"
            | "InternalFailure"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "TransactionConflict"
            | "TransactionConflictException"
            | "TransactionInProgressException"
            | "RequestTimeout"
            | "RequestTimeoutException"
            | "ExpiredToken"
            | "ExpiredTokenException"
    )
}

/// Whether a transaction's cancellation reason (`ThrottlingError`, `TransactionConflict`, …)
/// is one a retry can fix.
pub(crate) fn is_transient_reason(code: &str) -> bool {
    is_throttling(code) || is_transient_code(code)
}

fn is_access_denied(code: &str) -> bool {
    matches!(
        code,
        "AccessDenied"
            | "AccessDeniedException"
            | "UnrecognizedClientException"
            | "InvalidClientTokenId"
            | "InvalidSignatureException"
            | "SignatureDoesNotMatch"
            | "MissingAuthenticationToken"
            | "InvalidAccessKeyId"
    )
}

fn is_missing_resource(code: &str) -> bool {
    matches!(
        code,
        "ResourceNotFoundException"
            | "NoSuchBucket"
            | "AWS.SimpleQueueService.NonExistentQueue"
            | "QueueDoesNotExist"
    )
}

/// The error's causes, each once, joined with `: ` (the SDK's wrappers repeat themselves, and
/// an unclassified connector error says only `other`).
fn causes(err: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && text != "other" && parts.last() != Some(&text) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// The first error in the chain that is a `T`.
fn caused_by<'a, T: Error + 'static>(err: &'a (dyn Error + 'static)) -> Option<&'a T> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

impl AwsError {
    /// A failed call on DynamoDB table `table`, in the region `client` is configured for.
    pub fn on_table<E>(
        client: &aws_sdk_dynamodb::Client,
        table: &str,
        action: &str,
        err: &SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + Error + 'static,
    {
        let call = Call {
            action,
            resource: Resource::Table(table),
            region: client.config().region().map(|r| r.as_ref()),
        };
        AwsError::new(call, err)
    }

    /// Reads an SDK error from `call`.
    pub fn new<E>(call: Call<'_>, err: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + Error + 'static,
    {
        let Call {
            action,
            resource,
            region,
        } = call;
        let (kind, detail) = match err {
            SdkError::ServiceError(service) => {
                let code = err.code().unwrap_or_default();
                let text = err.message().unwrap_or_default();
                let status = service.raw().status().as_u16();
                let said = match (code, text) {
                    ("", "") => format!("HTTP {status}"),
                    ("", text) => format!("HTTP {status}: {text}"),
                    (code, "") => code.to_owned(),
                    (code, text) => format!("{code}: {text}"),
                };
                if code == "ConditionalCheckFailedException" {
                    (
                        Kind::ConditionFailed,
                        format!("the condition did not hold ({said})"),
                    )
                } else if text.contains("Item size") {
                    (
                        Kind::TooLarge,
                        format!("the item is over DynamoDB's {ITEM_LIMIT}-byte limit ({said})"),
                    )
                } else if is_throttling(code) {
                    (
                        Kind::Transient,
                        format!("throttled beyond the SDK's retries ({said}); retry later"),
                    )
                } else if is_transient_code(code) || status >= 500 {
                    (
                        Kind::Transient,
                        format!("the service failed ({said}); retry later"),
                    )
                } else if is_missing_resource(code) {
                    let region = region.unwrap_or("(none)");
                    return AwsError {
                        kind: Kind::Permanent,
                        message: format!(
                            "{action}: {resource} does not exist in region {region} ({said}); \
                             check its name and the region"
                        ),
                    };
                } else if is_access_denied(code) {
                    (
                        Kind::Permanent,
                        format!(
                            "access denied ({said}); check the credentials and their permissions"
                        ),
                    )
                } else {
                    (Kind::Permanent, format!("refused by the service ({said})"))
                }
            }
            SdkError::TimeoutError(_) => (
                Kind::Transient,
                format!("timed out ({}); retry later", causes(err)),
            ),
            SdkError::ResponseError(_) => (
                Kind::Transient,
                format!(
                    "the response could not be read ({}); retry later",
                    causes(err)
                ),
            ),
            SdkError::DispatchFailure(dispatch) => {
                let connector = dispatch.as_connector_error();
                if caused_by::<ResolveEndpointError>(err).is_some() {
                    let fix = if region.is_none() {
                        "no AWS region is configured: set AWS_REGION (or the profile's region)"
                    } else {
                        "no endpoint could be resolved: check the region and the endpoint URL"
                    };
                    (Kind::Permanent, format!("{fix} ({})", causes(err)))
                } else if let Some(credentials) = caused_by::<CredentialsError>(err) {
                    match credentials {
                        CredentialsError::CredentialsNotLoaded(_)
                        | CredentialsError::InvalidConfiguration(_) => (
                            Kind::Permanent,
                            format!(
                                "no usable AWS credentials ({}); configure credentials or the role",
                                causes(err)
                            ),
                        ),
                        _ => (
                            Kind::Transient,
                            format!(
                                "the credentials could not be fetched ({}); retry later",
                                causes(err)
                            ),
                        ),
                    }
                } else if connector.is_some_and(|c| c.is_io() || c.is_timeout()) {
                    (
                        Kind::Transient,
                        format!(
                            "the service could not be reached ({}); retry later",
                            causes(err)
                        ),
                    )
                } else {
                    (
                        Kind::Permanent,
                        format!("the request could not be sent ({})", causes(err)),
                    )
                }
            }
            // Construction failures and anything newer: the request itself is wrong.
            _ => (
                Kind::Permanent,
                format!("the request could not be built ({})", causes(err)),
            ),
        };
        AwsError {
            kind,
            message: format!("{action} ({resource}): {detail}"),
        }
    }

    pub fn is_transient(&self) -> bool {
        self.kind == Kind::Transient
    }
}

impl From<AwsError> for StoreError {
    fn from(e: AwsError) -> Self {
        match e.kind {
            Kind::ConditionFailed => StoreError::ConditionFailed,
            // The service does not say by how much; the size check before the request does.
            Kind::TooLarge => StoreError::TooLarge {
                size: 0,
                limit: ITEM_LIMIT,
            },
            Kind::Transient => StoreError::Transient(e.message),
            Kind::Permanent => StoreError::Fatal(e.message),
        }
    }
}

/// `Storage` is what the registry's callers retry; what a retry cannot fix is `Refused`, as the
/// local registry refuses a root that is not a directory. (A condition that failed where the
/// caller expected none is a concurrent change: re-reading and retrying fixes it.)
impl From<AwsError> for RegistryError {
    fn from(e: AwsError) -> Self {
        match e.kind {
            Kind::Transient | Kind::ConditionFailed => RegistryError::Storage(e.message),
            Kind::Permanent | Kind::TooLarge => RegistryError::Refused(e.message),
        }
    }
}

impl From<AwsError> for LogError {
    fn from(e: AwsError) -> Self {
        LogError::Storage(e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    #[derive(Debug)]
    struct ServiceFailure(ErrorMetadata);

    impl fmt::Display for ServiceFailure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("service failure")
        }
    }
    impl Error for ServiceFailure {}
    impl ProvideErrorMetadata for ServiceFailure {
        fn meta(&self) -> &ErrorMetadata {
            &self.0
        }
    }

    fn service(status: u16, code: &str, message: &str) -> SdkError<ServiceFailure, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message(message).build();
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(ServiceFailure(meta), raw)
    }

    const PARTIES: Call<'static> = Call {
        action: "reading party 42 of tenant acme",
        resource: Resource::Table("parties-eu"),
        region: Some("eu-west-1"),
    };

    #[test]
    fn a_missing_table_is_named_and_not_retried() {
        let e = AwsError::new(
            PARTIES,
            &service(
                400,
                "ResourceNotFoundException",
                "Requested resource not found",
            ),
        );
        assert_eq!(e.kind, Kind::Permanent);
        assert_eq!(
            e.to_string(),
            "reading party 42 of tenant acme: table parties-eu does not exist in region eu-west-1 \
             (ResourceNotFoundException: Requested resource not found); check its name and the region"
        );
        assert!(matches!(StoreError::from(e), StoreError::Fatal(_)));
    }

    #[test]
    fn throttling_and_server_failures_are_transient() {
        for (status, code) in [
            (400, "ProvisionedThroughputExceededException"),
            (400, "ThrottlingException"),
            (503, "SlowDown"),
            (500, "InternalServerError"),
            (502, ""),
        ] {
            let e = AwsError::new(PARTIES, &service(status, code, "busy"));
            assert!(e.is_transient(), "{code} {status}");
            assert!(matches!(StoreError::from(e), StoreError::Transient(_)));
        }
    }

    #[test]
    fn conditions_and_size_keep_their_meaning() {
        let failed = AwsError::new(
            PARTIES,
            &service(
                400,
                "ConditionalCheckFailedException",
                "The conditional request failed",
            ),
        );
        assert_eq!(StoreError::from(failed), StoreError::ConditionFailed);
        let big = AwsError::new(
            PARTIES,
            &service(
                400,
                "ValidationException",
                "Item size has exceeded the maximum allowed size",
            ),
        );
        assert!(matches!(StoreError::from(big), StoreError::TooLarge { .. }));
    }

    #[test]
    fn a_missing_region_says_so() {
        let cause = ResolveEndpointError::message(
            "A region must be set when sending requests to DynamoDB.",
        );
        let err: SdkError<ServiceFailure, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::other(Box::new(cause), None));
        let e = AwsError::new(
            Call {
                region: None,
                ..PARTIES
            },
            &err,
        );
        assert_eq!(e.kind, Kind::Permanent);
        let text = e.to_string();
        assert!(text.contains("no AWS region is configured"), "{text}");
        assert!(text.contains("A region must be set"), "{text}");
        assert!(!text.contains("ConnectorError {"), "no Debug dump: {text}");
    }

    #[test]
    fn a_dropped_connection_is_transient_and_readable() {
        let io = std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset by peer",
        );
        let err: SdkError<ServiceFailure, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io(Box::new(io)));
        let e = AwsError::new(PARTIES, &err);
        assert!(e.is_transient());
        assert!(e.to_string().contains("connection reset by peer"), "{e}");
    }

    #[test]
    fn registry_errors_are_transient_only_when_a_retry_helps() {
        let call = Call {
            action: "reading tenant acme's state",
            resource: Resource::Table("tmf632-registry"),
            region: Some("eu-west-1"),
        };
        let missing = AwsError::new(
            call,
            &service(400, "ResourceNotFoundException", "not found"),
        );
        assert!(!RegistryError::from(missing).is_transient());
        let throttled = AwsError::new(call, &service(400, "ThrottlingException", "slow down"));
        assert!(RegistryError::from(throttled).is_transient());
    }
}
