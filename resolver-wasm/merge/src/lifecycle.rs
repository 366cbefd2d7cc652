//! Party status lifecycles (TMF632): Individual initialized → validated → deceased,
//! Organization initialized → validated → closed. v4.0.0 spells `deceaded`; both are accepted.

use policy_types::ResourceType;

/// The rank of a status (JSON text) in its resource's lifecycle; unknown statuses rank lowest,
/// so a known lifecycle state is never overwritten by a concurrent unknown one.
pub fn lifecycle_rank(resource: ResourceType, status_json: &str) -> u8 {
    let status = status_json.trim().trim_matches('"');
    match (resource, status) {
        (_, "initialized") => 1,
        (_, "validated") => 2,
        (ResourceType::Individual, "deceased" | "deceaded") => 3,
        (ResourceType::Organization, "closed") => 3,
        _ => 0,
    }
}

/// Whether a status (JSON text) is the last state of its resource's lifecycle: an Individual's
/// `deceased` (`deceaded`), an Organization's `closed`.
pub fn is_terminal(resource: ResourceType, status_json: &str) -> bool {
    lifecycle_rank(resource, status_json) == 3
}
