//! A policy of contract revision 1.3 built for the world `writes-policy`, with bindings of its
//! own, as a Python or JavaScript policy is: no packed call, so the hosts send it each
//! version's writes through the typed `writes-resolver.resolve`. It rejects every conflict
//! with what it was sent, so a test reads it from the reason: per side the fields sent, then
//! the writes table (`fields`, `tombstone`, `writes` with their contexts). Called at
//! `resolver.resolve` instead, it says so.
mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "writes-policy",
    });
}

use bindings::exports::tmf632::conflict::{resolver, writes_resolver};
use resolver::{Dot, PartyVersion, Resolution};
use writes_resolver::Writes;

struct TypedWrites;

impl resolver::Guest for TypedWrites {
    fn describe() -> resolver::Description {
        resolver::Description {
            name: "typed-writes".into(),
            version: "1.0.0".into(),
            contract_version: "1.3.0".into(),
        }
    }
    fn resolve(_: resolver::Context, _: PartyVersion, _: PartyVersion) -> Resolution {
        Resolution::Reject("called without writes".into())
    }
}

fn dot(d: &Dot) -> String {
    format!("{}:{}", d.region, d.counter)
}

fn side(v: &PartyVersion, w: &Writes) -> String {
    let sent: Vec<&str> = v.fields.iter().map(|f| f.name.as_str()).collect();
    let fields: Vec<String> = w
        .fields
        .iter()
        .map(|f| format!("{}@{}", f.name, dot(&f.dot)))
        .collect();
    let writes: Vec<String> = w
        .writes
        .iter()
        .map(|x| {
            let context: Vec<String> = x.context.iter().map(dot).collect();
            format!("{}<[{}]", dot(&x.dot), context.join(" "))
        })
        .collect();
    format!(
        "sent [{}] fields [{}] tombstone {} writes [{}]",
        sent.join(" "),
        fields.join(" "),
        w.tombstone.as_ref().map_or("-".into(), dot),
        writes.join(" ")
    )
}

impl writes_resolver::Guest for TypedWrites {
    fn resolve(
        _: resolver::Context,
        local: PartyVersion,
        local_writes: Writes,
        remote: PartyVersion,
        remote_writes: Writes,
    ) -> Resolution {
        Resolution::Reject(format!(
            "local: {}; remote: {}",
            side(&local, &local_writes),
            side(&remote, &remote_writes)
        ))
    }
}

bindings::export!(TypedWrites with_types_in bindings);
