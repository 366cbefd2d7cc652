//! The packed form of `resolve`'s arguments and answer: one byte string each way instead of a
//! tree of records (`packed-resolver` in `wit/policy.wit`).
//!
//! Why: the canonical ABI lowers every string of a record tree with its own call into the
//! guest's allocator, ~110 ns a string on wasmtime 48, and a typical conflict carries hundreds
//! of strings (BENCHMARKS.md). Packed, the host copies one buffer in and one out; the guest
//! unpacks with its own allocator, without leaving the sandbox.
//!
//! The format (all integers LEB128 varints unless said otherwise, strings a varint length and
//! UTF-8 bytes):
//!
//! - a format byte ([`FORMAT`]);
//! - call: context (tenant, resolving region, relation byte, config), then the local and the
//!   remote version;
//! - version: tenant, party id, resource-type byte, fields (count, then each), version vector
//!   (count, then dots), tombstone (0, or 1 and a stamp), origin region;
//! - field: name, stamp, then 0 and the JSON text, or 1 and the elements (count, each a key and
//!   its entries: value, stamp, dot, position);
//! - stamp: wall-ms, logical, region; dot: region, counter;
//! - a region: 0 and its name where it first appears, afterwards its number in order of first
//!   appearance plus one (three regions spell their names once per call);
//! - answer: 0 keep-local, 1 take-remote, 2 merged (tenant, party id, version vector, fields,
//!   tombstone), 3 reject and the reason; a merged field is its name and 0 and a side byte
//!   (copy), 1 and a side byte and the elements (each a count of entry references: side byte,
//!   element, entry), or 2 and the value and stamp (computed). Side: 0 local, 1 remote.
//!
//! Unpacking checks everything (lengths against what is left, UTF-8, tags, trailing bytes)
//! and answers a [`PackError`] naming the byte where it stopped: a host unpacks what a guest
//! wrote, and a hostile guest must not get further than a refused result.

use crate::{
    Computed, Context, ContextRef, Dot, Element, Entry, EntryRef, Field, FieldValue, Hlc,
    MergedElements, MergedField, MergedParty, MergedValue, PartyVersion, Relation, Resolution,
    ResourceType, Side,
};

/// The first byte of every packed call and answer.
pub const FORMAT: u8 = 1;

/// Packed bytes that do not describe a call or an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackError {
    /// The offset of the byte where unpacking stopped.
    pub at: usize,
    pub what: &'static str,
}

impl std::fmt::Display for PackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "malformed packed data at byte {}: {}",
            self.at, self.what
        )
    }
}

impl std::error::Error for PackError {}

/// Packs `resolve`'s arguments into `out` (cleared first, so a caller can reuse its buffer).
pub fn pack_call(out: &mut Vec<u8>, ctx: &Context, local: &PartyVersion, remote: &PartyVersion) {
    pack_call_ref(out, ctx.into(), local, remote);
}

/// As [`pack_call`], with the context by reference.
pub fn pack_call_ref(
    out: &mut Vec<u8>,
    ctx: ContextRef<'_>,
    local: &PartyVersion,
    remote: &PartyVersion,
) {
    let mut w = Writer::start(out);
    w.context(ctx);
    w.version(local);
    w.version(remote);
}

/// A field as sent in a call that leaves out what both versions hold identically: the whole
/// field, or only some of its elements.
#[derive(Clone, Debug)]
pub enum SentField<'a> {
    Whole(&'a Field),
    Elements(&'a Field, Vec<&'a Element>),
}

/// As [`pack_call`], with each version's fields replaced by `local_fields` and
/// `remote_fields` (views into the versions: nothing is copied but into `out`).
pub fn pack_call_sent<'a>(
    out: &mut Vec<u8>,
    ctx: ContextRef<'a>,
    local: &'a PartyVersion,
    local_fields: &'a [SentField<'a>],
    remote: &'a PartyVersion,
    remote_fields: &'a [SentField<'a>],
) {
    let mut w = Writer::start(out);
    w.context(ctx);
    for (v, fields) in [(local, local_fields), (remote, remote_fields)] {
        w.version_head(v);
        w.count(fields.len());
        for f in fields {
            match f {
                SentField::Whole(f) => w.field(f),
                SentField::Elements(f, elements) => {
                    w.field_head(f);
                    w.byte(1);
                    w.count(elements.len());
                    for e in elements {
                        w.element(e);
                    }
                }
            }
        }
        w.version_tail(v);
    }
}

