//! A loaded policy: validated at load time, compiled once, instantiated many times.
//!
//! Load-time checks refuse a component that is too large, is not a component, imports anything
//! (a policy needs no capability), does not export the contract at a compatible version, has
//! the wrong signatures, or fails to describe itself. Calls run on warm instances kept in a
//! small pool; an instance that traps, times out or runs out of memory is dropped and the next
//! call gets a fresh one from the pre-instantiated component.

use std::sync::Mutex;

use policy_types::writes::Writes;
use policy_types::{
    Context, ContextRef, Description, PACKED_INTERFACE, PartyVersion, RESOLVER_INTERFACE,
    Resolution, WRITES_INTERFACE,
};
use sha2::{Digest, Sha256};
use wasmtime::component::{
    Component, ComponentExportIndex, Func, Instance, InstancePre, Linker, TypedFunc,
};
use wasmtime::{ResourceLimiter, Store, Trap};

use crate::cache::ArtifactCache;
use crate::engine::{Metering, PolicyEngine};
use crate::error::{Budget, CallFailure, LoadError};
use crate::strip::Stripped;
use policy_packed as packed;

/// The sha256 of a component's bytes, hex-encoded: the identity of a policy everywhere.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What load-time validation found out about a component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyInfo {
    pub digest: String,
    pub size: usize,
    pub description: Description,
    /// The component's imports (always empty for a policy that loaded).
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// Whether the compiled code came from the artifact cache.
    pub from_cache: bool,
    /// Contract 1.1: the policy declared that it receives only what differs between the two
    /// versions ([`crate::strip`]).
    pub differences_only: bool,
    /// The component exports `packed-resolver`: calls go through it ([`policy_packed`]).
    pub packed: bool,
    /// The packed format its calls are written in: format 3 (with the versions' writes) from
    /// contract 1.3 on, format 2 for 1.2, format 1 before ([`packed::Format`]).
    pub packed_format: packed::Format,
    /// The component exports `writes-resolver` and declares contract 1.3 or later: its typed
    /// calls carry the versions' writes (a packed call carries them in format 3 instead).
    pub typed_writes: bool,
}

type ResolveParams<'a> = (&'a Context, &'a PartyVersion, &'a PartyVersion);
type WritesParams<'a> = (
    &'a Context,
    &'a PartyVersion,
    &'a Writes,
    &'a PartyVersion,
    &'a Writes,
);

/// The versions a call carries.
#[derive(Clone, Copy)]
enum Input<'a> {
    Whole(&'a PartyVersion, &'a PartyVersion),
    /// Only what differs (contract 1.1).
    Stripped(&'a Stripped<'a>),
}

/// What a call sends, however it is sent.
struct Sent<'a> {
    ctx: ContextRef<'a>,
    input: Input<'a>,
    writes: Option<(&'a Writes, &'a Writes)>,
    /// Through `writes-resolver` (a typed call to a policy that reads the writes there).
    writes_call: bool,
}

/// One call of a policy ([`Policy::call`]): the context, what is sent, and how.
pub struct Call<'a> {
    ctx: ContextRef<'a>,
    input: Input<'a>,
    /// Each version's writes, for a policy that reads them (packed format 3); unknown when
    /// `None`.
    writes: Option<(&'a Writes, &'a Writes)>,
    typed: bool,
    plain: bool,
    fresh: bool,
    fuel: Option<&'a mut Option<u64>>,
}

impl std::fmt::Debug for Call<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("ctx", &self.ctx)
            .field("stripped", &matches!(self.input, Input::Stripped(_)))
            .field("typed", &self.typed)
            .field("plain", &self.plain)
            .field("fresh", &self.fresh)
            .finish_non_exhaustive()
    }
}

impl<'a> Call<'a> {
    /// Both versions whole, as a contract 1.0 policy is sent them. The context is a
    /// `&Context` or, where the caller holds its parts, a [`ContextRef`].
    pub fn new(
        ctx: impl Into<ContextRef<'a>>,
        local: &'a PartyVersion,
        remote: &'a PartyVersion,
    ) -> Self {
        Self::with_input(ctx.into(), Input::Whole(local, remote))
    }

