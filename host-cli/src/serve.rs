//! `serve`: the regions, the TMF632 API and the live page on this machine; `partition`,
//! `heal` and `load` against a running one (and `hub redrive`, in `hub.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use host_serve::WorldConfig;
use host_serve::hub::Schedule;

use crate::common::{self, CacheOpts};

/// Runs the pipeline as a local active-active TMF632 service: one region per name, each
/// with the same ingest, reconcile and redrive as the Lambda functions over a durable store,
/// replicating to the others like DynamoDB Global Tables; each region's TMF632 API under
/// /{region}/tmf-api/party/v5/ (and v4), and a live page at /.
#[derive(Args, Debug)]
pub struct Opts {
    /// The regions, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "apac,eu,na")]
    regions: Vec<String>,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8632")]
    addr: SocketAddr,
    /// Where the parties, idempotency records and dead letters are kept (and, unless named
    /// otherwise, the policy registry and the conflict log).
    #[arg(long, default_value = ".serve", value_name = "DIR")]
    data_dir: PathBuf,
    /// How long a write takes to reach the other regions (ms).
    #[arg(long, default_value_t = 200, value_name = "MS")]
    lag_ms: u64,
    /// The tenant every request acts for (without --api-keys), and the one the page shows.
    #[arg(long, default_value = "acme")]
    tenant: String,
    /// A file of `KEY TENANT` lines: each request then acts for the tenant of the key it
    /// carries (`Authorization: Bearer KEY` or `x-api-key: KEY`); without a known key, 401.
    #[arg(long, value_name = "FILE")]
    api_keys: Option<PathBuf>,
    /// The policy registry directory, followed like the Lambda functions follow theirs
    /// (`host-cli policy activate … --registry DIR` is served within the refresh interval)
    /// [default: DATA_DIR/registry].
    #[arg(long, value_name = "DIR")]
    registry: Option<PathBuf>,
    /// The conflict log directory [default: DATA_DIR/conflicts].
    #[arg(long, value_name = "DIR")]
    log: Option<PathBuf>,
    /// How stale a tenant's policy may be (seconds).
    #[arg(long, default_value_t = 2, value_name = "S")]
    refresh_seconds: u64,
    /// Drive a client workload against the regions over HTTP (creates, changes, deletes,
    /// duplicates), so the page moves from the first second.
    #[arg(long)]
    demo: bool,
    /// Events per second of the demo workload.
    #[arg(long, default_value_t = 5.0, value_name = "N")]
    demo_rate: f64,
    /// Attempts per hub delivery before it is dead-lettered (the default schedule, 10 from
    /// 1 s capped at 60 s, keeps trying for 4 min 3 s).
    #[arg(long, default_value_t = Schedule::default().attempts, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    hub_attempts: u32,
    /// The pause before a hub delivery's second attempt (ms), doubled after each.
    #[arg(long, default_value_t = Schedule::default().backoff.as_millis() as u64, value_name = "MS")]
    hub_backoff_ms: u64,
    /// The longest pause between two attempts of a hub delivery (ms).
    #[arg(long, default_value_t = Schedule::default().max_backoff.as_millis() as u64, value_name = "MS")]
    hub_backoff_max_ms: u64,
    #[command(flatten)]
    cache: CacheOpts,
}