/// Where the reader's strings come from: each is a checked UTF-8 slice of the bytes being
/// read, and the reader needs it as a `String`.
pub trait Strings {
    fn string(&mut self, s: &str) -> String;

    /// `bytes` as text, if they are UTF-8.
    #[inline]
    fn text<'a>(&self, bytes: &'a [u8]) -> Option<&'a str> {
        std::str::from_utf8(bytes).ok()
    }
}

/// Every string is a copy of its bytes: what the host does with a guest's answer.
pub struct Copied;

impl Strings for Copied {
    #[inline]
    fn string(&mut self, s: &str) -> String {
        s.to_owned()
    }
}

/// Unpacks what [`pack_call`] or [`pack_call_sent`] wrote.
pub fn unpack_call(bytes: &[u8]) -> Result<(Context, PartyVersion, PartyVersion), PackError> {
    unpack_call_with(bytes, Copied)
}

/// [`unpack_call`] with the strings made by `strings`. The Rust SDK's guests use one that hands
/// out strings owning their bytes inside the call itself, which its allocator allows
/// (`policy_sdk`'s arena): unpacking then copies no string at all.
pub fn unpack_call_with<S: Strings>(
    bytes: &[u8],
    strings: S,
) -> Result<(Context, PartyVersion, PartyVersion), PackError> {
    let mut r = Reader::with_strings(bytes, strings)?;
    let ctx = Context {
        tenant: r.str()?,
        resolving_region: r.region()?,
        relation: match r.byte()? {
            0 => Relation::LocalDominates,
            1 => Relation::RemoteDominates,
            2 => Relation::Equal,
            3 => Relation::Concurrent,
            _ => return Err(r.bad_tag("unknown relation")),
        },
        config: r.str()?,
    };
    let local = r.version()?;
    let remote = r.version()?;
    r.finish()?;
    Ok((ctx, local, remote))
}

/// Packs a policy's answer into `out` (cleared first).
pub fn pack_resolution(out: &mut Vec<u8>, resolution: &Resolution) {
    let mut w = Writer::start(out);
    match resolution {
        Resolution::KeepLocal => w.byte(0),
        Resolution::TakeRemote => w.byte(1),
        Resolution::Merged(m) => {
            w.byte(2);
            w.str(&m.tenant);
            w.str(&m.party_id);
            w.dots(&m.version_vector);
            w.count(m.fields.len());
            for f in &m.fields {
                w.str(&f.name);
                match &f.value {
                    MergedValue::Copy(side) => {
                        w.byte(0);
                        w.side(*side);
                    }
                    MergedValue::Elements(e) => {
                        w.byte(1);
                        w.side(e.stamp_from);
                        w.count(e.elements.len());
                        for element in &e.elements {
                            w.count(element.len());
                            for entry in element {
                                w.side(entry.side);
                                w.varint(entry.element.into());
                                w.varint(entry.entry.into());
                            }
                        }
                    }
                    MergedValue::Computed(c) => {
                        w.byte(2);
                        w.str(&c.value);
                        w.hlc(&c.stamp);
                    }
                }
            }
            w.tombstone(m.tombstone.as_ref());
        }
        Resolution::Reject(reason) => {
            w.byte(3);
            w.str(reason);
        }
    }
}

