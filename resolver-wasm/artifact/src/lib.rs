//! Policy components built from source by this crate's build script.

/// The default TMF632 policy (`resolver-wasm/default-policy`).
pub const DEFAULT_POLICY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/default-policy.wasm"));

/// The example policy where NA is the system of record for status
/// (`resolver-wasm/examples/na-status`).
pub const NA_STATUS_POLICY: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/na-status-policy.wasm"));
