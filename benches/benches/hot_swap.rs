//! Hot swap under load (a custom timing loop, not criterion): call latency of a caller thread
//! in steady state and while another thread publishes a new policy version every few ms, and
//! the time from `activate` to the end of the first call on the new version.

use std::time::Duration;

use policy_benches::hot_swap::{PhaseStats, SwapConfig, percentile, run};
use policy_benches::report::criterion_dir;
use policy_benches::serving_engine;

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn row(name: &str, s: &PhaseStats) -> String {
    let first = |v: &[Duration], p| {
        if v.is_empty() {
            "–".to_owned()
        } else {
            us(percentile(v, p))
        }
    };
    format!(
        "| {name} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} / {} |",
        s.calls,
        s.failed,
        s.swaps,
        us(s.p50),
        us(s.p99),
        us(s.p999),
        us(s.max),
        first(&s.first_use, 0.5),
        first(&s.first_use, 0.99),
        first(&s.first_call, 0.5),
        first(&s.first_call, 0.99),
    )
}

fn main() {
    // `cargo test --benches` runs bench targets with no `--bench`: keep that run short.
    let bench = std::env::args().any(|a| a == "--bench");
    let config = if bench {
        SwapConfig {
            phase: Duration::from_secs(3),
            swap_every: Duration::from_millis(5),
        }
    } else {
        SwapConfig {
            phase: Duration::from_millis(200),
            swap_every: Duration::from_millis(20),
        }
    };
    let engine = serving_engine();
    let report = run(&engine, config);
    let mut out = String::from("\n## Hot swap\n\n");
    out.push_str(&format!(
        "Typical conflict, caller thread through `TenantPolicies::get` + `resolve_with`; a new version every {} ms for {} s per phase.\n\n",
        config.swap_every.as_millis(),
        config.phase.as_secs_f64()
    ));
    out.push_str("| phase | calls | failed | swaps | p50 | p99 | p99.9 | max | activate → first call done (p50 / p99) | first call on new version (p50 / p99) |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    out.push_str(&row("steady state", &report.steady));
    out.push('\n');
    out.push_str(&row("swapping (new version cold)", &report.swapping));
    out.push('\n');
    out.push_str(&row(
        "swapping (new version warmed before activate)",
        &report.swapping_warmed,
    ));
    out.push('\n');
    let ratio = |s: &PhaseStats| s.p99.as_secs_f64() / report.steady.p99.as_secs_f64();
    let failed = report.swapping.failed + report.swapping_warmed.failed + report.steady.failed;
    out.push_str(&format!(
        "\np99 while swapping / steady: {:.2}× (cold), {:.2}× (warmed); target ≤ 2× and no failed call: {}\n",
        ratio(&report.swapping),
        ratio(&report.swapping_warmed),
        if ratio(&report.swapping) <= 2.0 && failed == 0 {
            "met"
        } else if ratio(&report.swapping_warmed) <= 2.0 && failed == 0 {
            "met only with warming"
        } else {
            "MISSED"
        }
    ));
    println!("{out}");
    if !bench {
        return;
    }
    let dir = criterion_dir();
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("summary-hot-swap.md"), out);
}