/// Unpacks what [`pack_resolution`] wrote.
pub fn unpack_resolution(bytes: &[u8]) -> Result<Resolution, PackError> {
    let mut r = Reader::with_strings(bytes, Copied)?;
    let resolution = match r.byte()? {
        0 => Resolution::KeepLocal,
        1 => Resolution::TakeRemote,
        2 => {
            let tenant = r.str()?;
            let party_id = r.str()?;
            let version_vector = r.dots()?;
            let n = r.count()?;
            let mut fields = Vec::with_capacity(n);
            for _ in 0..n {
                let name = r.str()?;
                let value = match r.byte()? {
                    0 => MergedValue::Copy(r.side()?),
                    1 => {
                        let stamp_from = r.side()?;
                        let n = r.count()?;
                        let mut elements = Vec::with_capacity(n);
                        for _ in 0..n {
                            let m = r.count()?;
                            let mut refs = Vec::with_capacity(m);
                            for _ in 0..m {
                                refs.push(EntryRef {
                                    side: r.side()?,
                                    element: r.u32()?,
                                    entry: r.u32()?,
                                });
                            }
                            elements.push(refs);
                        }
                        MergedValue::Elements(MergedElements {
                            stamp_from,
                            elements,
                        })
                    }
                    2 => MergedValue::Computed(Computed {
                        value: r.str()?,
                        stamp: r.hlc()?,
                    }),
                    _ => return Err(r.bad_tag("unknown merged-value")),
                };
                fields.push(MergedField { name, value });
            }
            let tombstone = r.tombstone()?;
            Resolution::Merged(MergedParty {
                tenant,
                party_id,
                version_vector,
                fields,
                tombstone,
            })
        }
        3 => Resolution::Reject(r.str()?),
        _ => return Err(r.bad_tag("unknown resolution")),
    };
    r.finish()?;
    Ok(resolution)
}

fn relation_byte(relation: Relation) -> u8 {
    match relation {
        Relation::LocalDominates => 0,
        Relation::RemoteDominates => 1,
        Relation::Equal => 2,
        Relation::Concurrent => 3,
    }
}

struct Writer<'o, 'v> {
    out: &'o mut Vec<u8>,
    /// Regions in order of first appearance (at most a handful: a linear search wins).
    regions: Vec<&'v str>,
}

impl<'o, 'v> Writer<'o, 'v> {
    /// Clears `out` (a caller may reuse its buffer) and writes the format byte.
    fn start(out: &'o mut Vec<u8>) -> Self {
        out.clear();
        out.push(FORMAT);
        Writer {
            out,
            regions: Vec::new(),
        }
    }

    fn byte(&mut self, b: u8) {
        self.out.push(b);
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    fn count(&mut self, n: usize) {
        self.varint(n as u64);
    }

    fn str(&mut self, s: &str) {
        self.count(s.len());
        self.out.extend_from_slice(s.as_bytes());
    }

    fn region(&mut self, region: &'v str) {
        match self.regions.iter().position(|r| *r == region) {
            Some(i) => self.count(i + 1),
            None => {
                self.regions.push(region);
                self.byte(0);
                self.str(region);
            }
        }
    }

    fn side(&mut self, side: Side) {
        self.byte(match side {
            Side::Local => 0,
            Side::Remote => 1,
        });
    }

    fn hlc(&mut self, h: &'v Hlc) {
        self.varint(h.wall_ms);
        self.varint(h.logical.into());
        self.region(&h.region);
    }

    fn dot(&mut self, d: &'v Dot) {
        self.region(&d.region);
        self.varint(d.counter);
    }

    fn dots(&mut self, dots: &'v [Dot]) {
        self.count(dots.len());
        for d in dots {
            self.dot(d);
        }
    }

    fn tombstone(&mut self, tombstone: Option<&'v Hlc>) {
        match tombstone {
            None => self.byte(0),
            Some(h) => {
                self.byte(1);
                self.hlc(h);
            }
        }
    }

    fn context(&mut self, ctx: ContextRef<'v>) {
        self.str(ctx.tenant);
        self.region(ctx.resolving_region);
        self.byte(relation_byte(ctx.relation));
        self.str(ctx.config);
    }

    fn version(&mut self, v: &'v PartyVersion) {
        self.version_head(v);
        self.count(v.fields.len());
        for f in &v.fields {
            self.field(f);
        }
        self.version_tail(v);
    }

    fn version_head(&mut self, v: &'v PartyVersion) {
        self.str(&v.tenant);
        self.str(&v.party_id);
        self.byte(match v.resource_type {
            ResourceType::Individual => 0,
            ResourceType::Organization => 1,
        });
    }

    fn version_tail(&mut self, v: &'v PartyVersion) {
        self.dots(&v.version_vector);
        self.tombstone(v.tombstone.as_ref());
        self.region(&v.origin_region);
    }

    fn field_head(&mut self, f: &'v Field) {
        self.str(&f.name);
        self.hlc(&f.stamp);
    }

    fn field(&mut self, f: &'v Field) {
        self.field_head(f);
        match &f.value {
            FieldValue::Json(text) => {
                self.byte(0);
                self.str(text);
            }
            FieldValue::Elements(elements) => {
                self.byte(1);
                self.count(elements.len());
                for e in elements {
                    self.element(e);
                }
            }
        }
    }

    fn element(&mut self, e: &'v Element) {
        self.str(&e.key);
        self.count(e.entries.len());
        for n in &e.entries {
            self.str(&n.value);
            self.hlc(&n.stamp);
            self.dot(&n.dot);
            self.varint(n.position.into());
        }
    }
}

struct Reader<'b, S> {
    bytes: &'b [u8],
    pos: usize,
    /// The region names defined so far, in order.
    regions: Vec<&'b str>,
    strings: S,
}

