//! Moves between the generated bindings and the `policy_types` values. Every string and vector
//! is moved, not copied: the conversion costs a walk over the structure, not its bytes.

use crate::Policy;
use crate::bindings::exports::tmf632::conflict::resolver as b;
use policy_types as t;

fn hlc(h: b::Hlc) -> t::Hlc {
    t::Hlc {
        wall_ms: h.wall_ms,
        logical: h.logical,
        region: h.region,
    }
}

fn hlc_out(h: t::Hlc) -> b::Hlc {
    b::Hlc {
        wall_ms: h.wall_ms,
        logical: h.logical,
        region: h.region,
    }
}

fn dot(d: b::Dot) -> t::Dot {
    t::Dot {
        region: d.region,
        counter: d.counter,
    }
}

fn dot_out(d: t::Dot) -> b::Dot {
    b::Dot {
        region: d.region,
        counter: d.counter,
    }
}

fn element(e: b::Element) -> t::Element {
    t::Element {
        key: e.key,
        entries: e
            .entries
            .into_iter()
            .map(|n| t::Entry {
                value: n.value,
                stamp: hlc(n.stamp),
                dot: dot(n.dot),
                position: n.position,
            })
            .collect(),
    }
}

fn field(f: b::Field) -> t::Field {
    t::Field {
        name: f.name,
        stamp: hlc(f.stamp),
        value: match f.value {
            b::FieldValue::Json(s) => t::FieldValue::Json(s),
            b::FieldValue::Elements(e) => {
                t::FieldValue::Elements(e.into_iter().map(element).collect())
            }
        },
    }
}

fn party(p: b::PartyVersion) -> t::PartyVersion {
    t::PartyVersion {
        tenant: p.tenant,
        party_id: p.party_id,
        resource_type: match p.resource_type {
            b::ResourceType::Individual => t::ResourceType::Individual,
            b::ResourceType::Organization => t::ResourceType::Organization,
        },
        fields: p.fields.into_iter().map(field).collect(),
        version_vector: p.version_vector.into_iter().map(dot).collect(),
        tombstone: p.tombstone.map(hlc),
        origin_region: p.origin_region,
    }
}

fn context(c: b::Context) -> t::Context {
    t::Context {
        tenant: c.tenant,
        resolving_region: c.resolving_region,
        relation: match c.relation {
            b::Relation::LocalDominates => t::Relation::LocalDominates,
            b::Relation::RemoteDominates => t::Relation::RemoteDominates,
            b::Relation::Equal => t::Relation::Equal,
            b::Relation::Concurrent => t::Relation::Concurrent,
        },
        config: c.config,
    }
}

fn side_out(s: t::Side) -> b::Side {
    match s {
        t::Side::Local => b::Side::Local,
        t::Side::Remote => b::Side::Remote,
    }
}

fn merged_out(m: t::MergedParty) -> b::MergedParty {
    b::MergedParty {
        tenant: m.tenant,
        party_id: m.party_id,
        version_vector: m.version_vector.into_iter().map(dot_out).collect(),
        fields: m
            .fields
            .into_iter()
            .map(|f| b::MergedField {
                name: f.name,
                value: match f.value {
                    t::MergedValue::Copy(s) => b::MergedValue::Copy(side_out(s)),
                    t::MergedValue::Elements(m) => b::MergedValue::Elements(b::MergedElements {
                        stamp_from: side_out(m.stamp_from),
                        elements: m
                            .elements
                            .into_iter()
                            .map(|refs| {
                                refs.into_iter()
                                    .map(|r| b::EntryRef {
                                        side: side_out(r.side),
                                        element: r.element,
                                        entry: r.entry,
                                    })
                                    .collect()
                            })
                            .collect(),
                    }),
                    t::MergedValue::Computed(c) => b::MergedValue::Computed(b::Computed {
                        value: c.value,
                        stamp: hlc_out(c.stamp),
                    }),
                },
            })
            .collect(),
        tombstone: m.tombstone.map(hlc_out),
    }
}

#[doc(hidden)]
pub fn __describe<P: Policy>() -> b::Description {
    let d = P::describe();
    b::Description {
        name: d.name,
        version: d.version,
        contract_version: d.contract_version,
    }
}

#[doc(hidden)]
pub fn __resolve<P: Policy>(
    ctx: b::Context,
    local: b::PartyVersion,
    remote: b::PartyVersion,
) -> b::Resolution {
    let (ctx, local, remote) = (context(ctx), party(local), party(remote));
    match P::resolve(&ctx, &local, &remote) {
        t::Resolution::KeepLocal => b::Resolution::KeepLocal,
        t::Resolution::TakeRemote => b::Resolution::TakeRemote,
        t::Resolution::Merged(m) => b::Resolution::Merged(merged_out(m)),
        t::Resolution::Reject(reason) => b::Resolution::Reject(reason),
    }
}

/// `packed-resolver.resolve`: the same policy on the packed form of the call. Arguments the
/// host packed wrongly are a host bug; the policy answers with a rejection that names it, so
/// that the conflict is kept with the reason.
#[doc(hidden)]
pub fn __resolve_packed<P: Policy>(call: Vec<u8>) -> Vec<u8> {
    let resolution = match t::packed::unpack_call(&call) {
        Ok((ctx, local, remote)) => P::resolve(&ctx, &local, &remote),
        Err(e) => t::Resolution::Reject(format!("the policy could not read its call: {e}")),
    };
    let mut out = Vec::with_capacity(256);
    t::packed::pack_resolution(&mut out, &resolution);
    out
}
