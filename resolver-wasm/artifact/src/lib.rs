//! The default TMF632 policy component (`resolver-wasm/default-policy`), built from source.

/// The component's bytes.
pub const DEFAULT_POLICY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/default-policy.wasm"));
