//! The policy registry on AWS as an operator drives it across the three regions, on moto:
//! `--regions` puts a component into every region's bucket in one call and records the version
//! once; a region that fails is named beside the regions that have it, and the same command
//! again stores only what is missing; activation waits until every region has the version,
//! and a rollback to a version some regions lack names them.
//! Every change is recorded as the caller's IAM principal (STS GetCallerIdentity), beside the
//! signing key's id when signed; `--as` is refused on AWS.
//!
//! moto keeps regions apart by the request's signature, so one server stands in for the three
//! regions: a table made in eu-west-1 is not there in us-east-1, nor a bucket's objects in
//! another bucket. moto answers GetCallerIdentity for any credentials as
//! `arn:aws:sts::123456789012:user/moto`.
//!
//! AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing scripts/with-moto.sh \
//!     cargo test -p host-cli --features aws --test aws_registry

#![cfg(feature = "aws")]

#[path = "common/aws.rs"]
mod aws;

use std::path::Path;
use std::process::{Command, Output};

use aws::{create_table, sdk, unique};
use serde_json::Value;

/// The account moto answers GetCallerIdentity with, and the principal.
const ACCOUNT: &str = "123456789012";
const PRINCIPAL: &str = "arn:aws:sts::123456789012:user/moto";

const REGIONS: [&str; 3] = ["eu-west-1", "ap-southeast-1", "us-east-1"];

/// host-cli on moto, in an empty environment of its own (no ~/.aws, no $USER, no region).
fn cli(home: &Path) -> Command {
    aws::cli_on_moto(home)
}

fn run(home: &Path, args: &[&str]) -> Output {
    cli(home).args(args).output().expect("running host-cli")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the exit status, showing both streams when it is not the one expected.
fn expect(out: &Output, code: i32, args: &[&str]) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}\nstdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

fn s3(region: &str) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk(region))
            .force_path_style(true)
            .build(),
    )
}

fn create_bucket(rt: &tokio::runtime::Runtime, region: &str, name: &str) {
    use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
    let mut req = s3(region).create_bucket().bucket(name);
    if region != "us-east-1" {
        req = req.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build(),
        );
    }
    rt.block_on(req.send())
        .unwrap_or_else(|e| panic!("creating bucket {name} in {region}: {e:?}"));
}

/// The component bytes under `components/{digest}.wasm` in `bucket`, if any.
fn component_in(
    rt: &tokio::runtime::Runtime,
    region: &str,
    bucket: &str,
    digest: &str,
) -> Option<Vec<u8>> {
    let out = rt
        .block_on(
            s3(region)
                .get_object()
                .bucket(bucket)
                .key(format!("components/{digest}.wasm"))
                .send(),
        )
        .ok()?;
    Some(
        rt.block_on(out.body.collect())
            .unwrap()
            .into_bytes()
            .to_vec(),
    )
}

/// A registry on moto: the table in all three regions, and the bucket name of each region
/// (`{prefix}-{account}-{region}`, the deployment's pattern) with none of the buckets made.
struct Rig {
    rt: tokio::runtime::Runtime,
    home: tempfile::TempDir,
    table: String,
    prefix: String,
}

impl Rig {
    fn new() -> Self {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let table = unique("registry");
        for region in REGIONS {
            create_table(region, &table, "tenant", "entry");
        }
        Rig {
            rt,
            home: tempfile::tempdir().unwrap(),
            table,
            prefix: unique("policies"),
        }
    }

    fn bucket(&self, region: &str) -> String {
        format!("{}-{ACCOUNT}-{region}", self.prefix)
    }

    /// `--bucket` as a template, as an operator gives it for --regions.
    fn template(&self) -> String {
        format!("{}-{{account}}-{{region}}", self.prefix)
    }

    /// `policy …` with `--registry aws`, this rig's table and bucket template, and `extra`.
    fn policy(&self, extra: &[&str]) -> (Output, Vec<String>) {
        self.policy_in(&self.template(), extra)
    }

    /// `policy …` with `--registry aws`, this rig's table, `--bucket bucket` and `extra`.
    fn policy_in(&self, bucket: &str, extra: &[&str]) -> (Output, Vec<String>) {
        let registry = ["--tenant", "acme", "--registry", "aws"];
        let store = ["--table", &self.table, "--bucket", bucket];
        let args: Vec<String> = [&["policy"][..], extra, &registry, &store]
            .concat()
            .into_iter()
            .map(String::from)
            .collect();
        (run(self.home.path(), &refs(&args)), args)
    }

    /// `policy upload <policy> --cases 1 <extra…>`, which must succeed.
    fn uploaded(&self, policy: &str, extra: &[&str]) {
        let (out, args) = self.policy(&[&["upload", policy, "--cases", "1"][..], extra].concat());
        expect(&out, 0, &refs(&args));
    }

