//! `policy upload | list | history | activate | rollback | shadow | shadow-report | config`: the
//! operator's commands on the policy registry, in a local directory (no AWS) or on AWS (the
//! registry table and the policy bucket the Lambda hosts read).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Args;
use host_core::PolicyRegistry;
use host_core::conflict::to_line;
use host_core::registry::local::{self as local_registry, LocalRegistry};
use host_core::registry::{HistoryEntry, RegistryError, TenantState, short};
use policy_admin::registry::{Change, ListedVersion, Registry, UploadOptions};
use serde_json::json;

use crate::common::{self, Location, StoreFlag};

/// `--registry`: where the registry is, and what the messages about it say.
const REGISTRY: StoreFlag = StoreFlag {
    flag: "--registry",
    env: "TMF632_REGISTRY",
    default: "policy-registry",
    what: "policy registry",
    aws: "the registry table and policy bucket on AWS, in the region of --region, or in each of \
          --regions",
    dir: "the directory `policy upload` created",
};

/// Whether a command may create the local registry's directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// It reads, or changes what is there (activate, rollback, shadow): the registry must
    /// exist, so that a mistyped path is named instead of read as an empty registry.
    Existing,
    /// It adds to the registry (an upload, a configuration): a directory that is not there yet
    /// is created.
    Create,
}

/// Where the registry is and who is acting.
#[derive(Args, Clone, Debug)]
pub struct RegistryOpts {
    /// The tenant whose policies are changed.
    #[arg(long, short = 't')]
    pub tenant: String,
    /// `aws` (the registry table and bucket, in the region of --region or in each of
    /// --regions), or a directory, which only `upload` and `config --set` create [default:
    /// $TMF632_REGISTRY, else ./policy-registry].
    #[arg(long, value_name = "DIR|aws")]
    pub registry: Option<String>,
    /// The registry's DynamoDB table (with --registry aws; a global table, the same name in
    /// every region).
    #[arg(long, default_value = "tmf632-policy-registry", value_name = "TABLE")]
    pub table: String,
    /// The S3 bucket of policy components (with --registry aws); `{region}` and `{account}`
    /// in it are replaced by each region's name and the caller's account [default:
    /// $POLICY_BUCKET, else tmf632-policy-components-{account}-{region}, the deployment's].
    #[arg(long, value_name = "BUCKET")]
    pub bucket: Option<String>,
    #[command(flatten)]
    pub aws: common::AwsOpts,
    /// Every region, in one call (with --registry aws, instead of --region): `apac,eu,na`,
    /// `all` (eu, apac, na) or AWS region names. An upload puts the component into each
    /// region's bucket, then records the version once; activate and shadow first check that
    /// every region's bucket has the version. The registry table, a global table, is read and
    /// written through the first region listed: list the home region (eu) first.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "REGION,…",
        conflicts_with = "region"
    )]
    pub regions: Vec<String>,
    /// Who is acting, recorded in the history of a local registry [default: $USER]. Refused
    /// with --registry aws, where every change is recorded as the caller's IAM principal.
    #[arg(long = "as", value_name = "NAME")]
    pub actor: Option<String>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The bucket name the deployment gives each region's policy bucket (deploy/template.yaml).
#[cfg(feature = "aws")]
const DEFAULT_BUCKET: &str = "tmf632-policy-components-{account}-{region}";

/// The registry's table and bucket on AWS: in the region of --region, or in each of
/// --regions (the table and the state through the first). Every change is recorded as the
/// caller's IAM principal (STS), so `--as` is refused.
#[cfg(feature = "aws")]
fn open_aws(o: &RegistryOpts) -> anyhow::Result<Opened> {
    if o.actor.is_some() {
        bail!(
            "--as names who acts in a local registry; with --registry aws every change is \
             recorded as the caller's IAM principal (from STS), so leave out --as (to tell the \
             people behind a shared role apart, give each their own role session name)"
        );
    }
    anyhow::ensure!(!o.table.is_empty(), "the registry table name is empty");
    let regions = match o.regions.is_empty() {
        true => None,
        false => Some(common::aws_regions(&o.regions)?),
    };
    let mut aws = o.aws.clone();
    if let Some(regions) = &regions {
        aws.region = Some(regions[0].clone());
    }
    let (runtime, sdk) = common::aws(&aws)?;
    let caller = common::caller(&runtime, &sdk)?;
    let (template, from) = match (&o.bucket, std::env::var("POLICY_BUCKET")) {
        (Some(b), _) => (b.clone(), "--bucket"),
        (None, Ok(b)) if !b.is_empty() => (b, "$POLICY_BUCKET"),
        _ => (DEFAULT_BUCKET.to_owned(), "the default"),
    };
    anyhow::ensure!(!template.is_empty(), "the policy bucket name is empty");
    if regions.as_ref().is_some_and(|r| r.len() > 1) && !template.contains("{region}") {
        bail!(
            "--regions needs a bucket per region, but the bucket {template} ({from}) names one; \
             put {{region}} where the region goes (--bucket 'my-policies-{{region}}'), or leave \
             out --bucket for the deployment's {DEFAULT_BUCKET}"
        );
    }
    let home = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    let open_in = |sdk: &aws_config::SdkConfig, region: &str| {
        let bucket = template
            .replace("{region}", region)
            .replace("{account}", &caller.account);
        let store: Arc<dyn PolicyRegistry> = Arc::new(AwsFailures(host_aws::registry_from(
            sdk,
            &o.table,
            &bucket,
            runtime.handle().clone(),
        )));
        RegionStore {
            region: region.to_owned(),
            bucket,
            store,
        }
    };
    let first = open_in(&sdk, &home);
    let place = match &regions {
        None => format!("table {}, bucket {}, region {home}", o.table, first.bucket),
        Some(regions) => format!(
            "table {} through {home}, regions {}",
            o.table,
            regions.join(", ")
        ),
    };
    let stores = match &regions {
        None => Vec::new(),
        Some(regions) => regions
            .iter()
            .map(|r| match r == &home {
                true => first.clone(),
                false => open_in(&common::aws_in(&sdk, r), r),
            })
            .collect(),
    };
    Ok(Opened {
        registry: Registry::authenticated(first.store, caller.arn),
        place,
        regions: stores,
        _runtime: Some(runtime),
    })
}