    /// Only what differs between the versions ([`crate::strip`]): packed straight from the
    /// versions for a policy that takes packed calls, copied out for one that does not.
    pub fn stripped(ctx: ContextRef<'a>, stripped: &'a Stripped<'a>) -> Self {
        Self::with_input(ctx, Input::Stripped(stripped))
    }

    fn with_input(ctx: ContextRef<'a>, input: Input<'a>) -> Self {
        Call {
            ctx,
            input,
            writes: None,
            typed: false,
            plain: false,
            fresh: false,
            fuel: None,
        }
    }

    /// With the local and the remote version's writes, which a policy of contract revision
    /// 1.3 is sent (packed format 3, or `writes-resolver` where it exports that); other
    /// policies, and `resolver.resolve`, are not.
    pub fn with_writes(mut self, local: &'a Writes, remote: &'a Writes) -> Self {
        self.writes = Some((local, remote));
        self
    }

    /// Through typed values even where the policy takes packed calls (`writes-resolver` where
    /// the policy reads the writes through it, `resolver.resolve` otherwise): what the tests
    /// and benchmarks compare the packed path with.
    pub fn typed(mut self) -> Self {
        self.typed = true;
        self
    }

    /// Through `resolver.resolve` itself, with no writes, whatever else the policy exports:
    /// what a host that does not know `packed-resolver` or `writes-resolver` calls, and what
    /// the law checker compares the other calls with.
    pub fn plain(mut self) -> Self {
        self.typed = true;
        self.plain = true;
        self
    }

    /// On a fresh instance, dropped afterwards (law checks of determinism, benchmarks of
    /// instantiation), instead of a warm one from the pool.
    pub fn fresh(mut self) -> Self {
        self.fresh = true;
        self
    }

    /// Writes the fuel the call consumed into `fuel` (metered engines; `None` otherwise).
    pub fn metered(mut self, fuel: &'a mut Option<u64>) -> Self {
        self.fuel = Some(fuel);
        self
    }
}

impl<'a, C: Into<ContextRef<'a>>> From<(C, &'a PartyVersion, &'a PartyVersion)> for Call<'a> {
    fn from((ctx, local, remote): (C, &'a PartyVersion, &'a PartyVersion)) -> Self {
        Call::new(ctx, local, remote)
    }
}

/// A policy ready to be called.
pub struct Policy {
    info: PolicyInfo,
    engine: PolicyEngine,
    pre: InstancePre<StoreState>,
    resolve: ComponentExportIndex,
    packed_resolve: Option<ComponentExportIndex>,
    writes_resolve: Option<ComponentExportIndex>,
    idle: Mutex<Vec<Warm>>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// An instance kept warm between calls.
struct Warm {
    store: Store<StoreState>,
    instance: Instance,
    resolve: Func,
    /// `packed-resolver.resolve`, its signature checked once, when the instance was made (load
    /// refuses a component where that fails). `TypedFunc` is covariant in its parameters:
    /// typed for `'static` bytes, it takes the shorter-lived buffer of each call.
    packed_resolve: Option<PackedFunc>,
    /// `writes-resolver.resolve`, where the component exports it.
    writes_resolve: Option<Func>,
    /// The packed call's buffer, reused from call to call.
    buf: Vec<u8>,
    /// The linear memory the instance held when it was made.
    started_with: usize,
}

impl Warm {
    /// Whether the instance has used up half the memory the cap left it when it was made. It
    /// is then not reused: a runtime whose heap creeps up from call to call (componentize-js's
    /// grows by a few KiB a call) would otherwise reach the cap and fail a call after tens of
    /// thousands; a fresh instance starts where this one started.
    fn worn(&self) -> bool {
        let l = &self.store.data().limiter;
        let headroom = l.memory_bytes.saturating_sub(self.started_with);
        l.held.saturating_sub(self.started_with) > headroom / 2
    }
}

type PackedFunc = TypedFunc<(&'static [u8],), (Vec<u8>,)>;

struct StoreState {
    limiter: Limiter,
}

/// Enforces the memory cap, and remembers that it did so the failure is reported as such.
struct Limiter {
    memory_bytes: usize,
    exceeded: Option<String>,
    /// The linear memory the instance holds, all memories together (they only grow).
    held: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            let msg = format!(
                "asked to grow linear memory from {current} to {desired} bytes; the cap is {} bytes",
                self.memory_bytes
            );
            self.exceeded = Some(msg.clone());
            wasmtime::bail!(msg);
        }
        self.held += desired.saturating_sub(current);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        const MAX_TABLE: usize = 1 << 20;
        if desired > MAX_TABLE {
            self.exceeded = Some(format!(
                "asked to grow a table to {desired} elements; the cap is {MAX_TABLE}"
            ));
            wasmtime::bail!("table growth beyond the cap");
        }
        Ok(true)
    }
}

