//! The sandbox's errors. Each names what was expected, what was found and, where it helps,
//! what to do.

use thiserror::Error;

/// The engine could not be configured.
#[derive(Debug, Error)]
#[error("configuring the wasm engine: {0}")]
pub struct EngineError(pub String);

/// Why a policy component was refused at load time.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("the component is {size} bytes; the limit is {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error(
        "not a WebAssembly component ({found}); build the policy as a component (see docs/writing-a-policy.md)"
    )]
    NotAComponent { found: &'static str },
    #[error("the component does not compile: {0:#}")]
    Compile(#[source] wasmtime::Error),
    #[error("the compiled component could not be serialized for the artifact cache: {0:#}")]
    Precompile(#[source] wasmtime::Error),
    #[error(
        "the component imports {}, which policies may not use (allowed: {allowed}); a policy gets everything it needs as arguments",
        .imports.join(", ")
    )]
    ForbiddenImports {
        imports: Vec<String>,
        allowed: String,
    },
    #[error("the component does not export {expected}; it exports: {}", if .found.is_empty() { "nothing".to_owned() } else { .found.join(", ") })]
    MissingContract {
        expected: String,
        found: Vec<String>,
    },
    #[error("the component implements contract {found}, this host speaks {expected}")]
    IncompatibleContract { found: String, expected: String },
    #[error("the component's {function} does not have the contract's signature: {detail}")]
    WrongSignature {
        function: &'static str,
        detail: String,
    },
    #[error("the component failed while starting or describing itself: {0}")]
    Startup(String),
    /// `describe` did not answer: it ran past the call's deadline (or fuel budget), exhausted
    /// the memory cap or trapped.
    #[error(
        "the component's describe did not answer: {0}; describe returns the policy's name and contract version and should compute nothing"
    )]
    Describe(#[source] CallFailure),
    #[error("reading the precompiled artifact cache: {0}")]
    Cache(#[source] std::io::Error),
    /// No compiler for that target in this build, or not a target triple.
    #[error(
        "cannot compile for {0}: {1:#} (this build compiles for its own architecture; for aarch64 build host-cli with `--features cross`)"
    )]
    Target(String, #[source] wasmtime::Error),
}

/// The budget a call ran out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// The serving deadline (the engine's epoch interruption).
    Deadline(std::time::Duration),
    /// The fuel budget of a metered engine (the law checker's).
    Fuel(u64),
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Budget::Deadline(d) => write!(f, "deadline {d:?}"),
            Budget::Fuel(fuel) => write!(f, "fuel budget {fuel}"),
        }
    }
}

/// Why a policy call produced no usable resolution. The instance that failed is discarded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CallFailure {
    #[error("the policy ran past its deadline ({0})")]
    Timeout(Budget),
    #[error("the policy exceeded its memory cap: {0}")]
    MemoryExhausted(String),
    /// The guest trapped: `code` is wasmtime's kind of trap where there is one (an
    /// `unreachable` from a panic, an out-of-bounds access, …), `detail` the engine's account.
    #[error("the policy trapped: {detail}")]
    Trap {
        code: Option<wasmtime::Trap>,
        detail: String,
    },
    #[error("the policy returned an invalid result: {0}")]
    InvalidResult(String),
    /// A value the policy computed is not what the TMF632 schema allows for its member.
    #[error(
        "the policy computed member {member} of the {resource}, which is not valid TMF632: {error}"
    )]
    InvalidParty {
        resource: String,
        member: String,
        /// The schema's complaint, per release, without the value (it is personal data).
        error: String,
    },
    /// The party the answer describes is larger than the store's item limit.
    #[error(
        "the policy's result is {size} bytes as JSON, over the {limit}-byte item limit of the store; nothing was written"
    )]
    TooLarge { size: usize, limit: usize },
}

impl CallFailure {
    /// A stable short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            CallFailure::Timeout(_) => "timeout",
            CallFailure::MemoryExhausted(_) => "memory",
            CallFailure::Trap { .. } => "trap",
            CallFailure::InvalidResult(_) => "invalid-result",
            CallFailure::InvalidParty { .. } => "invalid-party",
            CallFailure::TooLarge { .. } => "too-large",
        }
    }
}
