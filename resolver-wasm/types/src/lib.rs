//! The values of the `tmf632:conflict` contract (`wit/policy.wit`) as plain Rust types.
//!
//! One definition serves every side of the boundary: policies convert the guest bindings into
//! these types (moves, no copies), the merge library works on them natively, and hosts hand them
//! to a component directly (feature `wasmtime` derives the component model's `Lift`/`Lower`).
//! Feature `serde` gives the JSON form used in captured-conflict files and stored items.

#![cfg_attr(not(feature = "wasmtime"), deny(unsafe_code))]

mod causality;
#[cfg(feature = "serde")]
mod json;
mod materialize;
pub mod writes;

pub use causality::{VectorOrder, compare_vectors, covers, join_vectors};
pub use materialize::{InvalidResult, materialize, materialize_with};

use std::cmp::Ordering;

#[cfg(feature = "wasmtime")]
use wasmtime::component::{ComponentType, Lift, Lower};

/// The contract version these types describe (the WIT package version).
pub const CONTRACT_VERSION: &str = "1.0.0";
/// The contract revision a policy built with these types declares in `describe`. Revisions keep
/// the 1.0 interface and add agreements: from 1.1 the host sends only what differs between the
/// two versions (fields and elements both hold identically are left out and kept as the local
/// side's); from 1.2 a packed call is in packed format 2 (`policy_packed::Format`). A policy that
/// needs every field (one that derives a field from others) declares "1.0.0" instead.
pub const CONTRACT_REVISION: &str = "1.2.0";
/// The contract revision of a policy that reads each version's writes ([`writes`]): from 1.3 a
/// packed call is in packed format 3, which adds them. A policy that does not read them keeps
/// [`CONTRACT_REVISION`] and is sent less.
pub const WRITES_REVISION: &str = "1.3.0";
/// The name of the exported interface, with its version, as it appears in a component.
pub const RESOLVER_INTERFACE: &str = "tmf632:conflict/resolver@1.0.0";
/// The optional interface that takes `resolve`'s arguments and answer packed into bytes
/// (the `policy-packed` crate). A host that finds it calls it instead of `resolver.resolve`.
pub const PACKED_INTERFACE: &str = "tmf632:conflict/packed-resolver@1.0.0";
/// The optional interface that takes `resolve`'s arguments with each version's writes as typed
/// values (contract revision 1.3, for policies without the packed call: Python, JavaScript).
pub const WRITES_INTERFACE: &str = "tmf632:conflict/writes-resolver@1.0.0";

/// A hybrid-logical-clock stamp, ordered by (wall-ms, logical, region).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "camelCase", deny_unknown_fields)
)]
#[cfg_attr(
    feature = "wasmtime",
    derive(ComponentType, Lift, Lower),
    component(record)
)]
pub struct Hlc {
    #[cfg_attr(feature = "wasmtime", component(name = "wall-ms"))]
    pub wall_ms: u64,
    pub logical: u32,
    pub region: String,
}

impl Hlc {
    pub fn new(wall_ms: u64, logical: u32, region: impl Into<String>) -> Self {
        Hlc {
            wall_ms,
            logical,
            region: region.into(),
        }
    }
}

impl Ord for Hlc {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.wall_ms, self.logical, self.region.as_str()).cmp(&(
            other.wall_ms,
            other.logical,
            other.region.as_str(),
        ))
    }
}

impl PartialOrd for Hlc {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for Hlc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}@{}", self.wall_ms, self.logical, self.region)
    }
}

/// One region's counter: an entry of a version vector, or the write that produced an element.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
#[cfg_attr(
    feature = "wasmtime",
    derive(ComponentType, Lift, Lower),
    component(record)
)]
pub struct Dot {
    pub region: String,
    pub counter: u64,
}

impl Dot {
    pub fn new(region: impl Into<String>, counter: u64) -> Self {
        Dot {
            region: region.into(),
            counter,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "wasmtime",
    derive(ComponentType, Lift, Lower),
    component(enum)
)]
#[cfg_attr(feature = "wasmtime", repr(u8))]
pub enum ResourceType {
    #[cfg_attr(feature = "wasmtime", component(name = "individual"))]
    Individual,
    #[cfg_attr(feature = "wasmtime", component(name = "organization"))]
    Organization,
}

impl ResourceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::Individual => "Individual",
            ResourceType::Organization => "Organization",
        }
    }
}

/// One write of an array element.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "wasmtime",
    derive(ComponentType, Lift, Lower),
    component(record)
)]
pub struct Entry {
    /// JSON text of the element.
    pub value: String,
    pub stamp: Hlc,
    pub dot: Dot,
    pub position: u32,
}

