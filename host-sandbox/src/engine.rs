//! The wasmtime engine, configured for untrusted policies.
//!
//! Every policy runs under a per-call deadline (epoch interruption on the serving engine, fuel
//! on the metered one used by law checks, which want a deterministic cost), a memory cap per
//! instance, and a size cap on the component. Instances come from the pooling allocator, so a
//! fresh instance after a trap costs microseconds. No WASI is linked: a policy that imports
//! anything is refused at load time, so it has no capability to use.

use std::thread;
use std::time::Duration;
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Linear memory kept resident between instances of a slot, reset page by page where the
/// kernel can say which pages were touched (BENCHMARKS.md, instantiation).
const KEEP_RESIDENT: usize = 4 << 20;

use crate::error::{EngineError, LoadError};

/// The sandbox limits a policy runs under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget of one call (serving engine).
    pub deadline: Duration,
    /// Fuel budget of one call (metered engine); one unit is roughly one wasm instruction. By
    /// default the deadline's worth ([`Limits::fuel_for`]): the law gate and the hosts then
    /// agree on what a policy may cost.
    pub fuel: u64,
    /// Linear memory one instance may grow to, in bytes.
    pub memory_bytes: usize,
    /// Largest component accepted, in bytes.
    pub max_component_bytes: usize,
    /// Instances that may exist at once (the pooling allocator reserves their slots).
    pub max_instances: u32,
}

impl Limits {
    /// Fuel a policy burns in a millisecond of a serving call, at the fastest rate measured on
    /// the project's machine: 7.0 M for the JavaScript interpreter, 4.6 M for Python's, 3.8 M
    /// for a Rust policy's own loops (`calibrate_fuel_per_millisecond` in
    /// `tests/tests/fuel_budget.rs` measures them; BENCHMARKS.md, "One budget"). Fuel counts
    /// wasm instructions, which each kind of code executes at its own rate; with the fastest,
    /// a call that runs out of [`Limits::fuel_for`] a deadline would have run past that
    /// deadline here, and a call that stays within it takes at most 1.0× (JavaScript), 1.5×
    /// (Python) or 1.8× (Rust) the deadline: the margin by which the gate is more lenient
    /// than the hosts, never stricter.
    pub const FUEL_PER_MS: u64 = 7_000_000;

    /// The fuel budget of a metered call that matches a serving deadline: a call refused for
    /// running out of it would have timed out on a host (on the machine of the calibration;
    /// a slower one times out earlier).
    pub fn fuel_for(deadline: Duration) -> u64 {
        (deadline.as_micros() as u64).saturating_mul(Self::FUEL_PER_MS) / 1000
    }
}

impl Default for Limits {
    fn default() -> Self {
        let deadline = Duration::from_millis(100);
        Limits {
            deadline,
            fuel: Limits::fuel_for(deadline),
            memory_bytes: 64 << 20,
            max_component_bytes: 32 << 20,
            max_instances: 256,
        }
    }
}

/// How a call's budget is enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metering {
    /// Epoch interruption: cheapest per call; the budget is wall-clock time.
    Epoch,
    /// Fuel: deterministic, and the consumed fuel is the cost law checks report.
    Fuel,
}

/// How often the epoch advances: the granularity of the wall-clock deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// A configured engine with its limits. Cheap to clone.
#[derive(Clone)]
pub struct PolicyEngine {
    pub(crate) engine: Engine,
    pub(crate) limits: Limits,
    pub(crate) metering: Metering,
    /// Fresh instances reset only the pages their slot's last instance touched.
    pub(crate) pagemap_scan: bool,
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("limits", &self.limits)
            .field("metering", &self.metering)
            .field("pagemap_scan", &self.pagemap_scan)
            .finish()
    }
}

impl PolicyEngine {
    pub fn new(limits: Limits, metering: Metering) -> Result<Self, EngineError> {
        // The kernel's PAGEMAP_SCAN is asked for, and the engine built without it where it is
        // missing (before Linux 6.7): keeping memory resident without it would memset all of it.
        let (engine, pagemap_scan) = match Engine::new(&Self::config(&limits, metering, true)) {
            Ok(engine) => (engine, true),
            Err(_) => (
                Engine::new(&Self::config(&limits, metering, false))
                    .map_err(|e| EngineError(format!("{e:#}")))?,
                false,
            ),
        };
        if metering == Metering::Epoch {
            start_epoch_ticker(&engine);
        }
        Ok(PolicyEngine {
            engine,
            limits,
            metering,
            pagemap_scan,
        })
    }