#[cfg(not(feature = "aws"))]
fn open_aws(_o: &RegistryOpts) -> anyhow::Result<Opened> {
    Err(common::no_aws("--registry aws"))
}

/// One region's registry (with --regions): its bucket, and the table through it.
#[derive(Clone)]
struct RegionStore {
    /// The AWS region name.
    region: String,
    bucket: String,
    store: Arc<dyn PolicyRegistry>,
}

/// The AWS registry as the CLI reports it. The AWS store's only `Refused` is AWS refusing a
/// call (no such table or bucket, access denied: `host_aws::error`), which fails the command
/// (exit 2) rather than refusing a change to the registry (exit 1, [`refused`]); it is passed
/// on as the storage failure it is. Everything else passes unchanged.
#[cfg(feature = "aws")]
struct AwsFailures(Arc<dyn PolicyRegistry>);

#[cfg(feature = "aws")]
fn failed<T>(result: Result<T, RegistryError>) -> Result<T, RegistryError> {
    result.map_err(|e| match e {
        RegistryError::Refused(message) => {
            RegistryError::Storage(host_core::failure::Failure::new(message))
        }
        other => other,
    })
}

#[cfg(feature = "aws")]
impl PolicyRegistry for AwsFailures {
    fn put_component(&self, digest: &str, bytes: &[u8]) -> Result<(), RegistryError> {
        failed(self.0.put_component(digest, bytes))
    }
    fn component(&self, digest: &str) -> Result<Vec<u8>, RegistryError> {
        failed(self.0.component(digest))
    }
    fn put_version(
        &self,
        version: &host_core::registry::PolicyVersion,
    ) -> Result<bool, RegistryError> {
        failed(self.0.put_version(version))
    }
    fn versions(
        &self,
        tenant: &str,
    ) -> Result<Vec<host_core::registry::PolicyVersion>, RegistryError> {
        failed(self.0.versions(tenant))
    }
    fn state(&self, tenant: &str) -> Result<Option<TenantState>, RegistryError> {
        failed(self.0.state(tenant))
    }
    fn put_state(
        &self,
        state: &TenantState,
        expected: u64,
        entry: &HistoryEntry,
    ) -> Result<(), RegistryError> {
        failed(self.0.put_state(state, expected, entry))
    }
    fn append_history(&self, entry: &HistoryEntry) -> Result<(), RegistryError> {
        failed(self.0.append_history(entry))
    }
    fn history(&self, tenant: &str) -> Result<Vec<HistoryEntry>, RegistryError> {
        failed(self.0.history(tenant))
    }
    fn tenants(&self) -> Result<Vec<String>, RegistryError> {
        failed(self.0.tenants())
    }
    fn record_shadow(
        &self,
        comparison: &host_core::registry::ShadowComparison,
    ) -> Result<(), RegistryError> {
        failed(self.0.record_shadow(comparison))
    }
    fn shadow_summary(
        &self,
        tenant: &str,
        candidate: &str,
    ) -> Result<host_core::registry::ShadowSummary, RegistryError> {
        failed(self.0.shadow_summary(tenant, candidate))
    }
    fn put_precompiled(
        &self,
        engine: &str,
        digest: &str,
        artifact: &[u8],
    ) -> Result<bool, RegistryError> {
        failed(self.0.put_precompiled(engine, digest, artifact))
    }
    fn precompiled(&self, engine: &str, digest: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        failed(self.0.precompiled(engine, digest))
    }
}

