//! The contract's values as plain serde data, for measuring postcard against the packed format
//! (issue 21). `policy_types`' `serde` feature writes JSON values as embedded raw JSON, which a
//! format that is not self-describing cannot carry; these mirrors keep every JSON text a string.
//!
//! A contract on postcard would derive serde on its own types, so the mirrors are built once,
//! outside the timed code: converting to and from them is not part of postcard's cost.

use policy_packed::{Format, pack_call_ref, pack_resolution, unpack_call, unpack_resolution};
use policy_types as t;
use serde::{Deserialize, Serialize};

use crate::fixtures::{Size, concurrent};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hlc {
    pub wall_ms: u64,
    pub logical: u32,
    pub region: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dot {
    pub region: String,
    pub counter: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResourceType {
    Individual,
    Organization,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// JSON text, as a string.
    pub value: String,
    pub stamp: Hlc,
    pub dot: Dot,
    pub position: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Element {
    pub key: String,
    pub entries: Vec<Entry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FieldValue {
    /// JSON text, as a string.
    Json(String),
    Elements(Vec<Element>),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub stamp: Hlc,
    pub value: FieldValue,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartyVersion {
    pub tenant: String,
    pub party_id: String,
    pub resource_type: ResourceType,
    pub fields: Vec<Field>,
    pub version_vector: Vec<Dot>,
    pub tombstone: Option<Hlc>,
    pub origin_region: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Relation {
    LocalDominates,
    RemoteDominates,
    Equal,
    Concurrent,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    pub tenant: String,
    pub resolving_region: String,
    pub relation: Relation,
    /// The configuration's JSON text, as a string.
    pub config: String,
}

/// `resolve`'s arguments: what the packed call carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    pub context: Context,
    pub local: PartyVersion,
    pub remote: PartyVersion,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Side {
    Local,
    Remote,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryRef {
    pub side: Side,
    pub element: u32,
    pub entry: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Computed {
    pub value: String,
    pub stamp: Hlc,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergedElements {
    pub stamp_from: Side,
    pub elements: Vec<Vec<EntryRef>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MergedValue {
    Copy(Side),
    Elements(MergedElements),
    Computed(Computed),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergedField {
    pub name: String,
    pub value: MergedValue,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergedParty {
    pub tenant: String,
    pub party_id: String,
    pub version_vector: Vec<Dot>,
    pub fields: Vec<MergedField>,
    pub tombstone: Option<Hlc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resolution {
    KeepLocal,
    TakeRemote,
    Merged(MergedParty),
    Reject(String),
}

// Conversions from the contract's types (to build the mirrors) and back (to check a round trip).

impl From<&t::Hlc> for Hlc {
    fn from(h: &t::Hlc) -> Self {
        Hlc {
            wall_ms: h.wall_ms,
            logical: h.logical,
            region: h.region.clone(),
        }
    }
}

impl From<Hlc> for t::Hlc {
    fn from(h: Hlc) -> Self {
        t::Hlc::new(h.wall_ms, h.logical, h.region)
    }
}

impl From<&t::Dot> for Dot {
    fn from(d: &t::Dot) -> Self {
        Dot {
            region: d.region.clone(),
            counter: d.counter,
        }
    }
}

impl From<Dot> for t::Dot {
    fn from(d: Dot) -> Self {
        t::Dot::new(d.region, d.counter)
    }
}

impl From<&t::Field> for Field {
    fn from(f: &t::Field) -> Self {
        Field {
            name: f.name.clone(),
            stamp: (&f.stamp).into(),
            value: match &f.value {
                t::FieldValue::Json(j) => FieldValue::Json(j.clone()),
                t::FieldValue::Elements(es) => FieldValue::Elements(
                    es.iter()
                        .map(|e| Element {
                            key: e.key.clone(),
                            entries: e
                                .entries
                                .iter()
                                .map(|x| Entry {
                                    value: x.value.clone(),
                                    stamp: (&x.stamp).into(),
                                    dot: (&x.dot).into(),
                                    position: x.position,
                                })
                                .collect(),
                        })
                        .collect(),
                ),
            },
        }
    }
}

impl From<Field> for t::Field {
    fn from(f: Field) -> Self {
        t::Field {
            name: f.name,
            stamp: f.stamp.into(),
            value: match f.value {
                FieldValue::Json(j) => t::FieldValue::Json(j),
                FieldValue::Elements(es) => t::FieldValue::Elements(
                    es.into_iter()
                        .map(|e| t::Element {
                            key: e.key,
                            entries: e
                                .entries
                                .into_iter()
                                .map(|x| t::Entry {
                                    value: x.value,
                                    stamp: x.stamp.into(),
                                    dot: x.dot.into(),
                                    position: x.position,
                                })
                                .collect(),
                        })
                        .collect(),
                ),
            },
        }
    }
}

impl From<&t::PartyVersion> for PartyVersion {
    fn from(v: &t::PartyVersion) -> Self {
        PartyVersion {
            tenant: v.tenant.clone(),
            party_id: v.party_id.clone(),
            resource_type: match v.resource_type {
                t::ResourceType::Individual => ResourceType::Individual,
                t::ResourceType::Organization => ResourceType::Organization,
            },
            fields: v.fields.iter().map(Field::from).collect(),
            version_vector: v.version_vector.iter().map(Dot::from).collect(),
            tombstone: v.tombstone.as_ref().map(Hlc::from),
            origin_region: v.origin_region.clone(),
        }
    }
}

impl From<PartyVersion> for t::PartyVersion {
    fn from(v: PartyVersion) -> Self {
        t::PartyVersion {
            tenant: v.tenant,
            party_id: v.party_id,
            resource_type: match v.resource_type {
                ResourceType::Individual => t::ResourceType::Individual,
                ResourceType::Organization => t::ResourceType::Organization,
            },
            fields: v.fields.into_iter().map(t::Field::from).collect(),
            version_vector: v.version_vector.into_iter().map(t::Dot::from).collect(),
            tombstone: v.tombstone.map(t::Hlc::from),
            origin_region: v.origin_region,
        }
    }
}

impl From<&t::Context> for Context {
    fn from(c: &t::Context) -> Self {
        Context {
            tenant: c.tenant.clone(),
            resolving_region: c.resolving_region.clone(),
            relation: match c.relation {
                t::Relation::LocalDominates => Relation::LocalDominates,
                t::Relation::RemoteDominates => Relation::RemoteDominates,
                t::Relation::Equal => Relation::Equal,
                t::Relation::Concurrent => Relation::Concurrent,
            },
            config: c.config.clone(),
        }
    }
}

impl From<Context> for t::Context {
    fn from(c: Context) -> Self {
        t::Context {
            tenant: c.tenant,
            resolving_region: c.resolving_region,
            relation: match c.relation {
                Relation::LocalDominates => t::Relation::LocalDominates,
                Relation::RemoteDominates => t::Relation::RemoteDominates,
                Relation::Equal => t::Relation::Equal,
                Relation::Concurrent => t::Relation::Concurrent,
            },
            config: c.config,
        }
    }
}

fn side(s: t::Side) -> Side {
    match s {
        t::Side::Local => Side::Local,
        t::Side::Remote => Side::Remote,
    }
}

fn t_side(s: Side) -> t::Side {
    match s {
        Side::Local => t::Side::Local,
        Side::Remote => t::Side::Remote,
    }
}

impl From<&t::Resolution> for Resolution {
    fn from(r: &t::Resolution) -> Self {
        match r {
            t::Resolution::KeepLocal => Resolution::KeepLocal,
            t::Resolution::TakeRemote => Resolution::TakeRemote,
            t::Resolution::Reject(why) => Resolution::Reject(why.clone()),
            t::Resolution::Merged(m) => Resolution::Merged(MergedParty {
                tenant: m.tenant.clone(),
                party_id: m.party_id.clone(),
                version_vector: m.version_vector.iter().map(Dot::from).collect(),
                fields: m
                    .fields
                    .iter()
                    .map(|f| MergedField {
                        name: f.name.clone(),
                        value: match &f.value {
                            t::MergedValue::Copy(s) => MergedValue::Copy(side(*s)),
                            t::MergedValue::Elements(e) => MergedValue::Elements(MergedElements {
                                stamp_from: side(e.stamp_from),
                                elements: e
                                    .elements
                                    .iter()
                                    .map(|refs| {
                                        refs.iter()
                                            .map(|x| EntryRef {
                                                side: side(x.side),
                                                element: x.element,
                                                entry: x.entry,
                                            })
                                            .collect()
                                    })
                                    .collect(),
                            }),
                            t::MergedValue::Computed(c) => MergedValue::Computed(Computed {
                                value: c.value.clone(),
                                stamp: (&c.stamp).into(),
                            }),
                        },
                    })
                    .collect(),
                tombstone: m.tombstone.as_ref().map(Hlc::from),
            }),
        }
    }
}

impl From<Resolution> for t::Resolution {
    fn from(r: Resolution) -> Self {
        match r {
            Resolution::KeepLocal => t::Resolution::KeepLocal,
            Resolution::TakeRemote => t::Resolution::TakeRemote,
            Resolution::Reject(why) => t::Resolution::Reject(why),
            Resolution::Merged(m) => t::Resolution::Merged(t::MergedParty {
                tenant: m.tenant,
                party_id: m.party_id,
                version_vector: m.version_vector.into_iter().map(t::Dot::from).collect(),
                fields: m
                    .fields
                    .into_iter()
                    .map(|f| t::MergedField {
                        name: f.name,
                        value: match f.value {
                            MergedValue::Copy(s) => t::MergedValue::Copy(t_side(s)),
                            MergedValue::Elements(e) => {
                                t::MergedValue::Elements(t::MergedElements {
                                    stamp_from: t_side(e.stamp_from),
                                    elements: e
                                        .elements
                                        .into_iter()
                                        .map(|refs| {
                                            refs.into_iter()
                                                .map(|x| t::EntryRef {
                                                    side: t_side(x.side),
                                                    element: x.element,
                                                    entry: x.entry,
                                                })
                                                .collect()
                                        })
                                        .collect(),
                                })
                            }
                            MergedValue::Computed(c) => t::MergedValue::Computed(t::Computed {
                                value: c.value,
                                stamp: c.stamp.into(),
                            }),
                        },
                    })
                    .collect(),
                tombstone: m.tombstone.map(t::Hlc::from),
            }),
        }
    }
}

/// Which versions a call carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// Both versions whole (contract 1.0).
    Whole,
    /// Only what differs between them, as the host sends the default policy (contract 1.1 on).
    Differs,
}

impl Sent {
    pub const ALL: [Sent; 2] = [Sent::Differs, Sent::Whole];

    pub fn name(self) -> &'static str {
        match self {
            Sent::Whole => "whole",
            Sent::Differs => "differs",
        }
    }
}

/// The codec under measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Packed,
    Postcard,
}

impl Codec {
    pub const ALL: [Codec; 2] = [Codec::Packed, Codec::Postcard];

    pub fn name(self) -> &'static str {
        match self {
            Codec::Packed => "packed",
            Codec::Postcard => "postcard",
        }
    }
}

/// One of the four codec steps of a call, or all four in turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The host encodes the call.
    EncodeCall,
    /// The policy's reader decodes it.
    DecodeCall,
    /// The policy encodes its answer.
    EncodeAnswer,
    /// The host decodes the answer.
    DecodeAnswer,
    /// The four in turn: the codec work of one call.
    All,
}

impl Step {
    pub const ALL: [Step; 5] = [
        Step::EncodeCall,
        Step::DecodeCall,
        Step::EncodeAnswer,
        Step::DecodeAnswer,
        Step::All,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::EncodeCall => "encode-call",
            Step::DecodeCall => "decode-call",
            Step::EncodeAnswer => "encode-answer",
            Step::DecodeAnswer => "decode-answer",
            Step::All => "all",
        }
    }
}

/// One conflict's call and the default merge's answer, in both codecs' forms, with the bytes
/// each codec writes for them: everything a step needs, made before any step is timed.
#[derive(Debug)]
pub struct CodecCase {
    pub ctx: t::Context,
    /// The versions as sent.
    pub local: t::PartyVersion,
    pub remote: t::PartyVersion,
    /// The default merge's answer to them.
    pub answer: t::Resolution,
    pub pc_call: Call,
    pub pc_answer: Resolution,
    pub packed_call: Vec<u8>,
    pub packed_answer: Vec<u8>,
    pub postcard_call: Vec<u8>,
    pub postcard_answer: Vec<u8>,
}

impl CodecCase {
    /// The concurrent conflict of `size` (`fixtures::concurrent`), as `sent`.
    pub fn new(size: Size, sent: Sent) -> Self {
        let pair = concurrent(size);
        let ctx = pair.context();
        let (local, remote) = match sent {
            Sent::Whole => (pair.local.clone(), pair.remote.clone()),
            Sent::Differs => host_core::sandbox::strip::strip(&pair.local, &pair.remote)
                .expect("the fixtures have no tombstones")
                .versions(),
        };
        let answer = tmf632_merge::resolve(&ctx, &local, &remote);
        let pc_call = Call {
            context: (&ctx).into(),
            local: (&local).into(),
            remote: (&remote).into(),
        };
        let pc_answer = Resolution::from(&answer);
        let mut packed_call = Vec::new();
        pack_call_ref(&mut packed_call, Format::V2, (&ctx).into(), &local, &remote);
        let mut packed_answer = Vec::new();
        pack_resolution(&mut packed_answer, Format::V2, &answer);
        let postcard_call = postcard::to_stdvec(&pc_call).expect("postcard writes the call");
        let postcard_answer = postcard::to_stdvec(&pc_answer).expect("postcard writes the answer");
        CodecCase {
            ctx,
            local,
            remote,
            answer,
            pc_call,
            pc_answer,
            packed_call,
            packed_answer,
            postcard_call,
            postcard_answer,
        }
    }

    /// Runs `step` once in `codec`. `buf` is the writer's buffer, reused from call to call as
    /// the host and the SDK reuse theirs; what a reader makes is dropped inside the step.
    #[inline(never)]
    pub fn run(&self, codec: Codec, step: Step, buf: &mut Vec<u8>) {
        use std::hint::black_box;
        match (codec, step) {
            (_, Step::All) => {
                for s in [
                    Step::EncodeCall,
                    Step::DecodeCall,
                    Step::EncodeAnswer,
                    Step::DecodeAnswer,
                ] {
                    self.run(codec, s, buf);
                }
            }
            (Codec::Packed, Step::EncodeCall) => pack_call_ref(
                buf,
                Format::V2,
                black_box(&self.ctx).into(),
                black_box(&self.local),
                black_box(&self.remote),
            ),
            (Codec::Packed, Step::DecodeCall) => {
                black_box(unpack_call(black_box(&self.packed_call)).unwrap());
            }
            (Codec::Packed, Step::EncodeAnswer) => {
                pack_resolution(buf, Format::V2, black_box(&self.answer))
            }
            (Codec::Packed, Step::DecodeAnswer) => {
                black_box(unpack_resolution(black_box(&self.packed_answer)).unwrap());
            }
            (Codec::Postcard, Step::EncodeCall) => postcard_into(buf, black_box(&self.pc_call)),
            (Codec::Postcard, Step::DecodeCall) => {
                black_box(postcard::from_bytes::<Call>(black_box(&self.postcard_call)).unwrap());
            }
            (Codec::Postcard, Step::EncodeAnswer) => postcard_into(buf, black_box(&self.pc_answer)),
            (Codec::Postcard, Step::DecodeAnswer) => {
                black_box(
                    postcard::from_bytes::<Resolution>(black_box(&self.postcard_answer)).unwrap(),
                );
            }
        }
        black_box(buf);
    }
}

/// Postcard into `buf`, cleared first and reused as `pack_call` reuses its buffer.
fn postcard_into<T: Serialize>(buf: &mut Vec<u8>, value: &T) {
    let mut out = std::mem::take(buf);
    out.clear();
    *buf = postcard::to_extend(value, out).expect("postcard writes into a vector");
}