impl<'b, S: Strings> Reader<'b, S> {
    fn with_strings(bytes: &'b [u8], strings: S) -> Result<Self, PackError> {
        let mut r = Reader {
            bytes,
            pos: 0,
            regions: Vec::new(),
            strings,
        };
        if r.byte()? != FORMAT {
            return Err(PackError {
                at: 0,
                what: "unknown format (expected 1)",
            });
        }
        Ok(r)
    }

    fn error(&self, what: &'static str) -> PackError {
        PackError { at: self.pos, what }
    }

    /// The tag byte just read names nothing.
    fn bad_tag(&self, what: &'static str) -> PackError {
        PackError {
            at: self.pos - 1,
            what,
        }
    }

    fn finish(&self) -> Result<(), PackError> {
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(self.error("trailing bytes"))
        }
    }

    #[inline(always)]
    fn byte(&mut self) -> Result<u8, PackError> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or_else(|| self.error("ends too early"))?;
        self.pos += 1;
        Ok(b)
    }

    #[inline(always)]
    fn varint(&mut self) -> Result<u64, PackError> {
        // Most integers in a call (lengths, counts, region numbers) fit in one byte.
        if let Some(&b) = self.bytes.get(self.pos)
            && b & 0x80 == 0
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        self.varint_long()
    }

    #[inline(never)]
    fn varint_long(&mut self) -> Result<u64, PackError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(self.error("integer overflows 64 bits"));
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.error("integer overflows 64 bits"))
    }

    fn u32(&mut self) -> Result<u32, PackError> {
        let v = self.varint()?;
        u32::try_from(v).map_err(|_| self.error("integer overflows 32 bits"))
    }

    /// A count of items that take at least a byte each: never more than the bytes left, so a
    /// hostile count cannot make the reader allocate more than the input's size.
    #[inline(always)]
    fn count(&mut self) -> Result<usize, PackError> {
        let n = self.varint()?;
        match usize::try_from(n) {
            Ok(n) if n <= self.bytes.len() - self.pos => Ok(n),
            _ => Err(self.error("count larger than the bytes left")),
        }
    }

    #[inline(always)]
    fn slice(&mut self) -> Result<&'b str, PackError> {
        let n = self.count()?;
        let bytes: &'b [u8] = self.bytes;
        let s = self
            .strings
            .text(&bytes[self.pos..self.pos + n])
            .ok_or_else(|| self.error("string is not UTF-8"))?;
        self.pos += n;
        Ok(s)
    }

    #[inline(always)]
    fn str(&mut self) -> Result<String, PackError> {
        let s = self.slice()?;
        Ok(self.strings.string(s))
    }

    #[inline(always)]
    fn region(&mut self) -> Result<String, PackError> {
        let name = match self.varint()? {
            0 => {
                let name = self.slice()?;
                self.regions.push(name);
                name
            }
            i => match usize::try_from(i - 1)
                .ok()
                .and_then(|i| self.regions.get(i))
            {
                Some(name) => name,
                None => return Err(self.error("region number not defined yet")),
            },
        };
        Ok(self.strings.string(name))
    }

    fn side(&mut self) -> Result<Side, PackError> {
        match self.byte()? {
            0 => Ok(Side::Local),
            1 => Ok(Side::Remote),
            _ => Err(self.bad_tag("unknown side")),
        }
    }

    #[inline(always)]
    fn hlc(&mut self) -> Result<Hlc, PackError> {
        Ok(Hlc {
            wall_ms: self.varint()?,
            logical: self.u32()?,
            region: self.region()?,
        })
    }

    #[inline(always)]
    fn dot(&mut self) -> Result<Dot, PackError> {
        Ok(Dot {
            region: self.region()?,
            counter: self.varint()?,
        })
    }

    fn dots(&mut self) -> Result<Vec<Dot>, PackError> {
        let n = self.count()?;
        let mut dots = Vec::with_capacity(n);
        for _ in 0..n {
            dots.push(self.dot()?);
        }
        Ok(dots)
    }

    fn tombstone(&mut self) -> Result<Option<Hlc>, PackError> {
        match self.byte()? {
            0 => Ok(None),
            1 => Ok(Some(self.hlc()?)),
            _ => Err(self.bad_tag("unknown option tag")),
        }
    }

    fn version(&mut self) -> Result<PartyVersion, PackError> {
        let tenant = self.str()?;
        let party_id = self.str()?;
        let resource_type = match self.byte()? {
            0 => ResourceType::Individual,
            1 => ResourceType::Organization,
            _ => return Err(self.bad_tag("unknown resource type")),
        };
        let n = self.count()?;
        let mut fields = Vec::with_capacity(n);
        for _ in 0..n {
            let name = self.str()?;
            let stamp = self.hlc()?;
            let value = match self.byte()? {
                0 => FieldValue::Json(self.str()?),
                1 => {
                    let n = self.count()?;
                    let mut elements = Vec::with_capacity(n);
                    for _ in 0..n {
                        let key = self.str()?;
                        let m = self.count()?;
                        let mut entries = Vec::with_capacity(m);
                        for _ in 0..m {
                            entries.push(Entry {
                                value: self.str()?,
                                stamp: self.hlc()?,
                                dot: self.dot()?,
                                position: self.u32()?,
                            });
                        }
                        elements.push(Element { key, entries });
                    }
                    FieldValue::Elements(elements)
                }
                _ => return Err(self.bad_tag("unknown field-value")),
            };
            fields.push(Field { name, stamp, value });
        }
        Ok(PartyVersion {
            tenant,
            party_id,
            resource_type,
            fields,
            version_vector: self.dots()?,
            tombstone: self.tombstone()?,
            origin_region: self.region()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hlc(ms: u64, region: &str) -> Hlc {
        Hlc::new(ms, 0, region)
    }

    fn version(region: &str) -> PartyVersion {
        PartyVersion {
            tenant: "acme".into(),
            party_id: "p-1".into(),
            resource_type: ResourceType::Organization,
            fields: vec![
                Field {
                    name: "contactMedium".into(),
                    stamp: hlc(5, region),
                    value: FieldValue::Elements(vec![Element {
                        key: "id:1".into(),
                        entries: vec![Entry {
                            value: r#"{"id":"1","mediumType":"email"}"#.into(),
                            stamp: hlc(5, region),
                            dot: Dot::new(region, 3),
                            position: 7,
                        }],
                    }]),
                },
                Field {
                    name: "name".into(),
                    stamp: Hlc::new(u64::MAX, u32::MAX, "ap-south-é"),
                    value: FieldValue::Json("\"Ünïcode\"".into()),
                },
            ],
            version_vector: vec![Dot::new("eu", 2), Dot::new(region, u64::MAX)],
            tombstone: Some(hlc(1, "eu")),
            origin_region: region.into(),
        }
    }

    fn call() -> (Context, PartyVersion, PartyVersion) {
        let ctx = Context {
            tenant: "acme".into(),
            resolving_region: "eu".into(),
            relation: Relation::Concurrent,
            config: r#"{"a":1}"#.into(),
        };
        (ctx, version("eu"), version("na"))
    }

    fn merged() -> Resolution {
        Resolution::Merged(MergedParty {
            tenant: "acme".into(),
            party_id: "p-1".into(),
            version_vector: vec![Dot::new("eu", 2), Dot::new("na", 9)],
            fields: vec![
                MergedField {
                    name: "a".into(),
                    value: MergedValue::Copy(Side::Remote),
                },
                MergedField {
                    name: "b".into(),
                    value: MergedValue::Elements(MergedElements {
                        stamp_from: Side::Local,
                        elements: vec![
                            vec![EntryRef {
                                side: Side::Remote,
                                element: 300,
                                entry: 0,
                            }],
                            vec![],
                        ],
                    }),
                },
                MergedField {
                    name: "c".into(),
                    value: MergedValue::Computed(Computed {
                        value: "1".into(),
                        stamp: hlc(9, "na"),
                    }),
                },
            ],
            tombstone: None,
        })
    }

    #[test]
    fn calls_and_answers_come_back_unchanged() {
        let (ctx, local, remote) = call();
        let mut buf = vec![9, 9, 9];
        pack_call(&mut buf, &ctx, &local, &remote);
        assert_eq!(unpack_call(&buf).unwrap(), (ctx, local, remote));
        for r in [
            Resolution::KeepLocal,
            Resolution::TakeRemote,
            Resolution::Reject("no".into()),
            merged(),
        ] {
            pack_resolution(&mut buf, &r);
            assert_eq!(unpack_resolution(&buf).unwrap(), r);
        }
    }

    #[test]
    fn a_call_sent_with_views_unpacks_as_the_versions_it_describes() {
        let (ctx, local, remote) = call();
        let FieldValue::Elements(elements) = &remote.fields[0].value else {
            unreachable!()
        };
        let local_sent = [SentField::Whole(&local.fields[1])];
        let remote_sent = [SentField::Elements(&remote.fields[0], vec![&elements[0]])];
        let mut buf = Vec::new();
        pack_call_sent(
            &mut buf,
            (&ctx).into(),
            &local,
            &local_sent,
            &remote,
            &remote_sent,
        );
        let (c, l, r) = unpack_call(&buf).unwrap();
        assert_eq!(c, ctx);
        assert_eq!(l.fields, vec![local.fields[1].clone()]);
        assert_eq!(r.fields, vec![remote.fields[0].clone()]);
        assert_eq!(
            (l.version_vector, r.origin_region),
            (local.version_vector, remote.origin_region)
        );
    }

    #[test]
    fn regions_are_spelled_once() {
        let (ctx, local, remote) = call();
        let mut buf = Vec::new();
        pack_call(&mut buf, &ctx, &local, &remote);
        let text = String::from_utf8_lossy(&buf);
        assert_eq!(text.matches("eu").count(), 1, "{text}");
        assert_eq!(text.matches("ap-south-é").count(), 1, "{text}");
    }

    /// The Rust SDK's guests make strings that own their bytes inside the call (`policy_sdk`'s
    /// arena), which is only sound if every string the reader asks for is a slice of the call
    /// itself, region names included, and never a temporary.
    #[test]
    fn every_string_of_a_call_is_asked_for_as_a_slice_of_the_call() {
        struct Within {
            call: std::ops::Range<usize>,
            asked: usize,
        }
        impl Strings for &mut Within {
            fn string(&mut self, s: &str) -> String {
                let at = s.as_ptr() as usize;
                assert!(
                    self.call.contains(&at) && at + s.len() <= self.call.end,
                    "{s:?} is not a slice of the call"
                );
                self.asked += 1;
                s.to_owned()
            }
        }
        let (ctx, local, remote) = call();
        let mut buf = Vec::new();
        pack_call(&mut buf, &ctx, &local, &remote);
        let mut within = Within {
            call: buf.as_ptr_range().start as usize..buf.as_ptr_range().end as usize,
            asked: 0,
        };
        let unpacked = unpack_call_with(&buf, &mut within).unwrap();
        assert_eq!(unpacked, (ctx, local, remote));
        // Every string of the three values, regions each time they are named.
        let strings = |v: &PartyVersion| {
            3 + v.version_vector.len()
                + usize::from(v.tombstone.is_some())
                + v.fields
                    .iter()
                    .map(|f| match &f.value {
                        FieldValue::Json(_) => 3,
                        FieldValue::Elements(es) => {
                            2 + es.iter().map(|e| 1 + 3 * e.entries.len()).sum::<usize>()
                        }
                    })
                    .sum::<usize>()
        };
        assert_eq!(
            within.asked,
            3 + strings(&unpacked.1) + strings(&unpacked.2),
            "a string was made without asking"
        );
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_an_error_or_a_value_never_a_panic() {
        let (ctx, local, remote) = call();
        let mut call_bytes = Vec::new();
        pack_call(&mut call_bytes, &ctx, &local, &remote);
        let mut answer_bytes = Vec::new();
        pack_resolution(&mut answer_bytes, &merged());
        for bytes in [&call_bytes, &answer_bytes] {
            for cut in 0..bytes.len() {
                let short = &bytes[..cut];
                assert!(unpack_call(short).is_err(), "a call cut at {cut} unpacked");
                assert!(
                    unpack_resolution(short).is_err(),
                    "an answer cut at {cut} unpacked"
                );
            }
            for i in 0..bytes.len() {
                for flip in [0x01, 0x80, 0xff] {
                    let mut bad = bytes.clone();
                    bad[i] ^= flip;
                    let _ = unpack_call(&bad);
                    let _ = unpack_resolution(&bad);
                }
            }
        }
        let mut long = answer_bytes.clone();
        long.push(0);
        assert_eq!(unpack_resolution(&long).unwrap_err().what, "trailing bytes");
    }

    #[test]
    fn varints_round_trip_and_overlong_ones_are_refused_where_they_stop() {
        let read = |bytes: &[u8]| {
            let mut with_format = vec![FORMAT];
            with_format.extend_from_slice(bytes);
            let mut r = Reader::with_strings(&with_format, Copied).unwrap();
            r.varint().map(|v| (v, r.pos)).map_err(|e| (e.at, e.what))
        };
        for v in [
            0,
            1,
            127,
            128,
            300,
            1 << 35,
            1_764_000_000_000,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut out = vec![FORMAT];
            Writer::start(&mut out).varint(v);
            assert_eq!(read(&out[1..]), Ok((v, out.len())), "{v}");
        }
        // Cut short after a continuation byte; ten bytes whose last has more than the top
        // bit; eleven bytes.
        assert_eq!(read(&[0x80, 0x80]), Err((3, "ends too early")));
        let mut ten = [0xff; 10];
        ten[9] = 0x02;
        assert_eq!(read(&ten), Err((11, "integer overflows 64 bits")));
        assert_eq!(read(&[0xff; 11]), Err((11, "integer overflows 64 bits")));
    }

    #[test]
    fn hostile_counts_and_references_are_refused_with_their_offset() {
        // format, merged, tenant of length 2^62.
        let huge = [1, 2, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40];
        let e = unpack_resolution(&huge).unwrap_err();
        assert_eq!((e.at, e.what), (11, "count larger than the bytes left"));
        // format, reject, a reason that is not UTF-8.
        let e = unpack_resolution(&[1, 3, 1, 0xff]).unwrap_err();
        assert_eq!(e.what, "string is not UTF-8");
        // format, merged, "", "", one dot naming region 2 before any is defined.
        let e = unpack_resolution(&[1, 2, 0, 0, 1, 2, 0]).unwrap_err();
        assert_eq!(e.what, "region number not defined yet");
        assert_eq!(unpack_resolution(&[2, 0]).unwrap_err().at, 0);
        assert_eq!(
            unpack_resolution(&[1, 0xff]).unwrap_err().what,
            "unknown resolution"
        );
    }
}
