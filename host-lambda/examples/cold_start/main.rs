//! Cold start of the Lambda functions, measured as Lambda runs them: each binary (`ingest`,
//! `reconcile`, `redrive`) is started as a fresh process against a local runtime API
//! ([`runtime_api`]), with DynamoDB and SQS served by moto, and handed one event. Reported per
//! function, over several runs (medians):
//!
//! - **init**: process start → the first poll of `invocation/next` (what Lambda bills as the
//!   init phase), with its parts from the functions' own `host.init.*` log lines (SDK
//!   configuration, engine creation, loading the default policy);
//! - **first event**: process start → the first event's answer received;
//! - **warm**: the median of the next events' handling (the per-event duration);
//! - the process's peak RSS (`VmHWM`) after those events, and the binary's size.
//!
//! Two policy cases, both with an empty `POLICY_CACHE_DIR` (a fresh execution environment's
//! `/tmp`): `packaged` (the package holds the default policy compiled for this machine's
//! target, `$LAMBDA_TASK_ROOT/precompiled/{sha256}.cwasm`, as `scripts/deploy.sh --build` puts
//! it there for arm64 with `host-cli policy precompile`, so the load deserializes) and
//! `compiled` (no such file, so the load compiles).
//!
//! Run (release binaries; moto servers from `scripts/with-moto.sh`):
//!
//! ```sh
//! cargo build --release -p host-lambda --bins
//! scripts/with-moto.sh cargo run -p host-lambda --example cold_start -- --bins target/release --runs 7
//! ```

#[path = "../../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;
mod runtime_api;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use host_aws::dynamo::party_item;
use integration_tests::samples::example;
use runtime_api::{Outcome, RuntimeApi};
use serde_json::{Value, json};

use common::{Rig, create_conflict_table, eu_and_concurrent_na, unique};

/// Times the Lambda binaries' cold starts against a local runtime API and moto.
#[derive(Parser, Debug, Clone)]
struct Opts {
    /// The directory holding the `ingest`, `reconcile` and `redrive` binaries.
    #[arg(long, default_value = "target/release")]
    bins: PathBuf,
    /// Cold starts per function and policy case.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Warm events after the first, per run (their median is the per-event duration).
    #[arg(long, default_value_t = 10)]
    warm: usize,
    /// The functions to measure.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ingest,reconcile,redrive"
    )]
    functions: Vec<String>,
    /// One run of `ingest`, no timings: checks that an invocation is answered (the test
    /// command's smoke run, on debug binaries).
    #[arg(long)]
    smoke: bool,
    /// Also print every run.
    #[arg(long)]
    verbose: bool,
    /// The functions' `RUST_LOG`; with `--verbose`, their output is printed stamped with the
    /// milliseconds since the process started (e.g. `info,aws_smithy_runtime=debug` shows
    /// where the first event's time goes).
    #[arg(long, default_value = "info")]
    rust_log: String,
}

/// What one cold start measured, in milliseconds (and MB).
#[derive(Clone, Debug, Default)]
struct Run {
    init_ms: f64,
    first_event_ms: f64,
    first_handling_ms: f64,
    warm_ms: f64,
    sdk_config_ms: f64,
    engine_ms: f64,
    policy_load_ms: f64,
    from_cache: bool,
    peak_rss_mb: f64,
}

/// The resources the functions are configured with (as the template's environment names them).
struct Setup {
    rig: Rig,
    conflict_table: String,
    endpoint: String,
    scratch: tempfile::TempDir,
    next_party: Mutex<u64>,
}

impl Setup {
    /// The package's directory, `$LAMBDA_TASK_ROOT`: its precompiled/ holds the default policy
    /// compiled for this machine's target (what `host-cli policy precompile` writes).
    fn task_root(&self) -> PathBuf {
        self.scratch.path().join("task")
    }

