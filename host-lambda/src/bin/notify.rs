//! The notifier Lambda function: the hub on AWS. Reads the region's party table stream and
//! POSTs the TMF632 event of every change of a stored party to the callbacks its tenant
//! registered through `POST hub`; what a callback keeps refusing goes to the notifier's
//! dead-letter queue with the reason. Configuration: `LISTENER_TABLE`,
//! `NOTIFY_DEAD_LETTER_QUEUE_URL` and `REGION_NAME` (see `host_lambda::config`); no policies.

use std::time::Duration;

use anyhow::Context;
use host_aws::hub::DynamoHub;
use host_aws::sqs::{KIND_NOTIFY, SqsDeadLetters};
use host_lambda::config::FunctionConfig;
use host_lambda::notify_fn::{Callbacks, NotifyFunction};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    host_lambda::init_logs();
    let config = FunctionConfig::from_env()?;
    let listener_table = config
        .tables
        .listener
        .clone()
        .context("the notifier needs LISTENER_TABLE, the table of the hub's listeners")?;
    let queue_url = config.queues.notify_dead_letter.clone().context(
        "the notifier needs NOTIFY_DEAD_LETTER_QUEUE_URL, where undeliverable notifications go",
    )?;
    // The SDK clients and the HTTP client are built once per execution environment.
    let sdk = aws_config::load_from_env().await;
    let rt = tokio::runtime::Handle::current();
    let hub = DynamoHub::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        listener_table,
        rt.clone(),
    );
    let letters = SqsDeadLetters::new(aws_sdk_sqs::Client::new(&sdk), queue_url, KIND_NOTIFY, rt);
    let callbacks = Callbacks::new(Duration::from_secs(3))
        .context("loading the system's root certificates for https callbacks")?;
    let function = NotifyFunction::new(hub, letters, callbacks, &config.region);
    host_lambda::run_stream_function(|event| function.handle(event)).await
}
