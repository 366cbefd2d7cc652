//! One reading of the AWS SDK's errors for every store in this crate. A call's failure (after
//! the SDK's own retries) becomes an [`AwsError`]: whether a retry can fix it, and one line
//! that names the call, the table, bucket or queue, what is missing or wrong (the region, the
//! credentials, the resource, a permission) and what to do — never the SDK's `Debug` dump.
//! The stores turn it into the host core's errors ([`StoreError`], [`RegistryError`],
//! [`LogError`]) through the `From` impls below, after handling the outcomes they expect
//! (a failed condition they retry on, an object that is absent). [`check_credentials`] reads
//! the credentials the same way before any call.

use std::error::Error;
use std::fmt;

use aws_credential_types::provider::ProvideCredentials as _;
use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::endpoint::error::ResolveEndpointError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use host_core::conflict_log::LogError;
use host_core::failure::Failure;
use host_core::registry::RegistryError;
use host_core::store::StoreError;

use crate::ITEM_LIMIT;

/// What a call worked on, for messages.
#[derive(Clone, Copy, Debug)]
pub enum Resource<'a> {
    Table(&'a str),
    Bucket(&'a str),
    Queue(&'a str),
    /// A service called for no resource of ours, such as STS ("AWS STS").
    Service(&'a str),
}

impl fmt::Display for Resource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Table(name) => write!(f, "table {name}"),
            Resource::Bucket(name) => write!(f, "bucket {name}"),
            Resource::Queue(url) => write!(f, "queue {url}"),
            Resource::Service(name) => write!(f, "{name}"),
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

/// What an AWS call failed with, read once (see the module documentation). The SDK's error is
/// kept as the source; the message is the line to print.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct AwsError {
    pub kind: Kind,
    message: String,
    #[source]
    sdk: Option<Box<dyn Error + Send + Sync + 'static>>,
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
    matches!(code, "AccessDenied" | "AccessDeniedException")
}

/// Codes of credentials the service does not accept at all (an unknown key, a bad secret).
fn is_bad_credentials(code: &str) -> bool {
    matches!(
        code,
        "UnrecognizedClientException"
            | "InvalidClientTokenId"
            | "InvalidSignatureException"
            | "SignatureDoesNotMatch"
            | "MissingAuthenticationToken"
            | "InvalidAccessKeyId"
    )
}

/// Codes of a bucket addressed in a region it is not in.
fn is_wrong_region(code: &str, status: u16) -> bool {
    matches!(code, "PermanentRedirect" | "AuthorizationHeaderMalformed") || status == 301
}

/// The IAM action a denial names ("… is not authorized to perform: dynamodb:Query on
/// resource: …"), when the service says which.
fn denied_action(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once("not authorized to perform: ")?;
    let action = rest
        .split_whitespace()
        .next()?
        .trim_end_matches([',', '.', ';']);
    action.contains(':').then_some(action)
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

/// The error's causes, each once, joined with `: ` on one line (the SDK's wrappers repeat
/// themselves, an unclassified connector error says only `other`, and a provider chain lists
/// what it tried on lines of its own).
fn causes(err: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if !text.is_empty() && text != "other" && parts.last() != Some(&text) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// What a credentials failure says, shortly: a provider chain that found nothing is named by
/// the providers it tried ("tried Environment, Profile, …"), whose reasons ("the credential
/// provider was not enabled", each time) say nothing more.
fn credentials_detail(err: &CredentialsError) -> String {
    let mut next: Option<&(dyn Error + 'static)> = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if let Some((_, tried)) = text.split_once("Attempted:") {
            let names: Vec<&str> = tried
                .lines()
                .filter_map(|line| line.trim().split_once(':').map(|(name, _)| name))
                .filter(|name| !name.is_empty() && !name.contains(' '))
                .collect();
            if !names.is_empty() {
                return format!("tried {}", names.join(", "));
            }
        }
        next = e.source();
    }
    let text = causes(err);
    match text.strip_prefix(NOT_LOADED) {
        Some(rest) => rest.trim_start_matches(": ").to_owned(),
        None => text,
    }
}

/// How the SDK says that a provider has no credentials, before saying why.
const NOT_LOADED: &str = "the credential provider was not enabled";

/// How a failure to get credentials reads: what is missing or wrong, and what to do.
fn credentials_failure(err: &CredentialsError) -> (Kind, String) {
    let detail = credentials_detail(err);
    match err {
        CredentialsError::CredentialsNotLoaded(_) => {
            let detail = if detail.is_empty() {
                String::new()
            } else {
                format!(" ({detail})")
            };
            (
                Kind::Permanent,
                format!(
                    "no AWS credentials{detail}; set AWS_ACCESS_KEY_ID and \
                     AWS_SECRET_ACCESS_KEY, choose a profile that has them, or run with a role"
                ),
            )
        }
        CredentialsError::InvalidConfiguration(_) => (
            Kind::Permanent,
            format!("the AWS credentials are misconfigured ({detail}); fix the profile"),
        ),
        // A timeout, an STS or SSO call that failed, a provider's surprise.
        _ => (
            Kind::Transient,
            format!("the AWS credentials could not be fetched ({detail}); retry later"),
        ),
    }
}

/// Resolves `sdk`'s credentials once, before any call, so that missing or misconfigured
/// credentials are named as such rather than as the first call's failure. (The clients
/// resolve them again, through their own cache.)
pub async fn check_credentials(sdk: &aws_config::SdkConfig) -> Result<(), AwsError> {
    let Some(provider) = sdk.credentials_provider() else {
        return Err(AwsError {
            kind: Kind::Permanent,
            message: "no AWS credentials: the SDK's configuration has no credentials provider"
                .to_owned(),
            sdk: None,
        });
    };
    match provider.provide_credentials().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let (kind, message) = credentials_failure(&e);
            Err(AwsError {
                kind,
                message,
                sdk: Some(Box::new(e)),
            })
        }
    }
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
        err: SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + Error + Send + Sync + 'static,
    {
        let call = Call {
            action,
            resource: Resource::Table(table),
            region: client.config().region().map(|r| r.as_ref()),
        };
        AwsError::new(call, err)
    }

    /// Reads an SDK error from `call`.
    pub fn new<E>(call: Call<'_>, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + Error + Send + Sync + 'static,
    {
        let (kind, message) = Self::read(call, &err);
        AwsError {
            kind,
            message,
            sdk: Some(Box::new(err)),
        }
    }

    fn read<E>(call: Call<'_>, err: &SdkError<E, HttpResponse>) -> (Kind, String)
    where
        E: ProvideErrorMetadata + Error + 'static,
    {
        let Call {
            action,
            resource,
            region,
        } = call;
        let in_region = region.unwrap_or("(none)");
        // Most failures are about the call's resource; a missing or misplaced resource, or a
        // denial, makes the resource the sentence's subject.
        let about = |kind, detail: String| (kind, format!("{action} ({resource}): {detail}"));
        let (kind, message) = match err {
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
                let bucket = matches!(resource, Resource::Bucket(_));
                if code == "ConditionalCheckFailedException" {
                    about(
                        Kind::ConditionFailed,
                        format!("the condition did not hold ({said})"),
                    )
                } else if text.contains("Item size") {
                    about(
                        Kind::TooLarge,
                        format!("the item is over DynamoDB's {ITEM_LIMIT}-byte limit ({said})"),
                    )
                } else if is_throttling(code) {
                    about(
                        Kind::Transient,
                        format!("throttled beyond the SDK's retries ({said}); retry later"),
                    )
                } else if is_transient_code(code) || status >= 500 {
                    about(
                        Kind::Transient,
                        format!("the service failed ({said}); retry later"),
                    )
                } else if is_missing_resource(code) {
                    // Bucket names are global: the region does not make one exist.
                    let (place, check) = if bucket {
                        (String::new(), "check its name")
                    } else {
                        (
                            format!(" in region {in_region}"),
                            "check its name and the region",
                        )
                    };
                    (
                        Kind::Permanent,
                        format!("{action}: {resource} does not exist{place} ({said}); {check}"),
                    )
                } else if bucket && is_wrong_region(code, status) {
                    let message = match service.raw().headers().get("x-amz-bucket-region") {
                        Some(theirs) => format!(
                            "{action}: {resource} is in region {theirs}, not {in_region} \
                             ({said}); use region {theirs}"
                        ),
                        None => format!(
                            "{action}: {resource} is not in region {in_region} ({said}); use \
                             the bucket's region"
                        ),
                    };
                    (Kind::Permanent, message)
                } else if is_bad_credentials(code) {
                    about(
                        Kind::Permanent,
                        format!(
                            "the AWS credentials were not accepted ({said}); check the access \
                             key and secret, or the profile"
                        ),
                    )
                } else if is_access_denied(code) {
                    let message = match denied_action(text) {
                        Some(denied) => format!(
                            "{action}: access denied: these credentials may not call {denied} on \
                             {resource} ({said}); grant {denied} to them, or use other credentials"
                        ),
                        None if bucket => format!(
                            "{action}: access to {resource} denied ({said}); the bucket is another \
                             account's, or these credentials may not use it"
                        ),
                        None => format!(
                            "{action}: access to {resource} denied ({said}); check the \
                             credentials and their permissions"
                        ),
                    };
                    (Kind::Permanent, message)
                } else {
                    about(Kind::Permanent, format!("refused by the service ({said})"))
                }
            }
            SdkError::TimeoutError(_) => about(
                Kind::Transient,
                format!("timed out ({}); retry later", causes(err)),
            ),
            SdkError::ResponseError(_) => about(
                Kind::Transient,
                format!(
                    "the response could not be read ({}); retry later",
                    causes(err)
                ),
            ),
            SdkError::DispatchFailure(dispatch) => {
                let connector = dispatch.as_connector_error();
                if let Some(credentials) = caused_by::<CredentialsError>(err) {
                    let (kind, detail) = credentials_failure(credentials);
                    about(kind, detail)
                } else if region.is_none() {
                    // Nothing is sent without a region, and the SDK says so in more than one
                    // way (its endpoint rules' "Missing Region", its signer), with error types
                    // of crates this one does not see.
                    about(
                        Kind::Permanent,
                        format!(
                            "no AWS region ({}); set AWS_REGION or the profile's region",
                            causes(err)
                        ),
                    )
                } else if caused_by::<ResolveEndpointError>(err).is_some() {
                    about(
                        Kind::Permanent,
                        format!(
                            "no endpoint could be resolved ({}); check the region and the \
                             endpoint URL",
                            causes(err)
                        ),
                    )
                } else if connector.is_some_and(|c| c.is_io() || c.is_timeout()) {
                    about(
                        Kind::Transient,
                        format!(
                            "the service could not be reached ({}); retry later",
                            causes(err)
                        ),
                    )
                } else {
                    about(
                        Kind::Permanent,
                        format!("the request could not be sent ({})", causes(err)),
                    )
                }
            }
            // Construction failures and anything newer: the request itself is wrong.
            _ => about(
                Kind::Permanent,
                format!("the request could not be built ({})", causes(err)),
            ),
        };
        (kind, message)
    }

    pub fn is_transient(&self) -> bool {
        self.kind == Kind::Transient
    }

    /// What a call answered that we cannot read (an item of another shape): a retry reads the
    /// same, so it is permanent.
    pub fn malformed(message: impl Into<String>) -> Self {
        AwsError {
            kind: Kind::Permanent,
            message: message.into(),
            sdk: None,
        }
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
            Kind::Transient => StoreError::Transient(failure(e)),
            Kind::Permanent => StoreError::Fatal(failure(e)),
        }
    }
}

/// `Storage` is what the registry's callers retry; what a retry cannot fix is `Refused`, as the
/// local registry refuses a root that is not a directory. (A condition that failed where the
/// caller expected none is a concurrent change: re-reading and retrying fixes it.)
impl From<AwsError> for RegistryError {
    fn from(e: AwsError) -> Self {
        match e.kind {
            Kind::Transient | Kind::ConditionFailed => RegistryError::Storage(failure(e)),
            Kind::Permanent | Kind::TooLarge => RegistryError::Refused(e.message),
        }
    }
}

impl From<AwsError> for LogError {
    fn from(e: AwsError) -> Self {
        LogError::Storage(failure(e))
    }
}

/// The core's failure for an AWS error: its message, and the SDK's error as the cause.
fn failure(e: AwsError) -> Failure {
    match e.sdk {
        Some(sdk) => Failure::caused_by(e.message, sdk),
        None => Failure::new(e.message),
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
            service(
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
        let store = StoreError::from(e);
        assert!(matches!(store, StoreError::Fatal(_)));
        // The SDK's own error stays in the chain, under the readable line.
        let failure = store
            .source()
            .expect("the store error has its failure as the source");
        let sdk = failure.source().expect("the failure keeps the SDK's error");
        assert!(
            sdk.downcast_ref::<SdkError<ServiceFailure, HttpResponse>>()
                .is_some(),
            "the cause is the SDK's error, not a copy of its text: {sdk:?}"
        );
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
            let e = AwsError::new(PARTIES, service(status, code, "busy"));
            assert!(e.is_transient(), "{code} {status}");
            assert!(matches!(StoreError::from(e), StoreError::Transient(_)));
        }
    }

    #[test]
    fn conditions_and_size_keep_their_meaning() {
        let failed = AwsError::new(
            PARTIES,
            service(
                400,
                "ConditionalCheckFailedException",
                "The conditional request failed",
            ),
        );
        assert_eq!(StoreError::from(failed), StoreError::ConditionFailed);
        let big = AwsError::new(
            PARTIES,
            service(
                400,
                "ValidationException",
                "Item size has exceeded the maximum allowed size",
            ),
        );
        assert!(matches!(StoreError::from(big), StoreError::TooLarge { .. }));
    }

    /// A read of table parties-eu that `client` fails before sending anything, as a store
    /// reports it.
    async fn failed_read(client: &aws_sdk_dynamodb::Client, action: &str) -> AwsError {
        let err = client
            .get_item()
            .table_name("parties-eu")
            .send()
            .await
            .unwrap_err();
        AwsError::on_table(client, "parties-eu", action, err)
    }

    /// A real client without a region, as the CLI has with nothing configured: the SDK fails
    /// before sending anything (its endpoint rules need a region), and the error says so.
    #[tokio::test]
    async fn a_missing_region_says_so() {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .credentials_provider(aws_credential_types::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(config);
        let e = failed_read(&client, "reading party 42 of tenant acme").await;
        assert_eq!(e.kind, Kind::Permanent);
        let text = e.to_string();
        assert!(
            text.starts_with("reading party 42 of tenant acme (table parties-eu): no AWS region ("),
            "{text}"
        );
        assert!(
            text.ends_with("; set AWS_REGION or the profile's region"),
            "{text}"
        );
        assert!(!text.contains("DispatchFailure"), "no Debug dump: {text}");
    }

    /// A credentials provider that has none, like each provider of an empty environment.
    #[derive(Debug)]
    struct NoCredentials;

    impl aws_credential_types::provider::ProvideCredentials for NoCredentials {
        fn provide_credentials<'a>(
            &'a self,
        ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            aws_credential_types::provider::future::ProvideCredentials::ready(Err(
                CredentialsError::not_loaded("environment variable not set"),
            ))
        }
    }

    fn no_credentials() -> aws_config::SdkConfig {
        let chain = aws_config::meta::credentials::CredentialsProviderChain::first_try(
            "Environment",
            NoCredentials,
        )
        .or_else("Profile", NoCredentials);
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(chain),
            )
            .build()
    }

    #[tokio::test]
    async fn missing_credentials_are_one_sentence_before_and_during_a_call() {
        let sdk = no_credentials();
        let before = check_credentials(&sdk).await.unwrap_err();
        assert_eq!(before.kind, Kind::Permanent);
        assert_eq!(
            before.to_string(),
            "no AWS credentials (tried Environment, Profile); set AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY, choose a profile that has them, or run with a role"
        );
        let client = aws_sdk_dynamodb::Client::new(&sdk);
        let during = failed_read(&client, "reading party 42").await;
        assert_eq!(during.kind, Kind::Permanent);
        assert_eq!(
            during.to_string(),
            format!("reading party 42 (table parties-eu): {before}")
        );
    }

    #[test]
    fn a_denial_names_the_action_when_the_service_does() {
        let e = AwsError::new(
            PARTIES,
            service(
                400,
                "AccessDeniedException",
                "User: arn:aws:iam::123456789012:user/ops is not authorized to perform: \
                 dynamodb:GetItem on resource: arn:aws:dynamodb:eu-west-1:123456789012:table/\
                 parties-eu because no identity-based policy allows the dynamodb:GetItem action",
            ),
        );
        assert_eq!(e.kind, Kind::Permanent);
        let text = e.to_string();
        assert!(
            text.starts_with(
                "reading party 42 of tenant acme: access denied: these credentials may not call \
                 dynamodb:GetItem on table parties-eu (AccessDeniedException: User: "
            ),
            "{text}"
        );
        assert!(
            text.ends_with("; grant dynamodb:GetItem to them, or use other credentials"),
            "{text}"
        );
        assert_eq!(denied_action("Access Denied"), None);
    }

    const POLICIES: Call<'static> = Call {
        action: "uploading components/ab12.wasm",
        resource: Resource::Bucket("tmf632-policies"),
        region: Some("eu-west-1"),
    };

    #[test]
    fn a_bucket_that_is_missing_or_not_ours_is_named() {
        let missing = AwsError::new(
            POLICIES,
            service(404, "NoSuchBucket", "The specified bucket does not exist"),
        );
        assert_eq!(
            missing.to_string(),
            "uploading components/ab12.wasm: bucket tmf632-policies does not exist \
             (NoSuchBucket: The specified bucket does not exist); check its name"
        );
        let theirs = AwsError::new(POLICIES, service(403, "AccessDenied", "Access Denied"));
        assert_eq!(theirs.kind, Kind::Permanent);
        assert_eq!(
            theirs.to_string(),
            "uploading components/ab12.wasm: access to bucket tmf632-policies denied \
             (AccessDenied: Access Denied); the bucket is another account's, or these \
             credentials may not use it"
        );
    }

    #[test]
    fn a_bucket_in_another_region_names_its_region() {
        let mut raw = HttpResponse::new(301.try_into().unwrap(), SdkBody::empty());
        raw.headers_mut()
            .insert("x-amz-bucket-region", "eu-central-1");
        let meta = ErrorMetadata::builder().build();
        let err = SdkError::service_error(ServiceFailure(meta), raw);
        let e = AwsError::new(POLICIES, err);
        assert_eq!(
            e.to_string(),
            "uploading components/ab12.wasm: bucket tmf632-policies is in region eu-central-1, \
             not eu-west-1 (HTTP 301); use region eu-central-1"
        );
    }

    #[test]
    fn credentials_the_service_does_not_know_are_not_a_denial() {
        let e = AwsError::new(
            PARTIES,
            service(
                400,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ),
        );
        assert_eq!(e.kind, Kind::Permanent);
        assert!(
            e.to_string()
                .contains("the AWS credentials were not accepted (UnrecognizedClientException"),
            "{e}"
        );
    }

    #[test]
    fn a_dropped_connection_is_transient_and_readable() {
        let io = std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset by peer",
        );
        let err: SdkError<ServiceFailure, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io(Box::new(io)));
        let e = AwsError::new(PARTIES, err);
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
        let missing = AwsError::new(call, service(400, "ResourceNotFoundException", "not found"));
        assert!(!RegistryError::from(missing).is_transient());
        let throttled = AwsError::new(call, service(400, "ThrottlingException", "slow down"));
        assert!(RegistryError::from(throttled).is_transient());
    }
}
