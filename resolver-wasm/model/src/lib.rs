//! The TMF632 party model: how a party (TMF JSON) becomes the stamped, versioned value the
//! contract describes, how writes change it, and how it turns back into TMF JSON.
//!
//! Every top-level member but `id` is a field with the hybrid-logical-clock stamp of the write
//! that last set it. Arrays of objects are kept element by element, keyed by `id` where the
//! element has one and by a digest of its content where it does not (v4 items have no ids);
//! each element remembers the write (dot) that produced it, which is what lets a merge tell a
//! removal from an element the other region has not seen yet.

mod clock;
#[cfg(feature = "gen")]
pub mod generate;
mod tmf;
mod write;

pub use clock::HlcClock;
pub use tmf::{canonical_json, element_key, to_tmf, visible_elements};
pub use write::{WriteOutcome, Writer, delete, is_stale, new_party, tick, write_fields};
