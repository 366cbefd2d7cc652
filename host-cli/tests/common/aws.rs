//! What the CLI's AWS tests share: the moto server, unique names, and host-cli in an empty
//! environment (no ~/.aws, no instance metadata, no region, no credentials), with or without
//! moto's endpoint and fake credentials.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};

/// The moto server of `scripts/with-moto.sh`.
pub fn moto() -> String {
    std::env::var("MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "MOTO_ENDPOINT is not set: run these tests under scripts/with-moto.sh (it starts \
             moto and sets it)"
        )
    })
}

/// A name no other test (or earlier run against the same server) uses; lower case, as
/// bucket names must be.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// host-cli in an empty environment: a home of its own with empty AWS config files (a profile
/// is added by the test that needs one), instance metadata off, no region, no credentials.
pub fn cli(home: &Path) -> Command {
    for file in ["config", "credentials"] {
        let path = home.join(file);
        if !path.exists() {
            std::fs::write(&path, "").unwrap();
        }
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_host-cli"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", home.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .current_dir(home);
    cmd
}

/// The same, with moto's endpoint and its fake credentials in the environment.
pub fn cli_on_moto(home: &Path) -> Command {
    let mut cmd = cli(home);
    cmd.env("AWS_ENDPOINT_URL", moto())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing");
    cmd
}

/// SDK configuration for `region` of moto, with its fake credentials.
pub fn sdk(region: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(moto())
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            Credentials::new("testing", "testing", None, None, "moto"),
        ))
        .build()
}

/// Creates a table with a string hash and range key in `region` of moto (the registry's
/// `tenant`/`entry`, the conflict log's `pk`/`sk`).
pub fn create_table(region: &str, name: &str, hash: &str, range: &str) {
    let client = aws_sdk_dynamodb::Client::new(&sdk(region));
    let key = |name: &str, key_type| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .unwrap()
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(
            client
                .create_table()
                .table_name(name)
                .billing_mode(BillingMode::PayPerRequest)
                .key_schema(key(hash, KeyType::Hash))
                .key_schema(key(range, KeyType::Range))
                .attribute_definitions(attribute(hash))
                .attribute_definitions(attribute(range))
                .send(),
        )
        .unwrap_or_else(|e| panic!("creating table {name} in {region} of moto: {e:?}"));
}