thread_local! {
    /// The last answer this thread was done with ([`recycle`]): the next packed answer is
    /// unpacked into its strings and vectors instead of new ones.
    static SPARE: std::cell::Cell<Option<Resolution>> = const { std::cell::Cell::new(None) };
}

/// Hands back an answer the caller is done with, so that the next packed answer unpacked on
/// this thread reuses its allocations (a small conflict's answer is a dozen strings). A thread
/// keeps one answer at most: the last one handed back.
pub fn recycle(resolution: Resolution) {
    SPARE.set(Some(resolution));
}

/// The largest packed answer read for a call of `call_len` bytes.
fn answer_limit(call_len: usize) -> usize {
    (1 << 20) + 4 * call_len
}

/// Idle instances kept per policy; more than this are dropped after use.
const MAX_IDLE: usize = 16;

impl Policy {
    /// Validates and compiles a component (or loads its precompiled artifact from `cache`).
    pub fn load(
        engine: &PolicyEngine,
        bytes: &[u8],
        cache: Option<&ArtifactCache>,
    ) -> Result<Policy, LoadError> {
        let max = engine.limits.max_component_bytes;
        if bytes.len() > max {
            return Err(LoadError::TooLarge {
                size: bytes.len(),
                max,
            });
        }
        check_component_header(bytes)?;
        let digest = digest(bytes);
        let (component, from_cache) = match cache {
            Some(cache) => cache.load_or_compile(engine, &digest, bytes)?,
            None => (engine.compile(bytes)?, false),
        };
        Policy::from_component(engine, component, digest, bytes.len(), from_cache)
    }

