//! The figures of one benchmark run, side by side: criterion writes each benchmark's estimates
//! to disk; after the run, a bench binary reads back those it measured (only files written by
//! this process count, so a ratio never mixes two runs) and prints them with their ratios.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use criterion::Criterion;

/// Where criterion keeps its results, found as criterion finds it: `$CRITERION_HOME`, else
/// `$CARGO_TARGET_DIR/criterion`, else `criterion` in the target directory (criterion asks
/// `cargo metadata`; the bench binary's own path, `target/<profile>/deps/<name>`, says the same).
pub fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    // A bench binary is target/<profile>/deps/<name>.
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(|t| t.join("criterion")))
        .unwrap_or_else(|| PathBuf::from("target/criterion"))
}

/// Criterion set up for short runs (1 s warm-up, 3 s measurement) unless the command line
/// says otherwise.
pub fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args()
}

/// Formats nanoseconds with a unit.
pub fn show_ns(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

/// What a ratio is held to: the figure a ratio must stay under (a cost) or reach (a speed-up).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    AtMost(f64),
    AtLeast(f64),
}

/// Rows of figures read back from this run.
#[derive(Debug)]
pub struct Report {
    title: String,
    started: SystemTime,
    dir: PathBuf,
    rows: Vec<String>,
    /// Whether any estimate of this run was found (not so under `cargo test --benches`).
    measured: std::cell::Cell<bool>,
}

impl Report {
    /// Call before the benchmarks run: estimates older than this are ignored.
    pub fn new(title: &str) -> Self {
        Report {
            title: title.to_owned(),
            started: SystemTime::now(),
            dir: criterion_dir(),
            rows: Vec::new(),
            measured: std::cell::Cell::new(false),
        }
    }

    /// Runs `benches` with [`criterion`] and its summary; the report reads back what they
    /// measured.
    pub fn run(title: &str, benches: impl FnOnce(&mut Criterion)) -> Self {
        let report = Report::new(title);
        let mut c = criterion();
        benches(&mut c);
        c.final_summary();
        report
    }

    /// The median time of one benchmark of this run, in ns.
    pub fn median(&self, group: &str, id: &str) -> Option<f64> {
        let path = self
            .dir
            .join(group)
            .join(id)
            .join("new")
            .join("estimates.json");
        let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
        if modified < self.started {
            return None;
        }
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
        let median = json["median"]["point_estimate"].as_f64();
        if median.is_some() {
            self.measured.set(true);
        }
        median
    }

    /// A figure on its own.
    pub fn figure(&mut self, label: &str, group: &str, id: &str) -> Option<f64> {
        let t = self.median(group, id);
        let shown = t.map_or("not run".to_owned(), show_ns);
        self.rows.push(format!("| {label} | {shown} | | |"));
        t
    }

    /// `a / b`, with the bound it is held to, if any.
    pub fn ratio(
        &mut self,
        label: &str,
        a: (&str, &str),
        b: (&str, &str),
        bound: Option<Bound>,
    ) -> Option<f64> {
        let times = self.median(a.0, a.1).zip(self.median(b.0, b.1));
        let ratio = times.map(|(x, y)| x / y);
        self.push_ratio(label, times, ratio, bound);
        ratio
    }

    /// `(a - b) / c`: the cost `a` adds over `b`, against `c`.
    pub fn extra_ratio(
        &mut self,
        label: &str,
        a: (&str, &str),
        b: (&str, &str),
        c: (&str, &str),
        at_most: Option<f64>,
    ) -> Option<f64> {
        let (ta, tb, tc) = (
            self.median(a.0, a.1),
            self.median(b.0, b.1),
            self.median(c.0, c.1),
        );
        let (extra, ratio) = match (ta, tb, tc) {
            (Some(x), Some(y), Some(z)) => (Some((x - y, z)), Some((x - y) / z)),
            _ => (None, None),
        };
        self.push_ratio(label, extra, ratio, at_most.map(Bound::AtMost));
        ratio
    }

    fn push_ratio(
        &mut self,
        label: &str,
        times: Option<(f64, f64)>,
        ratio: Option<f64>,
        bound: Option<Bound>,
    ) {
        let shown = times.map_or("not run".to_owned(), |(x, y)| {
            format!("{} vs {}", show_ns(x), show_ns(y))
        });
        let ratio_s = ratio.map_or("–".to_owned(), |r| format!("{r:.2}×"));
        let verdict = match (bound, ratio) {
            (Some(b), Some(r)) => {
                let (op, t, met) = match b {
                    Bound::AtMost(t) => ("≤", t, r <= t),
                    Bound::AtLeast(t) => ("≥", t, r >= t),
                };
                format!("{op} {t}× {}", if met { "met" } else { "MISSED" })
            }
            (Some(Bound::AtMost(t) | Bound::AtLeast(t)), None) => format!("{t}×"),
            (None, _) => String::new(),
        };
        self.rows
            .push(format!("| {label} | {shown} | {ratio_s} | {verdict} |"));
    }

    /// A ratio measured with interleaved blocks ([`crate::Interleaved`]), held to `at most`.
    pub fn interleaved(&mut self, label: &str, m: &crate::Interleaved, at_most: Option<f64>) {
        self.measured.set(true);
        self.push_ratio(
            label,
            Some((m.a_ns, m.b_ns)),
            Some(m.ratio),
            at_most.map(Bound::AtMost),
        );
    }

    /// A free-form row (e.g. a derived throughput).
    pub fn line(&mut self, label: &str, value: &str) {
        self.rows.push(format!("| {label} | {value} | | |"));
    }

    /// Prints the table, and writes it beside criterion's results when this run measured
    /// something (a test run of the benches leaves the last real summary alone).
    pub fn finish(&self) {
        let mut out = String::new();
        let _ = writeln!(out, "\n## {}\n", self.title);
        let _ = writeln!(out, "| figure | median | ratio | target |");
        let _ = writeln!(out, "|---|---|---|---|");
        for r in &self.rows {
            let _ = writeln!(out, "{r}");
        }
        println!("{out}");
        if !self.measured.get() {
            return;
        }
        let name = self
            .title
            .to_lowercase()
            .replace(|c: char| !c.is_alphanumeric(), "-");
        let _ = std::fs::create_dir_all(&self.dir);
        let _ = std::fs::write(self.dir.join(format!("summary-{name}.md")), out);
    }
}