/// An element of an array field, by identity; the visible value is the entry with the greatest stamp.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
#[cfg_attr(
    feature = "wasmtime",
    derive(ComponentType, Lift, Lower),
    component(record)
)]
pub struct Element {
    pub key: String,
    pub entries: Vec<Entry>,
}

impl Element {
    /// The entry whose value is visible: the greatest stamp, then the greatest value text (a
    /// deterministic tie-break for inputs that were not produced by real clocks).
    pub fn visible(&self) -> Option<&Entry> {
        self.entries
            .iter()
            .max_by(|a, b| a.stamp.cmp(&b.stamp).then_with(|| a.value.cmp(&b.value)))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "wasmtime",
    derive(ComponentType, Lift, Lower),
    component(variant)
)]
pub enum FieldValue {
    /// JSON text.
    #[cfg_attr(feature = "wasmtime", component(name = "json"))]
    Json(String),
    #[cfg_attr(feature = "wasmtime", component(name = "elements"))]
    Elements(Vec<Element>),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
#[cfg_attr(
    feature = "wasmtime",
    derive(ComponentType, Lift, Lower),
    component(record)
)]
pub struct Field {
    pub name: String,
    pub stamp: Hlc,
    pub value: FieldValue,
}

/// A party as one region holds it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "camelCase", deny_unknown_fields)
)]
#[cfg_attr(
    feature = "wasmtime",
    derive(ComponentType, Lift, Lower),
    component(record)
)]
pub struct PartyVersion {
    pub tenant: String,
    #[cfg_attr(feature = "wasmtime", component(name = "party-id"))]
    pub party_id: String,
    #[cfg_attr(feature = "wasmtime", component(name = "resource-type"))]
    pub resource_type: ResourceType,
    /// Sorted by name.
    pub fields: Vec<Field>,
    /// Sorted by region.
    #[cfg_attr(feature = "wasmtime", component(name = "version-vector"))]
    pub version_vector: Vec<Dot>,
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub tombstone: Option<Hlc>,
    #[cfg_attr(feature = "wasmtime", component(name = "origin-region"))]
    pub origin_region: String,
}

impl PartyVersion {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields
            .binary_search_by(|f| f.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.fields[i])
    }

    /// The greatest stamp the version carries (fields, element entries and tombstone).
    pub fn max_stamp(&self) -> Option<&Hlc> {
        let fields = self.fields.iter().map(|f| &f.stamp);
        fields.chain(self.tombstone.iter()).max()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[cfg_attr(
    feature = "wasmtime",
    derive(ComponentType, Lift, Lower),
    component(enum)
)]
#[cfg_attr(feature = "wasmtime", repr(u8))]
pub enum Relation {
    #[cfg_attr(feature = "wasmtime", component(name = "local-dominates"))]
    LocalDominates,
    #[cfg_attr(feature = "wasmtime", component(name = "remote-dominates"))]
    RemoteDominates,
    #[cfg_attr(feature = "wasmtime", component(name = "equal"))]
    Equal,
    #[cfg_attr(feature = "wasmtime", component(name = "concurrent"))]
    Concurrent,
}

impl Relation {
    pub fn as_str(self) -> &'static str {
        match self {
            Relation::LocalDominates => "local-dominates",
            Relation::RemoteDominates => "remote-dominates",
            Relation::Equal => "equal",
            Relation::Concurrent => "concurrent",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "camelCase", deny_unknown_fields)
)]
#[cfg_attr(
    feature = "wasmtime",
    derive(ComponentType, Lift, Lower),
    component(record)
)]
pub struct Context {
    pub tenant: String,
    #[cfg_attr(feature = "wasmtime", component(name = "resolving-region"))]
    pub resolving_region: String,
    pub relation: Relation,
    /// The tenant's configuration document (JSON text, `{}` when unset).
    pub config: String,
}

/// A [`Context`] by reference: what a host packs into a call without making an owned copy of
/// the tenant, the region and the configuration first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextRef<'a> {
    pub tenant: &'a str,
    pub resolving_region: &'a str,
    pub relation: Relation,
    pub config: &'a str,
}

impl<'a> From<&'a Context> for ContextRef<'a> {
    fn from(c: &'a Context) -> Self {
        ContextRef {
            tenant: &c.tenant,
            resolving_region: &c.resolving_region,
            relation: c.relation,
            config: &c.config,
        }
    }
}