    fn from_component(
        engine: &PolicyEngine,
        component: Component,
        digest: String,
        size: usize,
        from_cache: bool,
    ) -> Result<Policy, LoadError> {
        let ty = component.component_type();
        let imports: Vec<String> = ty
            .imports(&engine.engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        if !imports.is_empty() {
            return Err(LoadError::ForbiddenImports {
                imports,
                allowed: "nothing".to_owned(),
            });
        }
        let exports: Vec<String> = ty
            .exports(&engine.engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let export = find_contract_export(&exports)?;
        let iface = component
            .get_export_index(None, export.as_str())
            .ok_or_else(|| LoadError::MissingContract {
                expected: RESOLVER_INTERFACE.to_owned(),
                found: exports.clone(),
            })?;
        let lookup = |name: &'static str| {
            component
                .get_export_index(Some(&iface), name)
                .ok_or_else(|| LoadError::WrongSignature {
                    function: name,
                    detail: format!("{export} has no function {name}"),
                })
        };
        let resolve = lookup("resolve")?;
        let describe = lookup("describe")?;
        let packed_resolve = optional_resolve(&component, &exports, PACKED_INTERFACE)?;
        let writes_resolve = optional_resolve(&component, &exports, WRITES_INTERFACE)?;
        let linker: Linker<StoreState> = Linker::new(&engine.engine);
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Startup(format!("{e:#}")))?;

        let mut policy = Policy {
            info: PolicyInfo {
                digest,
                size,
                description: Description {
                    name: String::new(),
                    version: String::new(),
                    contract_version: String::new(),
                },
                imports,
                exports,
                from_cache,
                differences_only: false,
                packed: packed_resolve.is_some(),
                packed_format: packed::Format::V1,
                typed_writes: false,
            },
            engine: engine.clone(),
            pre,
            resolve,
            packed_resolve,
            writes_resolve,
            idle: Mutex::new(Vec::new()),
        };
        let mut warm = policy
            .instantiate()
            .map_err(|f| LoadError::Startup(f.to_string()))?;
        let describe_fn = warm
            .instance
            .get_func(&mut warm.store, describe)
            .ok_or_else(|| LoadError::WrongSignature {
                function: "describe",
                detail: "not a function".into(),
            })?;
        let typed = describe_fn
            .typed::<(), (Description,)>(&warm.store)
            .map_err(|e| LoadError::WrongSignature {
                function: "describe",
                detail: format!("{e:#}"),
            })?;
        policy.arm(&mut warm.store);
        let (description,) = typed.call(&mut warm.store, ()).map_err(|e| {
            let memory = warm.store.data_mut().limiter.exceeded.take();
            LoadError::Describe(classify(&e, memory, &policy.engine))
        })?;
        check_contract_version(&description.contract_version)?;
        policy.info.differences_only = declares_differences_only(&description.contract_version);
        policy.info.packed_format = packed_format(&description.contract_version);
        policy.info.typed_writes =
            writes_resolve.is_some() && policy.info.packed_format == packed::Format::V3;
        warm.resolve
            .typed::<ResolveParams<'_>, (Resolution,)>(&warm.store)
            .map_err(|e| LoadError::WrongSignature {
                function: "resolve",
                detail: format!("{e:#}"),
            })?;
        if let Some(index) = policy.packed_resolve {
            check_signature::<(&[u8],), (Vec<u8>,)>(&mut warm, index, PACKED_INTERFACE)?;
        }
        if let Some(index) = policy.writes_resolve {
            check_signature::<WritesParams<'_>, (Resolution,)>(&mut warm, index, WRITES_INTERFACE)?;
        }
        policy.info.description = description;
        // The instance that answered `describe` serves the first call: a new version does not
        // pay for an instantiation on its first conflict.
        policy.idle.get_mut().unwrap().push(warm);
        Ok(policy)
    }

    pub fn info(&self) -> &PolicyInfo {
        &self.info
    }

    pub fn digest(&self) -> &str {
        &self.info.digest
    }

    pub fn description(&self) -> &Description {
        &self.info.description
    }