    /// `policy list --json` through `region`.
    fn list(&self, region: &str) -> Value {
        let (out, args) = self.policy(&["list", "--json", "--region", region]);
        expect(&out, 0, &refs(&args));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Asserts that each of `regions` has the default policy's component in its bucket.
    fn assert_default_policy_in(&self, regions: &[&str]) {
        let digest = host_core::digest(default_policy_artifact::DEFAULT_POLICY);
        for region in regions {
            assert_eq!(
                component_in(&self.rt, region, &self.bucket(region), &digest).as_deref(),
                Some(default_policy_artifact::DEFAULT_POLICY),
                "{region}'s bucket has the component"
            );
        }
    }

    fn history(&self, region: &str) -> Vec<Value> {
        let (out, args) = self.policy(&["history", "--json", "--region", region]);
        expect(&out, 0, &refs(&args));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The per-region line of `region` in an upload's text output.
fn region_line<'a>(stdout: &'a str, region: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with(region))
        .unwrap_or_else(|| panic!("no line for {region} in:\n{stdout}"))
}

/// Asserts that each region's line in an upload's output says what is expected of it.
fn assert_regions(stdout: &str, expected: &[(&str, &str)]) {
    for (region, state) in expected {
        assert!(region_line(stdout, region).contains(state), "{stdout}");
    }
}

/// One call uploads to the three regions. With one region's bucket missing, the command names
/// the regions that have the component and the one that does not, exits 2 and records no
/// version (so nothing can activate it); once the bucket exists the same command stores only
/// the missing copy and records the version, and a third run changes nothing.
#[test]
fn upload_reaches_every_region_and_a_rerun_fills_the_gap() {
    let rig = Rig::new();
    let digest = host_core::digest(default_policy_artifact::DEFAULT_POLICY);
    create_bucket(&rig.rt, "eu-west-1", &rig.bucket("eu-west-1"));
    create_bucket(&rig.rt, "ap-southeast-1", &rig.bucket("ap-southeast-1"));
    let upload = [
        "upload",
        "default",
        "--label",
        "v1",
        "--cases",
        "1",
        "--regions",
        "eu,apac,na",
    ];

    // NA's bucket is missing.
    let (out, args) = rig.policy(&upload);
    expect(&out, 2, &refs(&args));
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_regions(
        &stdout,
        &[
            ("eu-west-1", "stored now"),
            ("ap-southeast-1", "stored now"),
        ],
    );
    let na = region_line(&stdout, "us-east-1");
    assert!(
        na.contains("FAILED") && na.contains(&rig.bucket("us-east-1")),
        "{stdout}"
    );
    assert!(
        stderr.contains("is in eu-west-1, ap-southeast-1 but not in us-east-1")
            && stderr.contains("the version is not recorded"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    rig.assert_default_policy_in(&["eu-west-1", "ap-southeast-1"]);
    // Not recorded: the registry does not know the tenant yet.
    let (out, args) = rig.policy(&["list", "--region", "eu-west-1"]);
    expect(&out, 2, &refs(&args));
    assert!(text(&out.stderr).contains("no tenant acme"), "{out:?}");

    // The bucket exists now: the same command fills the gap and records the version.
    create_bucket(&rig.rt, "us-east-1", &rig.bucket("us-east-1"));
    let (out, args) = rig.policy(&upload);
    expect(&out, 0, &refs(&args));
    let stdout = text(&out.stdout);
    assert_regions(
        &stdout,
        &[
            ("eu-west-1", "present"),
            ("ap-southeast-1", "present"),
            ("us-east-1", "stored now"),
        ],
    );
    assert!(stdout.contains("tenant acme: uploaded v1"), "{stdout}");
    rig.assert_default_policy_in(&REGIONS);

    // Again: nothing to do anywhere.
    let (out, args) = rig.policy(&upload);
    expect(&out, 0, &refs(&args));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("v1 (") && stdout.contains("was already uploaded; nothing changed"),
        "{stdout}"
    );
    for region in REGIONS {
        assert!(region_line(&stdout, region).contains("present"), "{stdout}");
    }

    // Recorded once, through the first region listed, as the caller's principal.
    let listed = rig.list("eu-west-1");
    let versions = listed["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1, "{listed}");
    assert_eq!(versions[0]["digest"], digest.as_str());
    assert_eq!(versions[0]["uploadedBy"], PRINCIPAL, "{listed}");
    let history = rig.history("eu-west-1");
    assert_eq!(history.len(), 1, "one upload entry: {history:?}");
    assert_eq!(history[0]["by"], PRINCIPAL);
}

/// Activation with --regions is refused, naming the regions, while a region's bucket lacks
/// the version (nothing changes); a version every region has is activated once, through the
/// first region, as the caller's principal.
#[test]
fn activation_waits_for_every_region() {
    let rig = Rig::new();
    for region in REGIONS {
        create_bucket(&rig.rt, region, &rig.bucket(region));
    }
    rig.uploaded("default", &["--label", "v1", "--regions", "all"]);
    // v2 goes to the home region only.
    rig.uploaded("na-status", &["--label", "v2", "--region", "eu-west-1"]);

    let (out, args) = rig.policy(&["activate", "v2", "--regions", "eu,apac,na", "--json"]);
    expect(&out, 1, &refs(&args));
    let refusal: Value = serde_json::from_slice(&out.stdout).unwrap();
    let reason = refusal["reason"].as_str().unwrap();
    assert!(
        reason.contains("is in eu-west-1 but not in ap-southeast-1, us-east-1")
            && reason.contains("nothing changed"),
        "{reason}"
    );
    assert!(
        rig.list("eu-west-1")["versions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["status"] == "staged"),
        "nothing was activated"
    );

    let (out, args) = rig.policy(&["activate", "v1", "--regions", "eu,apac,na", "--json"]);
    expect(&out, 0, &refs(&args));
    let change: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(change["changed"], true, "{change}");
    let regions: Vec<&str> = change["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["component"], "present", "{change}");
            r["region"].as_str().unwrap()
        })
        .collect();
    assert_eq!(regions, REGIONS);
    let activation = rig
        .history("eu-west-1")
        .into_iter()
        .find(|e| e["action"] == "activate")
        .expect("an activate entry");
    assert_eq!(activation["by"], PRINCIPAL);
}

/// A signed upload on AWS is recorded as the key and the principal who uploaded it; `--as`
/// is refused rather than recorded; a bucket without `{region}` is refused for several
/// regions (they would share one bucket).
#[test]
fn audit_identity_is_the_key_and_the_principal() {
    let rig = Rig::new();
    create_bucket(&rig.rt, "eu-west-1", &rig.bucket("eu-west-1"));
    let out = run(
        rig.home.path(),
        &["policy", "keygen", "--out", "release-key"],
    );
    expect(&out, 0, &["policy", "keygen"]);
    rig.uploaded(
        "default",
        &["--sign", "release-key", "--region", "eu-west-1"],
    );
    let listed = rig.list("eu-west-1");
    let version = &listed["versions"][0];
    let key_id = version["signature"]["keyId"].as_str().unwrap();
    let expected = format!("key:{key_id} by {PRINCIPAL}");
    assert_eq!(version["uploadedBy"], expected.as_str(), "{listed}");
    assert_eq!(rig.history("eu-west-1")[0]["by"], expected.as_str());

    let (out, args) = rig.policy(&[
        "upload",
        "default",
        "--cases",
        "1",
        "--region",
        "eu-west-1",
        "--as",
        "mallory",
    ]);
    expect(&out, 2, &refs(&args));
    assert!(
        text(&out.stderr)
            .contains("with --registry aws every change is recorded as the caller's IAM principal"),
        "{}",
        text(&out.stderr)
    );

    let (out, args) = rig.policy_in("one-bucket", &["upload", "default", "--regions", "eu,na"]);
    expect(&out, 2, &refs(&args));
    assert!(
        text(&out.stderr).contains("--regions needs a bucket per region"),
        "{}",
        text(&out.stderr)
    );
}

/// STS unreachable: the principal cannot be known, so nothing is done, and the failure reads
/// as one line naming the call (exit 2), not the SDK's chain.
#[test]
fn an_unknown_principal_is_named() {
    let home = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let args = [
        "policy",
        "list",
        "-t",
        "acme",
        "--registry",
        "aws",
        "--region",
        "eu-west-1",
    ];
    let out = cli(home.path())
        .env("AWS_ENDPOINT_URL", &url)
        .args(args)
        .output()
        .unwrap();
    expect(&out, 2, &args);
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: asking AWS who the caller is (sts:GetCallerIdentity)"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// A rollback with --regions to a version that was only ever uploaded to one region: the
/// rollback happens (the previous version is what the operator asked for), and the regions
/// whose buckets lack it are named, with exit 2.
#[test]
fn a_rollback_to_a_version_some_regions_lack_is_named() {
    let rig = Rig::new();
    for region in REGIONS {
        create_bucket(&rig.rt, region, &rig.bucket(region));
    }
    // v1: uploaded and activated in the home region only, the old way.
    let home_only = ["--label", "v1", "--activate", "--region", "eu-west-1"];
    rig.uploaded("na-status", &home_only);
    rig.uploaded(
        "default",
        &["--label", "v2", "--activate", "--regions", "all"],
    );

    let (out, args) = rig.policy(&["rollback", "--regions", "eu,apac,na"]);
    expect(&out, 2, &refs(&args));
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(stdout.contains("tenant acme: active"), "{stdout}");
    let v1 = host_core::digest(default_policy_artifact::NA_STATUS_POLICY);
    assert!(
        stderr.contains(&format!(
            "{} is not in ap-southeast-1, us-east-1",
            &v1[..12]
        )) && stderr.contains("PolicyLoadFailures"),
        "{stderr}"
    );
    let listed = rig.list("eu-west-1");
    let active: Vec<&Value> = listed["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["status"] == "active")
        .collect();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["digest"], v1.as_str(), "{listed}");
}