    fn package_default_policy(&self) -> Result<()> {
        let bytes = default_policy_artifact::DEFAULT_POLICY;
        let engine = host_core::PolicyEngine::new(Default::default(), host_core::Metering::Epoch)?;
        let target = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
        let dir = self.task_root().join("precompiled");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join(format!("{}.cwasm", host_core::digest(bytes))),
            engine.precompile_for(bytes, &target)?,
        )?;
        Ok(())
    }

    fn env(
        &self,
        function: &str,
        cache_dir: &Path,
        packaged: bool,
        api: &str,
        rust_log: &str,
    ) -> Vec<(String, String)> {
        let mut env = vec![
            ("AWS_LAMBDA_RUNTIME_API", api.to_owned()),
            ("AWS_LAMBDA_FUNCTION_NAME", function.to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024".to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            // No shared config files to read, as in Lambda.
            ("HOME", self.scratch.path().display().to_string()),
            ("REGION_NAME", "eu".to_owned()),
            ("PARTY_TABLE", self.rig.stores.table.clone()),
            ("DEAD_LETTER_QUEUE_URL", self.rig.stores.dlq.clone()),
            ("CONFLICT_TABLE", self.conflict_table.clone()),
            ("POLICY_CACHE_DIR", cache_dir.display().to_string()),
            ("RUST_LOG", rust_log.to_owned()),
        ];
        if function == "ingest" {
            env.push(("TENANT_CLAIM", "tenant".to_owned()));
        }
        if packaged {
            env.push(("LAMBDA_TASK_ROOT", self.task_root().display().to_string()));
        }
        env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    fn party_id(&self) -> String {
        let mut n = self.next_party.lock().unwrap();
        *n += 1;
        format!("cs-{}-{n}", std::process::id())
    }

    /// An event for `function` that does the work its production events do: a TMF632 create
    /// through the HTTP API (claim, reads, the commit transaction); a stream record of a
    /// concurrent overwrite (a read, the policy call, the conditional write, the conflict-log
    /// transaction); a redrive of an empty dead-letter queue.
    fn event(&self, function: &str) -> Value {
        match function {
            "ingest" => {
                let id = self.party_id();
                let mut create = example("IndividualCreateEvent_request");
                create["eventId"] = json!(format!("ev-{id}"));
                create["event"]["individual"]["id"] = json!(id);
                let path = "/tmf-api/party/v5/listener/individualCreateEvent";
                json!({
                    "version": "2.0", "routeKey": format!("POST {path}"), "rawPath": path,
                    "headers": {"content-type": "application/json"},
                    "body": create.to_string(), "isBase64Encoded": false,
                    "requestContext": {"http": {"method": "POST", "path": path},
                        "requestId": format!("rq-{id}"), "routeKey": format!("POST {path}"),
                        "stage": "$default",
                        "authorizer": {"jwt": {"claims": {"tenant": "acme"}, "scopes": null}}},
                })
            }
            "reconcile" => self.conflict(),
            _ => json!({"action": "receive", "max": 10}),
        }
    }

    /// EU writes a party, NA's concurrent version overwrites it by last-writer-wins: the
    /// stream record reconcile gets for it.
    fn conflict(&self) -> Value {
        let id = self.party_id();
        let (eu, na) = eu_and_concurrent_na(&self.rig, &id);
        let new_item = party_item(&na).unwrap();
        self.rig
            .rt
            .block_on(
                self.rig
                    .stores
                    .ddb
                    .put_item()
                    .table_name(&self.rig.stores.table)
                    .set_item(Some(new_item.clone()))
                    .send(),
            )
            .expect("overwriting with NA's version");
        let image = |item| serde_json::to_value(serde_dynamo::Item::from(item)).unwrap();
        let old = party_item(&eu).unwrap();
        let keys: std::collections::HashMap<_, _> = old
            .iter()
            .filter(|(k, _)| *k == "pk" || *k == "sk")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        json!({"Records": [{
            "awsRegion": "eu-west-1", "eventID": format!("rec-{id}"), "eventName": "MODIFY",
            "eventSource": "aws:dynamodb", "eventVersion": "1.1",
            "dynamodb": {"Keys": image(keys), "OldImage": image(old), "NewImage": image(new_item),
                "SequenceNumber": "1", "SizeBytes": 1000, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        }]})
    }
}

/// The function's stdout, line by line, each stamped with when it arrived.
fn read_logs(child: &mut Child) -> Arc<Mutex<Vec<(Instant, String)>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                lines.lock().unwrap().push((Instant::now(), line));
            }
        });
    }
    lines
}