/// A registry and what keeps it working (the AWS SDK's runtime).
pub struct Opened {
    pub registry: Registry,
    /// Where it is, for messages: a directory, or the AWS table and bucket.
    place: String,
    /// With --regions, each region's registry, in the order given (the first is `registry`'s);
    /// empty otherwise.
    regions: Vec<RegionStore>,
    _runtime: Option<common::AwsRuntime>,
}

/// How many known tenants an unknown tenant's message lists.
const TENANTS_SHOWN: usize = 20;

impl Opened {
    /// Fails unless the registry knows the tenant (it has a state or a version), so that a
    /// mistyped tenant is named with the tenants there are, not shown as a tenant the default
    /// policy serves.
    fn known_tenant(&self, tenant: &str) -> anyhow::Result<()> {
        host_core::tenant::check_tenant(tenant)?;
        let store = self.registry.store();
        if store.state(tenant)?.is_some() || !store.versions(tenant)?.is_empty() {
            return Ok(());
        }
        // Listing every tenant costs a scan on AWS: only for a tenant not found directly.
        let tenants = store.tenants()?;
        if tenants.iter().any(|t| t == tenant) {
            return Ok(());
        }
        if tenants.is_empty() {
            bail!(
                "no tenant {tenant} in this registry ({}), which has no tenants at all; is it the \
                 right one? (`policy upload COMPONENT --tenant {tenant}` adds a tenant)",
                self.place
            );
        }
        let mut known = tenants[..tenants.len().min(TENANTS_SHOWN)].join(", ");
        if tenants.len() > TENANTS_SHOWN {
            known.push_str(&format!(", and {} more", tenants.len() - TENANTS_SHOWN));
        }
        bail!(
            "no tenant {tenant} in this registry ({}); known: {known}",
            self.place
        )
    }
}

impl RegistryOpts {
    pub fn open(&self, access: Access) -> anyhow::Result<Opened> {
        let (path, from) = match REGISTRY.locate(self.registry.as_deref())? {
            Location::Aws => return open_aws(self),
            Location::Dir { path, from } => {
                self.aws.unused(&REGISTRY, &path, &from)?;
                if !self.regions.is_empty() {
                    bail!(
                        "--regions applies only to --registry aws, but the policy registry is \
                         the directory {} ({from}); give --registry aws, or leave out --regions",
                        path.display()
                    );
                }
                (path, from)
            }
        };
        let local = match access {
            Access::Existing => {
                REGISTRY.existing(&path, &from)?;
                LocalRegistry::new(&path)
            }
            Access::Create => local_registry::open(&path)
                .with_context(|| format!("opening the registry in {}", path.display()))?,
        };
        let store: Arc<dyn PolicyRegistry> = Arc::new(local);
        let actor = self.actor.clone().unwrap_or_else(|| {
            std::env::var("USER")
                .or_else(|_| std::env::var("USERNAME"))
                .unwrap_or_else(|_| "operator".into())
        });
        Ok(Opened {
            registry: Registry::new(store, actor),
            place: path.display().to_string(),
            regions: Vec::new(),
            _runtime: None,
        })
    }

    /// Opens the registry for a command that only reads, for a tenant it must know.
    fn open_to_read(&self) -> anyhow::Result<Opened> {
        let opened = self.open(Access::Existing)?;
        opened.known_tenant(&self.tenant)?;
        Ok(opened)
    }
}