pub fn run(o: Opts) -> anyhow::Result<ExitCode> {
    let mut config = WorldConfig::new(&o.data_dir);
    config.regions = o.regions.clone();
    config.lag = Duration::from_millis(o.lag_ms);
    config.refresh = Duration::from_secs(o.refresh_seconds.max(1));
    config.tenants = vec![o.tenant.clone()];
    if let Some(r) = &o.registry {
        config.registry_dir = r.clone();
    }
    if let Some(l) = &o.log {
        config.log_dir = l.clone();
    }
    config.cache_dir = o.cache.cache().map(|c| c.dir().to_path_buf());
    config.hub = Schedule {
        attempts: o.hub_attempts,
        backoff: Duration::from_millis(o.hub_backoff_ms),
        max_backoff: Duration::from_millis(o.hub_backoff_max_ms),
    };
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    rt.block_on(async move {
        let auth = match &o.api_keys {
            Some(file) => host_serve::auth::Auth::from_file(file)?,
            None => host_serve::auth::Auth::Single(o.tenant.clone()),
        };
        let key = auth.key_of(&o.tenant);
        let who = auth.describe();
        let running = host_serve::start(config.clone(), o.addr, auth, &o.tenant).await?;
        let url = running.url();
        println!(
            "serving {} on {url} (data in {}; policy registry {}; conflict log {})",
            config.regions.join(", "),
            config.data_dir.display(),
            config.registry_dir.display(),
            config.log_dir.display(),
        );
        println!("  live page: {url}/ (tenant {}); {who}", o.tenant);
        let (a, b, c) = match config.regions.as_slice() {
            [a, b, c, ..] => (a.as_str(), b.as_str(), c.as_str()),
            [a, b] => (a.as_str(), b.as_str(), a.as_str()),
            [a] => (a.as_str(), a.as_str(), a.as_str()),
            [] => unreachable!("checked by the world"),
        };
        let (create, change, read) = if config.regions.len() >= 3 { (b, c, a) } else { (a, b, c) };
        println!("  try (create in {create}, change in {change}, read back from {read}):");
        println!(
            "    curl -s -X POST {url}/{create}/tmf-api/party/v5/individual -H 'content-type: application/json' -d '{{\"id\":\"42\",\"givenName\":\"Jane\",\"familyName\":\"Doe\"}}'"
        );
        println!(
            "    curl -s -X PATCH {url}/{change}/tmf-api/party/v5/individual/42 -H 'content-type: application/merge-patch+json' -d '{{\"status\":\"validated\"}}'"
        );
        println!("    curl -s {url}/{read}/tmf-api/party/v5/individual/42");
        println!("  Ctrl-C stops.");
        let stop = Arc::new(AtomicBool::new(false));
        let demo = o.demo.then(|| {
            println!("  demo workload: {} events/s over 20 parties", o.demo_rate);
            tokio::spawn(host_serve::client::demo(
                url.clone(),
                config.regions.clone(),
                key.clone(),
                o.demo_rate,
                20,
                stop.clone(),
            ))
        });
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
        eprintln!("stopping: finishing the requests in flight, closing the store");
        stop.store(true, Ordering::SeqCst);
        if let Some(d) = demo {
            let _ = d.await;
        }
        running.stop().await?;
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}

/// Where a running `serve` listens.
#[derive(Args, Debug)]
pub struct Target {
    /// The server's address.
    #[arg(long, default_value = "127.0.0.1:8632")]
    addr: SocketAddr,
}

impl Target {
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Cuts the link between two regions of a running `serve` (both ways unless --one-way):
/// writes between them wait until `heal`.
#[derive(Args, Debug)]
pub struct PartitionOpts {
    from: String,
    to: String,
    /// Cut only FROM → TO.
    #[arg(long)]
    one_way: bool,
    #[command(flatten)]
    target: Target,
}

/// Heals every partition of a running `serve`: the writes held back drain.
#[derive(Args, Debug)]
pub struct HealOpts {
    #[command(flatten)]
    target: Target,
}

pub(crate) fn block_on<T>(
    f: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::runtime::Runtime::new()
        .context("starting the runtime")?
        .block_on(f)
}

pub fn partition(o: PartitionOpts) -> anyhow::Result<ExitCode> {
    let cuts = block_on(host_serve::client::partition(
        &o.target.url(),
        &o.from,
        &o.to,
        o.one_way,
    ))?;
    println!("cut: {}", cuts["cuts"]);
    Ok(ExitCode::SUCCESS)
}

pub fn heal(o: HealOpts) -> anyhow::Result<ExitCode> {
    block_on(host_serve::client::heal(&o.target.url()))?;
    println!("healed: every link is open");
    Ok(ExitCode::SUCCESS)
}

/// Sends a bounded load of TMF632 events to a running `serve` on this machine (the
/// simulation's event mix, with duplicates delivered to another region) and reports
/// acknowledged events per second and latency percentiles.
#[derive(Args, Debug)]
pub struct LoadOpts {
    /// How many events to send.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Events per second to aim at (0: as fast as the connections go).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Parties the events are spread over.
    #[arg(long, default_value_t = 2000)]
    parties: usize,
    /// The share of events delivered a second time, to another region.
    #[arg(long, default_value_t = 0.1)]
    duplicates: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The API key to send (when the server was started with --api-keys) [env: SERVE_API_KEY].
    #[arg(long, env = "SERVE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    #[command(flatten)]
    target: Target,
}

pub fn load(o: LoadOpts) -> anyhow::Result<ExitCode> {
    if !o.target.addr.ip().is_loopback() {
        anyhow::bail!(
            "load only runs against this machine (127.0.0.1 or ::1), not {}",
            o.target.addr
        );
    }
    if !(0.0..=1.0).contains(&o.duplicates) {
        anyhow::bail!(
            "--duplicates is a share between 0 and 1, not {}",
            o.duplicates
        );
    }
    let url = o.target.url();
    let report = block_on(async {
        let regions = host_serve::client::regions(&url).await?;
        if regions.is_empty() {
            anyhow::bail!("the server at {url} runs no region");
        }
        Ok(host_serve::client::load(
            &url,
            &regions,
            o.api_key.as_deref(),
            &host_serve::client::Load {
                events: o.events,
                rate: o.rate,
                concurrency: o.concurrency,
                parties: o.parties,
                duplicate: o.duplicates,
                seed: o.seed,
            },
        )
        .await)
    })?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{} events sent ({} duplicates), {} acknowledged, {} kept in the dead-letter queue, {} refused (a status going back where the event landed), {} failed, in {:.2} s: {:.0} acknowledged events/s; latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
        report.sent,
        report.duplicates,
        report.acknowledged,
        report.kept,
        report.refused,
        report.failed,
        report.elapsed.as_secs_f64(),
        report.per_second(),
        ms(report.p50),
        ms(report.p99),
        ms(report.p999),
    );
    Ok(common::status(report.failed == 0))
}