    /// Whether fresh instances reset only the pages their slot's last instance touched (the
    /// kernel has PAGEMAP_SCAN).
    pub fn pagemap_scan(&self) -> bool {
        self.pagemap_scan
    }

    fn config(limits: &Limits, metering: Metering, pagemap_scan: bool) -> Config {
        let mut config = Config::new();
        config.wasm_component_model(true);
        // For profiling: `perf` then names the policies' compiled functions (BENCHMARKS.md).
        if std::env::var_os("POLICY_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        // Policies are synchronous; the component-model concurrency machinery costs ~0.5 µs a call.
        config.concurrency_support(false);
        match metering {
            Metering::Epoch => config.epoch_interruption(true),
            Metering::Fuel => config.consume_fuel(true),
        };
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(limits.max_instances)
            .total_core_instances(limits.max_instances * 4)
            .total_memories(limits.max_instances * 2)
            .total_tables(limits.max_instances * 4)
            .max_memory_size(limits.memory_bytes);
        if pagemap_scan {
            // A fresh instance (the first of a version, and after every trap) reuses a slot.
            // With PAGEMAP_SCAN (Linux 6.7+) only the pages the last instance touched are
            // reset, with memset, instead of an madvise of the whole memory followed by a
            // page fault on every page the next instance touches.
            pool.pagemap_scan(wasmtime::Enabled::Yes)
                .linear_memory_keep_resident(KEEP_RESIDENT);
        }
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        config
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn metering(&self) -> Metering {
        self.metering
    }

    /// Identifies the compiler settings: precompiled artifacts are only valid for an engine
    /// with the same hash.
    pub fn compatibility_hash(&self) -> String {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut h = DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        format!("{:016x}", h.finish())
    }

    /// Compiles a component with this engine's settings (the artifact cache stores what this
    /// returns; it never compiles by itself).
    pub(crate) fn compile(&self, bytes: &[u8]) -> Result<Component, LoadError> {
        let started = std::time::Instant::now();
        let component = Component::new(&self.engine, bytes).map_err(LoadError::Compile)?;
        // One event per compilation, cached or not: what the CLI's tests count to show that a
        // component is compiled once per machine and engine.
        tracing::info!(
            engine = %self.compatibility_hash(),
            bytes = bytes.len(),
            ms = started.elapsed().as_millis() as u64,
            "sandbox.compiled"
        );
        Ok(component)
    }

    /// `bytes` compiled for hosts of another target (a triple such as
    /// `aarch64-unknown-linux-gnu`), with this engine's limits and metering: the artifact a
    /// host of that target loads from its packaged directory
    /// ([`crate::ArtifactCache::with_packaged`]) instead of compiling at its cold start.
    ///
    /// The code uses the target's baseline CPU features only (on x86-64 the x86-64-v2 level,
    /// which every x86-64 server of the last decade has), since the machine that compiles
    /// cannot know which the host will detect; the host's own compilations use all it has.
    /// Compiling for an architecture other than this machine's needs that backend in the build
    /// (host-sandbox's `arm64` feature).
    pub fn precompile_for(&self, bytes: &[u8], target: &str) -> Result<Vec<u8>, LoadError> {
        let mut config = Self::config(&self.limits, self.metering, false);
        config
            .target(target)
            .map_err(|e| LoadError::Target(target.to_owned(), e))?;
        if target.starts_with("x86_64") {
            for flag in [
                "has_sse3",
                "has_ssse3",
                "has_sse41",
                "has_sse42",
                "has_popcnt",
            ] {
                // SAFETY: these only allow the compiler to use instructions that wasmtime checks
                // the loading host for (`Component::deserialize` refuses the artifact otherwise).
                #[allow(unsafe_code)]
                unsafe {
                    config.cranelift_flag_enable(flag);
                }
            }
        }
        let engine = Engine::new(&config).map_err(|e| LoadError::Target(target.to_owned(), e))?;
        engine
            .precompile_component(bytes)
            .map_err(LoadError::Compile)
    }

    pub(crate) fn deadline_ticks(&self) -> u64 {
        (self.limits.deadline.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64
    }
}

/// One thread per engine advances its epoch; it stops when the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    thread::Builder::new()
        .name("policy-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch ticker thread");
}
