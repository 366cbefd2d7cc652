//! Contract revision 1.3: rejects every conflict with what the host told it of the writes, as
//! `name=Change` for each field either side was sent (sorted by name), then
//! `status seen na: L/R` (`-` where unknown).
use policy_sdk::fields::{change, seen};
use policy_sdk::types::writes::Writes;
use policy_sdk::types::*;
struct FieldChanges;
impl policy_sdk::Policy for FieldChanges {
    fn describe() -> Description {
        policy_sdk::description_with_writes("field-changes", "1.0.0")
    }
    fn resolve(_: &Context, _: &PartyVersion, _: &PartyVersion) -> Resolution {
        Resolution::Reject("called without writes".into())
    }
    fn resolve_with_writes(
        _: &Context,
        local: (&PartyVersion, &Writes),
        remote: (&PartyVersion, &Writes),
    ) -> Resolution {
        let mut names: Vec<&str> = (local.0.fields.iter())
            .chain(&remote.0.fields)
            .map(|f| f.name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        let mut said: Vec<String> = names
            .iter()
            .map(|n| format!("{n}={:?}", change(local, remote, n)))
            .collect();
        let na = |side| seen(side, "status", "na").map_or("-".to_owned(), |n| n.to_string());
        said.push(format!("status seen na: {}/{}", na(local), na(remote)));
        Resolution::Reject(said.join(" "))
    }
}
policy_sdk::export_policy!(FieldChanges);