impl ContextRef<'_> {
    /// The owned context (for a call through the typed interface).
    pub fn to_context(self) -> Context {
        Context {
            tenant: self.tenant.to_owned(),
            resolving_region: self.resolving_region.to_owned(),
            relation: self.relation,
            config: self.config.to_owned(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[cfg_attr(
    feature = "wasmtime",
    derive(ComponentType, Lift, Lower),
    component(enum)
)]
#[cfg_attr(feature = "wasmtime", repr(u8))]
pub enum Side {
    #[cfg_attr(feature = "wasmtime", component(name = "local"))]
    Local,
    #[cfg_attr(feature = "wasmtime", component(name = "remote"))]
    Remote,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
#[cfg_attr(
    feature = "wasmtime",
    derive(ComponentType, Lift, Lower),
    component(record)
)]
pub struct EntryRef {
    pub side: Side,
    pub element: u32,
    pub entry: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "wasmtime",
    derive(ComponentType, Lift, Lower),
    component(record)
)]
pub struct Computed {
    /// JSON text.
    pub value: String,
    pub stamp: Hlc,
}

/// An element-wise merge of an array field.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "camelCase", deny_unknown_fields)
)]
#[cfg_attr(
    feature = "wasmtime",
    derive(ComponentType, Lift, Lower),
    component(record)
)]
pub struct MergedElements {
    /// The input whose stamp for this field the result carries.
    #[cfg_attr(feature = "wasmtime", component(name = "stamp-from"))]
    pub stamp_from: Side,
    pub elements: Vec<Vec<EntryRef>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[cfg_attr(
    feature = "wasmtime",
    derive(ComponentType, Lift, Lower),
    component(variant)
)]
pub enum MergedValue {
    #[cfg_attr(feature = "wasmtime", component(name = "copy"))]
    Copy(Side),
    #[cfg_attr(feature = "wasmtime", component(name = "elements"))]
    Elements(MergedElements),
    #[cfg_attr(feature = "wasmtime", component(name = "computed"))]
    Computed(Computed),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
#[cfg_attr(
    feature = "wasmtime",
    derive(ComponentType, Lift, Lower),
    component(record)
)]
pub struct MergedField {
    pub name: String,
    pub value: MergedValue,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "camelCase", deny_unknown_fields)
)]
#[cfg_attr(
    feature = "wasmtime",
    derive(ComponentType, Lift, Lower),
    component(record)
)]
pub struct MergedParty {
    pub tenant: String,
    #[cfg_attr(feature = "wasmtime", component(name = "party-id"))]
    pub party_id: String,
    #[cfg_attr(feature = "wasmtime", component(name = "version-vector"))]
    pub version_vector: Vec<Dot>,
    pub fields: Vec<MergedField>,
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub tombstone: Option<Hlc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[cfg_attr(
    feature = "wasmtime",
    derive(ComponentType, Lift, Lower),
    component(variant)
)]
pub enum Resolution {
    #[cfg_attr(feature = "wasmtime", component(name = "keep-local"))]
    KeepLocal,
    #[cfg_attr(feature = "wasmtime", component(name = "take-remote"))]
    TakeRemote,
    #[cfg_attr(feature = "wasmtime", component(name = "merged"))]
    Merged(MergedParty),
    #[cfg_attr(feature = "wasmtime", component(name = "reject"))]
    Reject(String),
}

impl MergedParty {
    /// The merge of `local` and `remote` made of `fields` and `tombstone`: their party, with
    /// the join of their version vectors.
    pub fn of(
        local: &PartyVersion,
        remote: &PartyVersion,
        fields: Vec<MergedField>,
        tombstone: Option<Hlc>,
    ) -> Self {
        MergedParty {
            tenant: local.tenant.clone(),
            party_id: local.party_id.clone(),
            version_vector: join_vectors(&local.version_vector, &remote.version_vector),
            fields,
            tombstone,
        }
    }
}

impl Resolution {
    /// A short name of the outcome, as reports and logs print it.
    pub fn kind(&self) -> &'static str {
        match self {
            Resolution::KeepLocal => "keep-local",
            Resolution::TakeRemote => "take-remote",
            Resolution::Merged(_) => "merged",
            Resolution::Reject(_) => "reject",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "camelCase", deny_unknown_fields)
)]
#[cfg_attr(
    feature = "wasmtime",
    derive(ComponentType, Lift, Lower),
    component(record)
)]
pub struct Description {
    pub name: String,
    pub version: String,
    #[cfg_attr(feature = "wasmtime", component(name = "contract-version"))]
    pub contract_version: String,
}