    /// Calls the policy's `resolve` as is: no causality shortcut, no result validation (the
    /// host core's resolver adds both; law checks and benchmarks call this directly). What is
    /// sent and how is the [`Call`]'s: both versions whole (`(ctx, local, remote)` converts
    /// into one) or only what differs, packed where the policy takes packed calls or through
    /// the typed `resolve`, on a warm instance or a fresh one, metered or not.
    pub fn call<'a>(&self, call: impl Into<Call<'a>>) -> Result<Resolution, CallFailure> {
        let call = call.into();
        let packed = self.info.packed && !call.typed;
        let sent = Sent {
            ctx: call.ctx,
            input: call.input,
            writes: call.writes,
            writes_call: self.info.typed_writes && !call.plain,
        };
        let (resolution, fuel) = if call.fresh {
            let mut warm = self.instantiate()?;
            self.call_on(&mut warm, sent, packed)?
        } else {
            self.call_pooled(sent, packed)?
        };
        if let Some(out) = call.fuel {
            *out = fuel;
        }
        Ok(resolution)
    }

    fn call_pooled(
        &self,
        sent: Sent<'_>,
        packed: bool,
    ) -> Result<(Resolution, Option<u64>), CallFailure> {
        let warm = self.idle.lock().unwrap().pop();
        let mut warm = match warm {
            Some(w) => w,
            None => self.instantiate()?,
        };
        let result = self.call_on(&mut warm, sent, packed);
        if result.is_ok() && !warm.worn() {
            let mut idle = self.idle.lock().unwrap();
            if idle.len() < MAX_IDLE {
                idle.push(warm);
            }
        }
        result
    }

    fn call_on(
        &self,
        warm: &mut Warm,
        sent: Sent<'_>,
        packed: bool,
    ) -> Result<(Resolution, Option<u64>), CallFailure> {
        let Sent {
            ctx,
            input,
            writes,
            writes_call,
        } = sent;
        self.arm(&mut warm.store);
        let called = match (&warm.packed_resolve, packed) {
            (Some(typed), true) => {
                let format = self.info.packed_format;
                let none = Writes::default();
                let (lw, rw) = writes.unwrap_or((&none, &none));
                match input {
                    Input::Whole(local, remote) if format == packed::Format::V3 => {
                        packed::pack_call_writes(&mut warm.buf, ctx, (local, lw), (remote, rw))
                    }
                    Input::Whole(local, remote) => {
                        packed::pack_call_ref(&mut warm.buf, format, ctx, local, remote)
                    }
                    Input::Stripped(s) if format == packed::Format::V3 => {
                        s.pack_writes(&mut warm.buf, ctx, lw, rw)
                    }
                    Input::Stripped(s) => s.pack(&mut warm.buf, format, ctx),
                }
                let limit = answer_limit(warm.buf.len());
                typed
                    .call(&mut warm.store, (warm.buf.as_slice(),))
                    .map(|(answer,)| {
                        // Unpacking costs the host up to ~30 bytes per answer byte (a 3-byte
                        // merged field is an 88-byte value): an answer far larger than its call
                        // is refused before it is read (resolver-wasm/packed/README.md).
                        if answer.len() > limit {
                            return Err(CallFailure::InvalidResult(format!(
                                "the policy's packed answer is {} bytes; answers are limited to {limit} bytes (1 MiB plus four times the {}-byte call)",
                                answer.len(),
                                warm.buf.len()
                            )));
                        }
                        let mut resolution = SPARE.take().unwrap_or(Resolution::KeepLocal);
                        match packed::unpack_resolution_into(&answer, &mut resolution) {
                            Ok(()) => Ok(resolution),
                            Err(e) => Err(CallFailure::InvalidResult(format!(
                                "the policy's packed answer is not a resolution: {e}"
                            ))),
                        }
                    })
            }
            _ => {
                let ctx = ctx.to_context();
                let sent;
                let (local, remote) = match input {
                    Input::Whole(local, remote) => (local, remote),
                    Input::Stripped(s) => {
                        sent = s.versions();
                        (&sent.0, &sent.1)
                    }
                };
                let unsigned = |e: wasmtime::Error| CallFailure::Trap {
                    code: None,
                    detail: format!("{e:#}"),
                };
                match warm.writes_resolve {
                    Some(func) if writes_call => {
                        let none = Writes::default();
                        let (lw, rw) = writes.unwrap_or((&none, &none));
                        // What is sent, with the writes that name it, as in packed format 3.
                        let (lw, rw) = (lw.for_sent(local), rw.for_sent(remote));
                        func.typed::<WritesParams<'_>, (Resolution,)>(&warm.store)
                            .map_err(unsigned)?
                            .call(&mut warm.store, (&ctx, local, &lw, remote, &rw))
                            .map(|(resolution,)| Ok(resolution))
                    }
                    _ => warm
                        .resolve
                        .typed::<ResolveParams<'_>, (Resolution,)>(&warm.store)
                        .map_err(unsigned)?
                        .call(&mut warm.store, (&ctx, local, remote))
                        .map(|(resolution,)| Ok(resolution)),
                }
            }
        };
        match called {
            Ok(resolution) => {
                let resolution = resolution?;
                let fuel = match self.engine.metering {
                    Metering::Fuel => warm
                        .store
                        .get_fuel()
                        .ok()
                        .map(|left| self.engine.limits.fuel - left),
                    Metering::Epoch => None,
                };
                Ok((resolution, fuel))
            }
            Err(e) => Err(classify(
                &e,
                warm.store.data_mut().limiter.exceeded.take(),
                &self.engine,
            )),
        }
    }

    /// Sets the per-call budget on a store before a call.
    fn arm(&self, store: &mut Store<StoreState>) {
        match self.engine.metering {
            Metering::Epoch => store.set_epoch_deadline(self.engine.deadline_ticks()),
            Metering::Fuel => store
                .set_fuel(self.engine.limits.fuel)
                .expect("fuel is enabled on metered engines"),
        }
    }

    fn instantiate(&self) -> Result<Warm, CallFailure> {
        let limiter = Limiter {
            memory_bytes: self.engine.limits.memory_bytes,
            exceeded: None,
            held: 0,
        };
        let mut store = Store::new(&self.engine.engine, StoreState { limiter });
        store.limiter(|s| &mut s.limiter);
        if self.engine.metering == Metering::Epoch {
            store.epoch_deadline_trap();
        }
        self.arm(&mut store);
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| classify(&e, store.data_mut().limiter.exceeded.take(), &self.engine))?;
        let resolve =
            instance
                .get_func(&mut store, self.resolve)
                .ok_or_else(|| CallFailure::Trap {
                    code: None,
                    detail: "the instance has no resolve function".into(),
                })?;
        let packed_resolve = match self.packed_resolve {
            Some(index) => instance
                .get_func(&mut store, index)
                .ok_or_else(|| CallFailure::Trap {
                    code: None,
                    detail: "the instance has no packed resolve function".into(),
                })?
                .typed(&store)
                .ok(),
            None => None,
        };
        let writes_resolve = self
            .writes_resolve
            .and_then(|index| instance.get_func(&mut store, index));
        Ok(Warm {
            started_with: store.data().limiter.held,
            store,
            instance,
            resolve,
            packed_resolve,
            writes_resolve,
            buf: Vec::new(),
        })
    }

    /// Drops the warm instances (e.g. when this version is retired).
    pub fn drain_idle(&self) {
        let drained = std::mem::take(&mut *self.idle.lock().unwrap());
        drop(drained);
    }
}

