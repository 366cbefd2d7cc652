//! A copy of host-core's call path (`host-core/src/policy.rs` and `engine.rs`: same engine
//! settings, same pool of warm instances, same limiter) with the changes proposed in
//! BENCHMARKS.md behind switches, so that each gain is measured on the same component.
//!
//! - `typed_once`: check the `resolve` signature once per instance and keep the `TypedFunc`
//!   (host-core checks it on every call). `TypedFunc` is covariant in its parameters, so one
//!   typed with `'static` references accepts the shorter-lived references of each call.
//! - `keep_resident`: the pooling allocator's `linear_memory_keep_resident`, so that a fresh
//!   instance finds the first bytes of its memory still mapped instead of page-faulting them in.
//! - `no_deadline`: epoch interruption off. Not a proposal (the deadline is a requirement):
//!   it measures what the deadline costs.

use std::sync::Mutex;
use std::thread;

use host_core::Limits;
use host_core::engine::EPOCH_TICK;
use policy_types::{Context, PartyVersion, RESOLVER_INTERFACE, Resolution};
use wasmtime::component::{Component, ComponentExportIndex, Func, InstancePre, Linker, TypedFunc};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
};

type Params<'a> = (&'a Context, &'a PartyVersion, &'a PartyVersion);

/// Which of the proposed changes are on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProtoOptions {
    pub typed_once: bool,
    pub keep_resident: usize,
    pub no_deadline: bool,
}

/// The engine host-core builds for `Metering::Epoch`, with the engine-level switches of
/// `options` applied.
fn engine(limits: &Limits, options: &ProtoOptions) -> Engine {
    let keep_resident = options.keep_resident;
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.concurrency_support(false);
    config.epoch_interruption(!options.no_deadline);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(limits.max_instances)
        .total_core_instances(limits.max_instances * 4)
        .total_memories(limits.max_instances * 2)
        .total_tables(limits.max_instances * 4)
        .max_memory_size(limits.memory_bytes)
        .linear_memory_keep_resident(keep_resident)
        .table_keep_resident(keep_resident);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config).expect("the prototype engine");
    let weak = engine.weak();
    thread::Builder::new()
        .name("proto-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch ticker");
    engine
}

struct State {
    limiter: Limiter,
}

/// host-core's limiter: refuses growth past the memory cap.
struct Limiter {
    memory_bytes: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            wasmtime::bail!("memory cap");
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

struct Warm {
    store: Store<State>,
    func: Func,
    typed: Option<TypedFunc<Params<'static>, (Resolution,)>>,
}

/// A policy on the prototype call path.
pub struct ProtoPolicy {
    engine: Engine,
    pre: InstancePre<State>,
    resolve: ComponentExportIndex,
    idle: Mutex<Vec<Warm>>,
    options: ProtoOptions,
    deadline_ticks: u64,
    memory_bytes: usize,
}

impl std::fmt::Debug for ProtoPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtoPolicy")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl ProtoPolicy {
    /// Compiles `bytes` on an engine of its own, set up as host-core's serving engine plus
    /// `options`.
    pub fn new(limits: &Limits, bytes: &[u8], options: ProtoOptions) -> Self {
        let engine = &engine(limits, &options);
        let component = Component::new(engine, bytes).expect("the component compiles");
        let iface = component
            .get_export_index(None, RESOLVER_INTERFACE)
            .expect("the contract export");
        let resolve = component
            .get_export_index(Some(&iface), "resolve")
            .expect("resolve");
        let linker: Linker<State> = Linker::new(engine);
        let pre = linker.instantiate_pre(&component).expect("instantiate_pre");
        ProtoPolicy {
            engine: engine.clone(),
            pre,
            resolve,
            idle: Mutex::new(Vec::new()),
            options,
            deadline_ticks: (limits.deadline.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64,
            memory_bytes: limits.memory_bytes,
        }
    }

    fn instantiate(&self) -> Result<Warm, String> {
        let mut store = Store::new(
            &self.engine,
            State {
                limiter: Limiter {
                    memory_bytes: self.memory_bytes,
                },
            },
        );
        store.limiter(|s| &mut s.limiter);
        if !self.options.no_deadline {
            store.epoch_deadline_trap();
            store.set_epoch_deadline(self.deadline_ticks);
        }
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| format!("{e:#}"))?;
        let func = instance
            .get_func(&mut store, self.resolve)
            .ok_or("no resolve function")?;
        let typed = if self.options.typed_once {
            Some(
                func.typed::<Params<'static>, (Resolution,)>(&store)
                    .map_err(|e| format!("{e:#}"))?,
            )
        } else {
            None
        };
        Ok(Warm { store, func, typed })
    }

    fn call_on(
        &self,
        warm: &mut Warm,
        ctx: &Context,
        local: &PartyVersion,
        remote: &PartyVersion,
    ) -> Result<Resolution, String> {
        if !self.options.no_deadline {
            warm.store.set_epoch_deadline(self.deadline_ticks);
        }
        let result = match &warm.typed {
            // Covariance: the 'static-typed function takes this call's references.
            Some(typed) => typed.call(&mut warm.store, (ctx, local, remote)),
            None => warm
                .func
                .typed::<Params<'_>, (Resolution,)>(&warm.store)
                .and_then(|typed| typed.call(&mut warm.store, (ctx, local, remote))),
        };
        result.map(|(r,)| r).map_err(|e| format!("{e:#}"))
    }

    /// A call on a warm instance from the pool, as `Policy::call`.
    pub fn call(
        &self,
        ctx: &Context,
        local: &PartyVersion,
        remote: &PartyVersion,
    ) -> Result<Resolution, String> {
        let warm = self.idle.lock().unwrap().pop();
        let mut warm = match warm {
            Some(w) => w,
            None => self.instantiate()?,
        };
        let result = self.call_on(&mut warm, ctx, local, remote);
        if result.is_ok() {
            self.idle.lock().unwrap().push(warm);
        }
        result
    }

    /// A call on a fresh instance, dropped afterwards, as `Policy::call_fresh`.
    pub fn call_fresh(
        &self,
        ctx: &Context,
        local: &PartyVersion,
        remote: &PartyVersion,
    ) -> Result<Resolution, String> {
        let mut warm = self.instantiate()?;
        self.call_on(&mut warm, ctx, local, remote)
    }
}