/// A number field of the first JSON log line whose message is `message`.
fn logged(lines: &[(Instant, String)], message: &str, field: &str) -> Option<Value> {
    lines.iter().find_map(|(_, line)| {
        let v: Value = serde_json::from_str(line).ok()?;
        (v["fields"]["message"] == message).then(|| v["fields"][field].clone())
    })
}

/// A memory figure of `/proc/<pid>/status`, in MB.
fn proc_status_mb(pid: u32, key: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn check_answer(function: &str, outcome: &Outcome) -> Result<()> {
    match (function, outcome) {
        (_, Outcome::Error(e)) => bail!("{function} answered an error: {e}"),
        ("ingest", Outcome::Response(r)) if r["statusCode"] != 201 => {
            bail!("ingest did not apply the create: {r}")
        }
        ("reconcile", Outcome::Response(r)) if r["batchItemFailures"] != json!([]) => {
            bail!("reconcile asked for a retry: {r}")
        }
        _ => Ok(()),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One cold start of `function`, then `warm` more events.
fn cold_start(
    setup: &Setup,
    opts: &Opts,
    function: &str,
    cache_dir: &Path,
    packaged: bool,
) -> Result<Run> {
    let (bins, warm) = (&opts.bins, opts.warm);
    let rt = &setup.rig.rt;
    let api = rt.block_on(RuntimeApi::start())?;
    // Events are prepared before the process starts, so that preparing them is not timed.
    let events: Vec<Value> = (0..=warm).map(|_| setup.event(function)).collect();
    let binary = bins.join(function);
    let mut command = Command::new(&binary);
    command
        .env_clear()
        .envs(setup.env(
            function,
            cache_dir,
            packaged,
            &api.address(),
            &opts.rust_log,
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let logs = read_logs(&mut child);
    let result = (|| -> Result<Run> {
        let mut answers = Vec::new();
        for event in events {
            let answered = rt.block_on(async {
                tokio::select! {
                    a = api.invoke(event) => a.map_err(anyhow::Error::msg),
                    () = tokio::time::sleep(Duration::from_secs(120)) => bail!("no answer within 120 s"),
                }
            });
            let answered = match answered {
                Ok(a) => a,
                Err(e) => {
                    let exited = child.try_wait().ok().flatten();
                    let logs: Vec<String> = logs
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|(_, l)| l.clone())
                        .collect();
                    bail!(
                        "{function}: {e} (exit status {exited:?}); its output:\n{}",
                        logs.join("\n")
                    );
                }
            };
            check_answer(function, &answered.outcome)?;
            answers.push(answered);
        }
        let peak_rss_mb = proc_status_mb(child.id(), "VmHWM:").unwrap_or(f64::NAN);
        let first = &answers[0];
        let mut warm: Vec<f64> = answers[1..].iter().map(|a| ms(a.duration())).collect();
        let lines = logs.lock().unwrap().clone();
        if opts.verbose {
            for (at, line) in &lines {
                eprintln!("{:9.2} ms  {line}", ms(*at - started));
            }
        }
        let num = |message, field| {
            logged(&lines, message, field)
                .and_then(|v| v.as_f64())
                .unwrap_or(f64::NAN)
        };
        Ok(Run {
            init_ms: ms(api.first_poll().context("never polled")? - started),
            first_event_ms: ms(first.answered_at - started),
            first_handling_ms: ms(first.duration()),
            warm_ms: median(&mut warm),
            sdk_config_ms: num("host.init.sdk_config", "sdk_config_ms"),
            engine_ms: num("host.init.policies", "engine_ms"),
            policy_load_ms: num("host.init.policies", "load_ms"),
            from_cache: logged(&lines, "host.init.policies", "from_cache") == Some(json!(true)),
            peak_rss_mb,
        })
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// Process start alone: the binary started without its configuration exits at once.
fn bare_start(bins: &Path, function: &str) -> Result<f64> {
    let started = Instant::now();
    let status = Command::new(bins.join(function))
        .env_clear()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    let took = ms(started.elapsed());
    if status.success() {
        bail!("{function} started without its configuration");
    }
    Ok(took)
}

fn median(xs: &mut [f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    }
}

fn main() -> Result<()> {
    let opts = Opts::parse();
    let rig = Rig::new("MOTO_ENDPOINT");
    let conflict_table = unique("conflicts");
    rig.rt
        .block_on(create_conflict_table(&rig.stores.ddb, &conflict_table));
    let setup = Setup {
        endpoint: common::endpoint("MOTO_ENDPOINT"),
        rig,
        conflict_table,
        scratch: tempfile::tempdir()?,
        next_party: Mutex::new(0),
    };
    setup.package_default_policy()?;
    if opts.smoke {
        let cache = setup.scratch.path().join("cache");
        let run = cold_start(&setup, &Opts { warm: 0, ..opts }, "ingest", &cache, true)?;
        // The package's artifact, found through $LAMBDA_TASK_ROOT, spared the compilation.
        if !run.from_cache {
            bail!("ingest compiled the default policy though its package holds it precompiled");
        }
        println!(
            "cold-start smoke: ingest loaded the packaged policy and answered its first event ({:.0} ms after start, debug build)",
            run.first_event_ms
        );
        return Ok(());
    }
    println!(
        "machine: {} cores, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "\n| function | policy | binary | process start | SDK config | engine | policy load | init | first event handled | first event (handling) | warm event | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for function in &opts.functions {
        let size = std::fs::metadata(opts.bins.join(function))
            .with_context(|| format!("{} has no {function}", opts.bins.display()))?
            .len() as f64
            / 1e6;
        let mut bare: Vec<f64> = (0..opts.runs)
            .map(|_| bare_start(&opts.bins, function))
            .collect::<Result<_>>()?;
        let bare = median(&mut bare);
        for case in ["packaged", "compiled"] {
            let mut runs = Vec::new();
            for i in 0..opts.runs {
                // A fresh execution environment: an empty cache directory every run.
                let dir = setup
                    .scratch
                    .path()
                    .join(format!("empty-{function}-{case}-{i}"));
                let run = cold_start(&setup, &opts, function, &dir, case == "packaged")?;
                if run.from_cache != (case == "packaged") {
                    bail!(
                        "{function} {case}: the policy came from the cache: {}",
                        run.from_cache
                    );
                }
                if opts.verbose {
                    eprintln!("{function} {case} run {i}: {run:?}");
                }
                runs.push(run);
            }
            let med = |f: fn(&Run) -> f64| {
                let mut xs: Vec<f64> = runs.iter().map(f).collect();
                median(&mut xs)
            };
            println!(
                "| {function} | {case} | {size:.1} MB | {bare:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | **{:.1} ms** | {:.1} ms | {:.1} ms | {:.1} MB |",
                med(|r| r.sdk_config_ms),
                med(|r| r.engine_ms),
                med(|r| r.policy_load_ms),
                med(|r| r.init_ms),
                med(|r| r.first_event_ms),
                med(|r| r.first_handling_ms),
                med(|r| r.warm_ms),
                med(|r| r.peak_rss_mb),
            );
        }
    }
    println!(
        "\n{} runs per row, medians; moto on 127.0.0.1 serves DynamoDB and SQS.",
        opts.runs
    );
    Ok(())
}