fn classify(e: &wasmtime::Error, memory: Option<String>, engine: &PolicyEngine) -> CallFailure {
    if let Some(msg) = memory {
        return CallFailure::MemoryExhausted(msg);
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallFailure::Timeout(Budget::Deadline(engine.limits.deadline)),
        Some(Trap::OutOfFuel) => CallFailure::Timeout(Budget::Fuel(engine.limits.fuel)),
        Some(trap) => CallFailure::Trap {
            code: Some(*trap),
            detail: format!("{trap}"),
        },
        None => CallFailure::Trap {
            code: None,
            detail: format!("{e:#}"),
        },
    }
}

/// A component starts with the wasm magic and the component layer (version 0x0d, layer 1).
fn check_component_header(bytes: &[u8]) -> Result<(), LoadError> {
    match bytes.get(..8) {
        Some([0x00, 0x61, 0x73, 0x6d, _, _, 0x01, 0x00]) => Ok(()),
        Some([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]) => Err(LoadError::NotAComponent {
            found: "a core wasm module",
        }),
        _ => Err(LoadError::NotAComponent {
            found: "not wasm at all",
        }),
    }
}

/// The export that names `interface` (any version of it).
fn find_export<'a>(exports: &'a [String], interface: &str) -> Option<&'a String> {
    let (base, _) = interface.split_once('@').expect("versioned interface name");
    exports
        .iter()
        .find(|e| e.split_once('@').map(|(b, _)| b) == Some(base) || e.as_str() == base)
}

/// Refuses a component whose `resolve` of the optional `interface` is not a function of
/// parameters `P` and results `R`.
fn check_signature<P, R>(
    warm: &mut Warm,
    index: ComponentExportIndex,
    interface: &str,
) -> Result<(), LoadError>
where
    P: wasmtime::component::ComponentNamedList + wasmtime::component::Lower,
    R: wasmtime::component::ComponentNamedList + wasmtime::component::Lift,
{
    let wrong = |detail: String| LoadError::WrongSignature {
        function: "resolve",
        detail: format!("{interface}: {detail}"),
    };
    warm.instance
        .get_func(&mut warm.store, index)
        .ok_or_else(|| wrong("not a function".into()))?
        .typed::<P, R>(&warm.store)
        .map_err(|e| wrong(format!("{e:#}")))?;
    Ok(())
}