/// Prints a change, or the refusal; exit status 0 for a change or no-op, 1 for a refusal.
pub(crate) fn report(
    o: &RegistryOpts,
    result: Result<Change, RegistryError>,
) -> anyhow::Result<ExitCode> {
    match result {
        Ok(change) => {
            if o.json {
                common::emit_json(&change)?;
            } else {
                common::emit(&format!("{}\n", describe_change(&change)));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => refused(o, e),
    }
}

fn refused(o: &RegistryOpts, e: RegistryError) -> anyhow::Result<ExitCode> {
    if e.is_transient() || matches!(e, RegistryError::Corrupt(_)) {
        return Err(e.into());
    }
    if o.json {
        let mut doc = json!({"refused": true, "tenant": o.tenant, "reason": e.to_string()});
        if let RegistryError::LawFailed { counterexample, .. } = &e {
            doc["counterexample"] = json!(counterexample);
        }
        common::emit_json(&doc)?;
    } else {
        eprintln!("refused: {e}");
        if let RegistryError::LawFailed { counterexample, .. } = &e {
            eprintln!("counterexample (captured conflicts; replay with dry-run --conflicts):");
            for line in counterexample {
                eprintln!("{line}");
            }
        }
    }
    Ok(ExitCode::from(1))
}

fn name_of(digest: &Option<String>) -> String {
    digest
        .as_deref()
        .map(|d| short(d).to_owned())
        .unwrap_or_else(|| "none".into())
}

fn describe_change(c: &Change) -> String {
    let what = match (&c.label, &c.digest) {
        (Some(l), Some(d)) => format!("{l} ({})", short(d)),
        (None, Some(d)) => short(d).to_owned(),
        _ => String::new(),
    };
    if !c.changed {
        return match c.action.as_str() {
            "upload" => format!(
                "tenant {}: {what} was already uploaded; nothing changed",
                c.tenant
            ),
            _ => format!(
                "tenant {}: nothing to change (active {}, shadow {}, revision {})",
                c.tenant,
                name_of(&c.active),
                name_of(&c.shadow),
                c.revision
            ),
        };
    }
    match c.action.as_str() {
        "upload" => format!(
            "tenant {}: uploaded {what}, staged (activate it with `policy activate`)",
            c.tenant
        ),
        "activate" | "rollback" => format!(
            "tenant {}: active {} -> {} (revision {}); hosts switch within their refresh interval",
            c.tenant,
            name_of(&c.previously_active),
            name_of(&c.active),
            c.revision
        ),
        "shadow" => format!(
            "tenant {}: {what} runs in shadow beside {} (revision {})",
            c.tenant,
            name_of(&c.active),
            c.revision
        ),
        "shadow-stop" => format!(
            "tenant {}: shadow stopped (revision {})",
            c.tenant, c.revision
        ),
        "config" => format!(
            "tenant {}: configuration set (revision {})",
            c.tenant, c.revision
        ),
        other => format!("tenant {}: {other} (revision {})", c.tenant, c.revision),
    }
}

/// Validates a policy, checks its laws, and uploads it to the registry for a tenant. The
/// component is refused, with the reason, if a host would refuse it or if a law fails (the
/// counterexample is printed as captured conflicts). Uploading the same bytes again changes
/// nothing. An uploaded version is staged until activated.
///
/// The component is compiled through the precompiled cache (once per machine and engine),
/// and a local registry keeps the hosts' compiled form beside it
/// (precompiled/{engine}/{sha256}.cwasm), so a host's first load does not compile.
///
/// Examples:
///   host-cli policy upload my-policy.wasm --tenant acme --label v2
///   host-cli policy upload my-policy.wasm --tenant acme --label v2 --activate
///   host-cli policy upload my-policy.wasm --tenant acme --registry aws --regions eu,apac,na
///   host-cli policy upload my-policy.wasm --tenant acme --registry aws --region eu-west-1 --bucket my-policies
///
/// With --regions the component is checked once, put into every region's bucket, and the
/// version recorded once all have it; the same command again fills in a region that failed.
///
/// Exit status: 0 uploaded (or already there), 1 refused, 2 other errors (with --regions: a
/// region that could not be written, named with the regions that have the component).
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct UploadOpts {
    /// A component file, `default` or `na-status` (the embedded policies).
    pub component: String,
    /// A label for the version (unique per tenant).
    #[arg(long)]
    pub label: Option<String>,
    /// Generated cases per law in the check before upload.
    #[arg(long, default_value_t = 64)]
    pub cases: u32,
    /// Seed of the law check [default: derived from the digest, so a retry checks the same cases].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Activate the version once uploaded.
    #[arg(long)]
    pub activate: bool,
    /// Sign the version with this key (`policy keygen`): required by a tenant that trusts
    /// keys (`policy trust`); the upload is then recorded as the key's, not as --as.
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryOpts,
    #[command(flatten)]
    pub cache: common::CacheOpts,
}

pub fn upload(o: UploadOpts) -> anyhow::Result<ExitCode> {
    let bytes = common::policy_bytes(&o.component)?;
    let signer = o
        .sign
        .as_deref()
        .map(host_core::signing::read_signing_key)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let mut opened = o.registry.open(Access::Create)?;
    if let Some(cache) = o.cache.cache() {
        opened.registry = opened.registry.with_cache(cache);
    }
    let digest = host_core::digest(&bytes);
    let seed = o
        .seed
        .unwrap_or_else(|| policy_admin::registry::seed_from_digest(&digest));
    let options = UploadOptions {
        label: o.label.clone(),
        law_cases: o.cases,
        seed,
        signer,
    };
    if !opened.regions.is_empty() {
        return upload_everywhere(&o, &opened, &bytes, &options);
    }
    let uploaded = opened.registry.upload(&o.registry.tenant, &bytes, &options);
    let (change, version) = match uploaded {
        Ok(x) => x,
        Err(e) => return refused(&o.registry, e),
    };
    if !o.activate {
        return report(&o.registry, Ok(change));
    }
    if !o.registry.json {
        common::emit(&format!("{}\n", describe_change(&change)));
    }
    report(
        &o.registry,
        opened
            .registry
            .activate(&o.registry.tenant, &version.digest),
    )
}

/// What one region has of a version: its bucket, and whether the component is there.
#[derive(serde::Serialize)]
struct RegionReport {
    region: String,
    bucket: String,
    /// `stored` (by this call), `present` (already there), `missing` or `failed`.
    component: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl RegionReport {
    fn new(r: &RegionStore, outcome: Result<&'static str, RegistryError>) -> Self {
        let (component, error) = match outcome {
            Ok(status) => (status, None),
            Err(RegistryError::MissingComponent(_)) => ("missing", None),
            Err(e) => ("failed", Some(e.to_string())),
        };
        RegionReport {
            region: r.region.clone(),
            bucket: r.bucket.clone(),
            component,
            error,
        }
    }

    fn has_it(&self) -> bool {
        matches!(self.component, "stored" | "present")
    }

    fn line(&self) -> String {
        let what = match self.component {
            "stored" => "stored now",
            "present" => "present",
            "missing" => "MISSING",
            _ => "FAILED",
        };
        let mut line = format!("  {:<15} {what:<11} bucket {}", self.region, self.bucket);
        if let Some(e) = &self.error {
            line.push_str(&format!(": {e}"));
        }
        line
    }
}

/// The regions of `reports` that have the component, and those that do not, for messages.
fn split(reports: &[RegionReport]) -> (String, String) {
    let names = |has: bool| {
        let list: Vec<&str> = reports
            .iter()
            .filter(|r| r.has_it() == has)
            .map(|r| r.region.as_str())
            .collect();
        match list.is_empty() {
            true => "none".to_owned(),
            false => list.join(", "),
        }
    };
    (names(true), names(false))
}

/// Checks that every region's bucket holds the component `digest` (verified against it).
fn in_every_region(opened: &Opened, digest: &str) -> Vec<RegionReport> {
    opened
        .regions
        .iter()
        .map(|r| {
            let found = host_core::registry::fetch_component(&*r.store, digest).map(|_| "present");
            RegionReport::new(r, found)
        })
        .collect()
}

/// Prints the per-region lines (text) ahead of a command's own output.
fn emit_regions(o: &RegistryOpts, reports: &[RegionReport]) {
    if !o.json {
        let lines: String = reports.iter().map(|r| r.line() + "\n").collect();
        common::emit(&lines);
    }
}

/// A change with the regions it was checked in, as JSON.
fn change_json(change: &Change, reports: &[RegionReport]) -> anyhow::Result<serde_json::Value> {
    let mut doc = serde_json::to_value(change)?;
    doc["regions"] = serde_json::to_value(reports)?;
    Ok(doc)
}

/// `policy upload --regions`: checks once (through the first region), puts the component into
/// every region's bucket, and only then records the version, once (the registry table is a
/// global table). A region that fails is named with the regions that have the component; the
/// version stays unrecorded, and the same command again stores only what is missing.
fn upload_everywhere(
    o: &UploadOpts,
    opened: &Opened,
    bytes: &[u8],
    options: &UploadOptions,
) -> anyhow::Result<ExitCode> {
    let tenant = &o.registry.tenant;
    let prepared = match opened.registry.prepare_upload(tenant, bytes, options) {
        Ok(p) => p,
        Err(e) => return refused(&o.registry, e),
    };
    let digest = &prepared.version.digest;
    let reports: Vec<RegionReport> = opened
        .regions
        .iter()
        .map(|r| {
            let stored = policy_admin::registry::store_component(&*r.store, digest, bytes)
                .map(|now| if now { "stored" } else { "present" });
            RegionReport::new(r, stored)
        })
        .collect();
    if reports.iter().any(|r| !r.has_it()) {
        let (have, lack) = split(&reports);
        if o.registry.json {
            common::emit_json(&json!({
                "tenant": tenant,
                "action": "upload",
                "digest": digest,
                "recorded": prepared.existing,
                "regions": reports,
            }))?;
        } else {
            common::emit(&format!(
                "tenant {tenant}: component {} by region:\n",
                short(digest)
            ));
            emit_regions(&o.registry, &reports);
        }
        let recorded = match prepared.existing {
            true => "the version was recorded by an earlier upload",
            false => "the version is not recorded (it is, once every region has the component)",
        };
        bail!(
            "version {} of tenant {tenant} is in {have} but not in {lack}; {recorded}; fix \
             what failed and run the same command again: what is stored stays, and only what \
             is missing is uploaded",
            short(digest)
        );
    }
    let (change, version) = match opened.registry.record_upload(&prepared, bytes) {
        Ok(x) => x,
        Err(e) => return refused(&o.registry, e),
    };
    let change = match o.activate {
        false => change,
        true => {
            if !o.registry.json {
                emit_regions(&o.registry, &reports);
                common::emit(&format!("{}\n", describe_change(&change)));
            }
            match opened.registry.activate(tenant, &version.digest) {
                Ok(activated) => {
                    if o.registry.json {
                        common::emit_json(&change_json(&activated, &reports)?)?;
                    } else {
                        common::emit(&format!("{}\n", describe_change(&activated)));
                    }
                    return Ok(ExitCode::SUCCESS);
                }
                Err(e) => return refused(&o.registry, e),
            }
        }
    };
    if o.registry.json {
        common::emit_json(&change_json(&change, &reports)?)?;
    } else {
        emit_regions(&o.registry, &reports);
        common::emit(&format!("{}\n", describe_change(&change)));
    }
    Ok(ExitCode::SUCCESS)
}

/// `activate` and `shadow` with --regions: the change is made once (through the first
/// region) only when every region's bucket has the version, so that no region's hosts are told
/// to load what they cannot (they would keep the old version and alarm).
fn change_everywhere(
    o: &RegistryOpts,
    opened: &Opened,
    selector: &str,
    change: impl FnOnce() -> Result<Change, RegistryError>,
) -> anyhow::Result<ExitCode> {
    let version = match opened.registry.find(&o.tenant, selector) {
        Ok(v) => v,
        Err(e) => return refused(o, e),
    };
    let reports = in_every_region(opened, &version.digest);
    if reports.iter().any(|r| !r.has_it()) {
        let (have, lack) = split(&reports);
        emit_regions(o, &reports);
        return refused(
            o,
            RegistryError::Refused(format!(
                "version {} of tenant {} is in {have} but not in {lack}, whose hosts could not \
                 load it; nothing changed. Upload it there first: `policy upload COMPONENT \
                 --tenant {} --registry aws --regions {}`",
                short(&version.digest),
                o.tenant,
                o.tenant,
                o.regions.join(",")
            )),
        );
    }
    served_report(o, opened, change(), reports)
}

/// Prints a change made with --regions, with the regions; for a change that leaves a version
/// serving that a region's bucket lacks (a rollback to a version uploaded to one region only),
/// names the regions and fails (exit 2): their hosts keep the old version and alarm.
fn served_report(
    o: &RegistryOpts,
    opened: &Opened,
    result: Result<Change, RegistryError>,
    checked: Vec<RegionReport>,
) -> anyhow::Result<ExitCode> {
    let change = match result {
        Ok(c) => c,
        Err(e) => return refused(o, e),
    };
    let mut lacking = Vec::new();
    for digest in change.active.iter().chain(change.shadow.iter()) {
        let reports = match change.digest.as_ref() == Some(digest) && !checked.is_empty() {
            true => continue,
            false => in_every_region(opened, digest),
        };
        if reports.iter().any(|r| !r.has_it()) {
            let (_, lack) = split(&reports);
            lacking.push(format!("{} is not in {lack}", short(digest)));
        }
    }
    if o.json {
        common::emit_json(&change_json(&change, &checked)?)?;
    } else {
        emit_regions(o, &checked);
        common::emit(&format!("{}\n", describe_change(&change)));
    }
    if !lacking.is_empty() {
        bail!(
            "tenant {} now serves a version that some regions lack ({}): their hosts keep the \
             version they had and count PolicyLoadFailures (alarmed); upload it there with \
             `policy upload COMPONENT --tenant {} --registry aws --regions {}`",
            o.tenant,
            lacking.join("; "),
            o.tenant,
            o.regions.join(",")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Lists a tenant's versions with their status (active, shadow, staged, retired), and the
/// tenant's revision and configuration.
///
/// Examples:
///   host-cli policy list --tenant acme
///   host-cli policy list --tenant acme --json
///
/// Exit status: 0 listed, 2 when the registry or the tenant is not there (the tenants there
/// are named), or on other errors.
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct ListOpts {
    #[command(flatten)]
    pub registry: RegistryOpts,
}

pub fn list(o: ListOpts) -> anyhow::Result<ExitCode> {
    let opened = o.registry.open_to_read()?;
    let (versions, state) = match opened.registry.list(&o.registry.tenant) {
        Ok(x) => x,
        Err(e) => return refused(&o.registry, e),
    };
    if o.registry.json {
        common::emit_json(&json!({
            "tenant": o.registry.tenant,
            "revision": state.revision,
            "config": serde_json::from_str::<serde_json::Value>(&state.config).unwrap_or_default(),
            "versions": versions,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    common::emit(&render_list(&versions, &state));
    Ok(ExitCode::SUCCESS)
}

fn render_list(versions: &[ListedVersion], state: &TenantState) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "tenant {} (revision {}, config {})",
        state.tenant, state.revision, state.config
    );
    if versions.is_empty() {
        let _ = writeln!(
            out,
            "no versions uploaded; the default policy serves this tenant"
        );
        return out;
    }
    let _ = writeln!(
        out,
        "{:<8} {:<12} {:<14} {:<28} {:>9}  uploaded by",
        "status", "digest", "label", "policy", "bytes"
    );
    for v in versions {
        let d = &v.version.description;
        let _ = writeln!(
            out,
            "{:<8} {:<12} {:<14} {:<28} {:>9}  {}",
            v.status.name(),
            short(&v.version.digest),
            v.version.label.as_deref().unwrap_or("-"),
            format!("{} {}", d.name, d.version),
            v.version.size,
            v.version.uploaded_by
        );
    }
    out
}

/// The tenant's history of changes, oldest first: uploads, activations, rollbacks, shadow runs,
/// configuration changes; who and when.
///
/// Examples:
///   host-cli policy history --tenant acme
///
/// Exit status: 0 shown, 2 when the registry or the tenant is not there, or on other errors.
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct HistoryOpts {
    #[command(flatten)]
    pub registry: RegistryOpts,
}

pub fn history(o: HistoryOpts) -> anyhow::Result<ExitCode> {
    let opened = o.registry.open_to_read()?;
    let entries = match opened.registry.history(&o.registry.tenant) {
        Ok(x) => x,
        Err(e) => return refused(&o.registry, e),
    };
    if o.registry.json {
        common::emit_json(&entries)?;
    } else {
        common::emit(&render_history(&entries));
    }
    Ok(ExitCode::SUCCESS)
}

fn render_history(entries: &[HistoryEntry]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for e in entries {
        let at = humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(e.at_ms),
        );
        let _ = write!(
            out,
            "{at}  r{:<4} {:<12} {:<12} by {}",
            e.revision,
            e.action,
            name_of(&e.digest),
            e.by
        );
        if let Some(r) = &e.replaced {
            let _ = write!(out, "  (replaced {})", short(r));
        }
        if let Some(d) = &e.detail {
            let _ = write!(out, "  {d}");
        }
        out.push('\n');
    }
    if entries.is_empty() {
        out.push_str("no history\n");
    }
    out
}

/// Makes a version (by label, digest or digest prefix) the tenant's active policy. Hosts pick
/// it up within their refresh interval (10 s at most), with no redeploy; calls in flight finish
/// on the version they started with.
///
/// Examples:
///   host-cli policy activate v2 --tenant acme
///   host-cli policy activate 3f9c2a --tenant acme --json
///   host-cli policy activate v2 --tenant acme --registry aws --regions eu,apac,na
///
/// With --regions, refused (exit 1) unless every region's bucket holds the version.
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct ActivateOpts {
    /// The version: its label, digest, or a digest prefix of at least 6 hex digits.
    #[arg(value_name = "VERSION")]
    pub target: String,
    #[command(flatten)]
    pub registry: RegistryOpts,
}

pub fn activate(o: ActivateOpts) -> anyhow::Result<ExitCode> {
    let opened = o.registry.open(Access::Existing)?;
    if !opened.regions.is_empty() {
        return change_everywhere(&o.registry, &opened, &o.target, || {
            opened.registry.activate(&o.registry.tenant, &o.target)
        });
    }
    report(
        &o.registry,
        opened.registry.activate(&o.registry.tenant, &o.target),
    )
}

/// Retires the active version and restores the previously active one. With --candidate, takes
/// that version out of service wherever it is (active or in shadow) and retires it.
///
/// Examples:
///   host-cli policy rollback --tenant acme
///   host-cli policy rollback --tenant acme --candidate v3 --reason "rejects valid merges"
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct RollbackOpts {
    /// The version to take out of service [default: the active one].
    #[arg(long, value_name = "VERSION")]
    pub candidate: Option<String>,
    /// Why, recorded in the history.
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub registry: RegistryOpts,
}

pub fn rollback(o: RollbackOpts) -> anyhow::Result<ExitCode> {
    let opened = o.registry.open(Access::Existing)?;
    let result = opened.registry.rollback(
        &o.registry.tenant,
        o.candidate.as_deref(),
        o.reason.as_deref(),
    );
    if !opened.regions.is_empty() {
        // The version restored was active before, so normally everywhere; checked after.
        return served_report(&o.registry, &opened, result, Vec::new());
    }
    report(&o.registry, result)
}

/// Runs a candidate in shadow beside the active policy: every conflict the policy resolves is
/// also resolved by the candidate, and disagreements are recorded (both answers, the conflict,
/// both digests) without touching the data. `policy shadow-report` summarises them.
///
/// Examples:
///   host-cli policy shadow v3 --tenant acme
///   host-cli policy shadow --stop --tenant acme
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct ShadowOpts {
    /// The candidate: label, digest or digest prefix.
    #[arg(required_unless_present = "stop", value_name = "VERSION")]
    pub candidate: Option<String>,
    /// Stop the shadow run.
    #[arg(long, conflicts_with = "candidate")]
    pub stop: bool,
    #[command(flatten)]
    pub registry: RegistryOpts,
}

pub fn shadow(o: ShadowOpts) -> anyhow::Result<ExitCode> {
    let opened = o.registry.open(Access::Existing)?;
    if let (Some(v), false) = (&o.candidate, opened.regions.is_empty()) {
        return change_everywhere(&o.registry, &opened, v, || {
            opened.registry.shadow(&o.registry.tenant, v)
        });
    }
    let result = match &o.candidate {
        Some(v) => opened.registry.shadow(&o.registry.tenant, v),
        None => opened.registry.stop_shadow(&o.registry.tenant),
    };
    report(&o.registry, result)
}

/// Summarises a candidate's shadow run: conflicts compared, disagreements, the rate, and each
/// disagreement (party, both decisions). --conflicts writes the disagreeing conflicts as
/// captured-conflict lines, which `dry-run --conflicts` replays.
///
/// Examples:
///   host-cli policy shadow-report --tenant acme
///   host-cli policy shadow-report --tenant acme --candidate v3 --conflicts disagreements.jsonl
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct ShadowReportOpts {
    /// The candidate [default: the one in shadow now].
    #[arg(long, value_name = "VERSION")]
    pub candidate: Option<String>,
    /// Write the disagreeing conflicts to this file.
    #[arg(long, value_name = "FILE")]
    pub conflicts: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryOpts,
}

pub fn shadow_report(o: ShadowReportOpts) -> anyhow::Result<ExitCode> {
    let opened = o.registry.open_to_read()?;
    let (digest, summary) = match opened
        .registry
        .shadow_report(&o.registry.tenant, o.candidate.as_deref())
    {
        Ok(x) => x,
        Err(e) => return refused(&o.registry, e),
    };
    if let Some(path) = &o.conflicts {
        let lines: String = summary
            .disagreements
            .iter()
            .filter_map(|d| d.conflict.as_ref())
            .map(|c| to_line(c) + "\n")
            .collect();
        std::fs::write(path, lines).with_context(|| format!("writing {}", path.display()))?;
    }
    if o.registry.json {
        common::emit_json(&json!({
            "tenant": o.registry.tenant,
            "candidate": digest,
            "compared": summary.compared,
            "disagreed": summary.disagreed,
            "disagreementRate": summary.rate(),
            "disagreements": summary.disagreements,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = format!(
        "candidate {} for tenant {}: {} conflicts compared, {} disagreements ({:.1}%)\n",
        short(&digest),
        o.registry.tenant,
        summary.compared,
        summary.disagreed,
        summary.rate() * 100.0
    );
    for d in &summary.disagreements {
        let decision = |x: &Option<host_core::registry::ShadowOutcome>| {
            x.as_ref().map_or("?".to_owned(), |o| o.decision.clone())
        };
        out.push_str(&format!(
            "  party {} in {}: active {} -> {}, candidate {} -> {}\n",
            d.party_id,
            d.region,
            short(&d.active),
            decision(&d.active_outcome),
            short(&d.candidate),
            decision(&d.candidate_outcome)
        ));
    }
    common::emit(&out);
    Ok(ExitCode::SUCCESS)
}

/// Shows or sets the tenant's configuration document: the JSON object every call of the
/// tenant's policy receives (e.g. which region's status wins). Hosts pick it up within their
/// refresh interval.
///
/// Examples:
///   host-cli policy config --tenant acme
///   host-cli policy config --tenant acme --set '{"statusAuthority":"na"}'
///   host-cli policy config --tenant acme --file acme-config.json
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct ConfigOpts {
    /// The new configuration (a JSON object).
    #[arg(long, conflicts_with = "file")]
    pub set: Option<String>,
    /// Read the new configuration from a file.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryOpts,
}

pub fn config(o: ConfigOpts) -> anyhow::Result<ExitCode> {
    let new = match (&o.set, &o.file) {
        (Some(text), _) => Some(text.clone()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        (None, None) => None,
    };
    match new {
        // Configuring a tenant before its first upload is allowed: it creates the tenant.
        Some(text) => report(
            &o.registry,
            o.registry
                .open(Access::Create)?
                .registry
                .set_config(&o.registry.tenant, &text),
        ),
        None => {
            let opened = o.registry.open_to_read()?;
            let state = match opened.registry.store().state(&o.registry.tenant) {
                Ok(s) => s.unwrap_or_else(|| TenantState::new(&o.registry.tenant)),
                Err(e) => return refused(&o.registry, e),
            };
            if o.registry.json {
                common::emit_json(&json!({
                    "tenant": o.registry.tenant,
                    "revision": state.revision,
                    "config": serde_json::from_str::<serde_json::Value>(&state.config).unwrap_or_default(),
                }))?;
            } else {
                common::emit(&format!("{}\n", state.config));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