/// The `resolve` of an optional interface (`packed-resolver`, `writes-resolver`), where the
/// component exports it at a compatible version.
fn optional_resolve(
    component: &Component,
    exports: &[String],
    interface: &str,
) -> Result<Option<ComponentExportIndex>, LoadError> {
    let Some(name) = find_export(exports, interface) else {
        return Ok(None);
    };
    check_contract_version(export_version(name))?;
    let iface =
        component
            .get_export_index(None, name)
            .ok_or_else(|| LoadError::WrongSignature {
                function: "resolve",
                detail: format!("{name} is not an interface"),
            })?;
    component
        .get_export_index(Some(&iface), "resolve")
        .map(Some)
        .ok_or_else(|| LoadError::WrongSignature {
            function: "resolve",
            detail: format!("{name} has no function resolve"),
        })
}

/// The version an export's name carries (`…@1.0.0` → `1.0.0`).
fn export_version(name: &str) -> &str {
    name.split_once('@').map_or("unversioned", |(_, v)| v)
}

/// Finds the exported contract interface and checks its version against ours.
fn find_contract_export(exports: &[String]) -> Result<String, LoadError> {
    let found =
        find_export(exports, RESOLVER_INTERFACE).ok_or_else(|| LoadError::MissingContract {
            expected: RESOLVER_INTERFACE.to_owned(),
            found: exports.to_vec(),
        })?;
    check_contract_version(export_version(found))?;
    Ok(found.clone())
}

/// The major and minor of a contract version (`1.1.0` → (1, 1)).
fn major_minor(version: &str) -> Option<(u64, u64)> {
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Contract 1.1 and later minors of major 1: the policy is sent only what differs.
fn declares_differences_only(version: &str) -> bool {
    matches!(major_minor(version), Some((1, minor)) if minor >= 1)
}

/// Contract 1.3 and later minors of major 1 read packed format 3 (the versions' writes
/// added); 1.2 format 2; earlier revisions (a policy built with an older SDK) only format 1.
fn packed_format(version: &str) -> packed::Format {
    match major_minor(version) {
        Some((1, minor)) if minor >= 3 => packed::Format::V3,
        Some((1, 2)) => packed::Format::V2,
        _ => packed::Format::V1,
    }
}

/// Semver compatibility with [`policy_types::CONTRACT_VERSION`]: same major, and same minor
/// while the major is 0.
pub fn check_contract_version(found: &str) -> Result<(), LoadError> {
    let ours = major_minor(policy_types::CONTRACT_VERSION).expect("our contract version parses");
    let compatible = match major_minor(found) {
        Some((0, minor)) => ours.0 == 0 && ours.1 == minor,
        Some((major, _)) => major == ours.0,
        None => false,
    };
    if compatible {
        Ok(())
    } else {
        Err(LoadError::IncompatibleContract {
            found: found.to_owned(),
            expected: policy_types::CONTRACT_VERSION.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a policy is sent follows the revision it declares: only what differs from 1.1,
    /// packed format 2 from 1.2, and neither for 1.0 or an unreadable version.
    #[test]
    fn the_declared_revision_decides_what_a_policy_is_sent_and_in_which_format() {
        for (version, differences_only, format) in [
            ("1.0.0", false, packed::Format::V1),
            ("1.1.0", true, packed::Format::V1),
            ("1.1.7", true, packed::Format::V1),
            ("1.2.0", true, packed::Format::V2),
            ("1.2.9", true, packed::Format::V2),
            ("1.3.0", true, packed::Format::V3),
            ("1.10.0", true, packed::Format::V3),
            ("2.2.0", false, packed::Format::V1),
            ("one.two", false, packed::Format::V1),
        ] {
            assert_eq!(
                (declares_differences_only(version), packed_format(version)),
                (differences_only, format),
                "{version}"
            );
        }
        assert_eq!(
            packed_format(policy_types::CONTRACT_REVISION),
            packed::Format::LATEST,
            "a policy built with these types reads the latest format"
        );
    }
}
