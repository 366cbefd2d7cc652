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
//! - a format byte ([`Format`]: 1, 2 or 3);
//! - call: context (tenant, resolving region, relation byte, config), then the local and the
//!   remote version; format 3 then the local and the remote version's writes;
//! - version: tenant, party id, resource-type byte, fields (count, then each), version vector
//!   (count, then dots), tombstone (0, or 1 and a stamp), origin region;
//! - field: name, stamp, then 0 and the JSON text, or 1 and the elements (count, each a key and
//!   its entries: value, stamp, dot, position);
//! - stamp: wall-ms (format 2: eight little-endian bytes; format 1: a varint), logical,
//!   region; dot: region, counter;
//! - writes (format 3; `policy_types::writes`), of one version as sent: for each field sent, in
//!   order, 0 (its write unknown) or 1 and its write's dot; the tombstone's write, 0 (none or
//!   unknown) or 1 and a dot; then the writes sent (count, each a dot and its context: count,
//!   then dots), which are those a sent field, a sent entry or the tombstone names and whose
//!   context is known, sorted by dot;
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

use policy_types::{
    Computed, Context, ContextRef, Dot, Element, Entry, EntryRef, Field, FieldValue, Hlc,
    MergedElements, MergedField, MergedParty, MergedValue, PartyVersion, Relation, Resolution,
    ResourceType, Side,
    writes::{FieldWrite, Write, Writes},
};

/// The format of a packed call or answer, its first byte. Both are read; a host writes the
/// one its policy reads (format 2 from contract revision 1.2 on), and a policy answers in the
/// format of its call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Every integer a varint (contract revisions 1.0 and 1.1).
    V1 = 1,
    /// A stamp's wall clock as eight little-endian bytes, everything else as in format 1. A
    /// wall clock in milliseconds is a six-byte varint, the costliest item of a call to write
    /// and read; as a fixed-size word it is one store and one load (BENCHMARKS.md).
    V2 = 2,
    /// Format 2 followed by each version's writes (`policy_types::writes`): what set each
    /// field sent and the tombstone, and what each of those writes had seen (contract revision
    /// 1.3). Answers are as in format 2.
    V3 = 3,
}

impl Format {
    /// What this crate writes where the reader's format is not known otherwise.
    pub const LATEST: Format = Format::V2;

    /// The format packed bytes declare in their first byte, if they declare one.
    pub fn of(bytes: &[u8]) -> Option<Format> {
        match bytes.first() {
            Some(1) => Some(Format::V1),
            Some(2) => Some(Format::V2),
            Some(3) => Some(Format::V3),
            _ => None,
        }
    }
}

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

/// Packs `resolve`'s arguments into `out` (cleared first, so a caller can reuse its buffer), in
/// the latest format.
pub fn pack_call(out: &mut Vec<u8>, ctx: &Context, local: &PartyVersion, remote: &PartyVersion) {
    pack_call_ref(out, Format::LATEST, ctx.into(), local, remote);
}

/// As [`pack_call`], in `format`, with the context by reference.
pub fn pack_call_ref(
    out: &mut Vec<u8>,
    format: Format,
    ctx: ContextRef<'_>,
    local: &PartyVersion,
    remote: &PartyVersion,
) {
    let mut w = Writer::start(out, format);
    w.context(ctx);
    w.version(local);
    w.version(remote);
    if format == Format::V3 {
        let none = Writes::default();
        w.writes(local.fields.iter().map(SentField::Whole), local, &none);
        w.writes(remote.fields.iter().map(SentField::Whole), remote, &none);
    }
}

/// Packs `resolve`'s arguments with each version's writes, in format 3: both versions whole.
pub fn pack_call_writes(
    out: &mut Vec<u8>,
    ctx: ContextRef<'_>,
    local: (&PartyVersion, &Writes),
    remote: (&PartyVersion, &Writes),
) {
    let mut w = Writer::start(out, Format::V3);
    w.context(ctx);
    w.version(local.0);
    w.version(remote.0);
    w.writes(
        local.0.fields.iter().map(SentField::Whole),
        local.0,
        local.1,
    );
    w.writes(
        remote.0.fields.iter().map(SentField::Whole),
        remote.0,
        remote.1,
    );
}

/// A field as sent in a call that leaves out what both versions hold identically: the whole
/// field, or only some of its elements.
#[derive(Clone, Debug)]
pub enum SentField<'a> {
    Whole(&'a Field),
    Elements(&'a Field, Vec<&'a Element>),
}

/// As [`pack_call`], with each version's fields replaced by `local_fields` and
/// `remote_fields` (views into the versions: nothing is copied but into `out`). In format 3
/// the versions' writes are sent as unknown: [`pack_call_sent_writes`] sends them.
pub fn pack_call_sent<'a>(
    out: &mut Vec<u8>,
    format: Format,
    ctx: ContextRef<'a>,
    local: &'a PartyVersion,
    local_fields: &'a [SentField<'a>],
    remote: &'a PartyVersion,
    remote_fields: &'a [SentField<'a>],
) {
    let none = Writes::default();
    let sent = |version, fields| Sent {
        version,
        fields,
        writes: &none,
    };
    pack_sent(
        out,
        format,
        ctx,
        sent(local, local_fields),
        sent(remote, remote_fields),
    );
}

/// One version as a call sends it: the version, its fields as sent (views into it), and the
/// writes behind it.
#[derive(Clone, Copy, Debug)]
pub struct Sent<'a> {
    pub version: &'a PartyVersion,
    pub fields: &'a [SentField<'a>],
    pub writes: &'a Writes,
}

/// As [`pack_call_sent`], in format 3, with each version's writes.
pub fn pack_call_sent_writes<'a>(
    out: &mut Vec<u8>,
    ctx: ContextRef<'a>,
    local: Sent<'a>,
    remote: Sent<'a>,
) {
    pack_sent(out, Format::V3, ctx, local, remote);
}

fn pack_sent<'a>(
    out: &mut Vec<u8>,
    format: Format,
    ctx: ContextRef<'a>,
    local: Sent<'a>,
    remote: Sent<'a>,
) {
    let mut w = Writer::start(out, format);
    w.context(ctx);
    for sent in [local, remote] {
        w.version_head(sent.version);
        w.count(sent.fields.len());
        for f in sent.fields {
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
        w.version_tail(sent.version);
    }
    if format == Format::V3 {
        for sent in [local, remote] {
            w.writes(sent.fields.iter().cloned(), sent.version, sent.writes);
        }
    }
}

/// Where the reader's strings come from: each is a checked UTF-8 slice of the bytes being
/// read, and the reader needs it as a `String`.
pub trait Strings {
    fn string(&mut self, s: &str) -> String;
}

/// `bytes` as text, if they are UTF-8. Most strings of a call or an answer are short ASCII
/// (names, regions, ids): those are checked inline, a word at a time, without a call to
/// `from_utf8`, which checks the rest.
#[inline(always)]
fn text(bytes: &[u8]) -> Option<&str> {
    if short_ascii(bytes) {
        // SAFETY: ASCII is UTF-8.
        #[allow(unsafe_code)]
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).ok()
    }
}

/// Whether `bytes` are at most 16 bytes of ASCII: two overlapping loads of a word (or of half
/// a word) cover them, and no byte may have its high bit set.
#[inline(always)]
fn short_ascii(bytes: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let n = bytes.len();
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let half = |at: usize| u64::from(u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()));
    match n {
        8..=16 => (word(0) | word(n - 8)) & HIGH == 0,
        4..=7 => (half(0) | half(n - 4)) & HIGH == 0,
        0..=3 => bytes.iter().all(|&b| b < 0x80),
        _ => false,
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

/// Unpacks what [`pack_call`] or [`pack_call_sent`] wrote (format 3's writes are read and
/// left out: [`unpack_call_writes_with`] keeps them).
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
    unpack_call_writes_with(bytes, strings).map(|c| (c.ctx, c.local.0, c.remote.0))
}

/// A call unpacked with its versions' writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unpacked {
    pub ctx: Context,
    pub local: (PartyVersion, Writes),
    pub remote: (PartyVersion, Writes),
}

/// Unpacks a call of any format with its versions' writes: format 3 carries them; in formats
/// 1 and 2 every write is unknown (an empty table).
pub fn unpack_call_writes_with<S: Strings>(
    bytes: &[u8],
    strings: S,
) -> Result<Unpacked, PackError> {
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
    let (local_writes, remote_writes) = if r.with_writes {
        (r.writes(&local)?, r.writes(&remote)?)
    } else {
        Default::default()
    };
    r.finish()?;
    Ok(Unpacked {
        ctx,
        local: (local, local_writes),
        remote: (remote, remote_writes),
    })
}

/// Packs a policy's answer into `out` (cleared first), in `format`: the format of the call it
/// answers.
pub fn pack_resolution(out: &mut Vec<u8>, format: Format, resolution: &Resolution) {
    let mut w = Writer::start(out, format);
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
    let mut resolution = Resolution::KeepLocal;
    unpack_resolution_into(bytes, &mut resolution)?;
    Ok(resolution)
}

/// As [`unpack_resolution`], into `into`, reusing the strings and vectors of the answer it
/// holds: a host unpacks one answer a call, and taking over the last one's tenant, party id,
/// regions and field names spares it a dozen allocations and frees on a small conflict
/// (BENCHMARKS.md). On an error `into` holds some valid value, to be discarded.
pub fn unpack_resolution_into(bytes: &[u8], into: &mut Resolution) -> Result<(), PackError> {
    let mut r = Reader::with_strings(bytes, Copied)?;
    match r.byte()? {
        0 => *into = Resolution::KeepLocal,
        1 => *into = Resolution::TakeRemote,
        2 => {
            if !matches!(into, Resolution::Merged(_)) {
                *into = Resolution::Merged(MergedParty {
                    tenant: String::new(),
                    party_id: String::new(),
                    version_vector: Vec::new(),
                    fields: Vec::new(),
                    tombstone: None,
                });
            }
            let Resolution::Merged(m) = into else {
                unreachable!("made merged above")
            };
            set(&mut m.tenant, r.slice()?);
            set(&mut m.party_id, r.slice()?);
            let n = r.count()?;
            m.version_vector.truncate(n);
            for i in 0..n {
                let region = r.region_slice()?;
                let counter = r.varint()?;
                let d = slot(&mut m.version_vector, i, || Dot::new("", 0));
                set(&mut d.region, region);
                d.counter = counter;
            }
            let n = r.count()?;
            m.fields.truncate(n);
            for i in 0..n {
                let name = r.slice()?;
                let value = r.merged_value()?;
                let f = slot(&mut m.fields, i, || MergedField {
                    name: String::new(),
                    value: MergedValue::Copy(Side::Local),
                });
                set(&mut f.name, name);
                f.value = value;
            }
            m.tombstone = r.tombstone()?;
        }
        3 => *into = Resolution::Reject(r.str()?),
        _ => return Err(r.bad_tag("unknown resolution")),
    }
    r.finish()
}

/// Entry `i` of `v`, which has at least `i` entries: the one there, or a new one made by `empty`.
#[inline(always)]
fn slot<T>(v: &mut Vec<T>, i: usize, empty: impl FnOnce() -> T) -> &mut T {
    if i == v.len() {
        v.push(empty());
    }
    &mut v[i]
}

/// `dst` becomes `s`, in the allocation `dst` already has where it is large enough.
#[inline(always)]
fn set(dst: &mut String, s: &str) {
    dst.clear();
    dst.push_str(s);
}

fn relation_byte(relation: Relation) -> u8 {
    match relation {
        Relation::LocalDominates => 0,
        Relation::RemoteDominates => 1,
        Relation::Equal => 2,
        Relation::Concurrent => 3,
    }
}

/// Region names in order of first appearance: a call names two or three, so the first few are
/// kept inline (no allocation, no `memcmp` call to find one), any more in a vector.
struct RegionTable<'a> {
    inline: [&'a str; INLINE_REGIONS],
    len: usize,
    more: Vec<&'a str>,
}

const INLINE_REGIONS: usize = 8;

/// The longest string the writer appends with fixed-size stores (its length fits one byte).
const SHORT: usize = 16;

impl<'a> RegionTable<'a> {
    fn new() -> Self {
        RegionTable {
            inline: [""; INLINE_REGIONS],
            len: 0,
            more: Vec::new(),
        }
    }

    #[inline(always)]
    fn get(&self, i: usize) -> Option<&'a str> {
        if i < self.len.min(INLINE_REGIONS) {
            Some(self.inline[i])
        } else {
            self.more.get(i.checked_sub(INLINE_REGIONS)?).copied()
        }
    }

    #[inline(always)]
    fn position(&self, name: &str) -> Option<usize> {
        let inline = &self.inline[..self.len.min(INLINE_REGIONS)];
        match inline.iter().position(|r| same_short(r, name)) {
            Some(i) => Some(i),
            None if self.len > INLINE_REGIONS => self
                .more
                .iter()
                .position(|r| *r == name)
                .map(|i| i + INLINE_REGIONS),
            None => None,
        }
    }

    #[inline(always)]
    fn push(&mut self, name: &'a str) {
        if self.len < INLINE_REGIONS {
            self.inline[self.len] = name;
        } else {
            self.more.push(name);
        }
        self.len += 1;
    }
}

/// `a == b`, without a call to `memcmp` for names of up to 16 bytes (region names are two or
/// three): equal lengths, and two overlapping windows of each equal.
#[inline(always)]
fn same_short(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap());
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().unwrap());
    match n {
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        _ => a == b,
    }
}

struct Writer<'o, 'v> {
    out: &'o mut Vec<u8>,
    /// Format 2: a stamp's wall clock as eight bytes, not a varint.
    fixed_clocks: bool,
    /// Regions in order of first appearance (at most a handful: a linear search wins).
    regions: RegionTable<'v>,
}

impl<'o, 'v> Writer<'o, 'v> {
    /// Clears `out` (a caller may reuse its buffer) and writes the format byte.
    fn start(out: &'o mut Vec<u8>, format: Format) -> Self {
        out.clear();
        out.push(format as u8);
        Writer {
            out,
            fixed_clocks: format != Format::V1,
            regions: RegionTable::new(),
        }
    }

    fn byte(&mut self, b: u8) {
        self.out.push(b);
    }

    #[inline(always)]
    fn varint(&mut self, v: u64) {
        if v < 0x80 {
            self.out.push(v as u8);
        } else {
            self.varint_long(v);
        }
    }

    /// Two bytes or more. Up to 56 bits (eight bytes: the stamps' wall clocks take six), the
    /// 7-bit groups are spread into the bytes of one word at once and written as one store.
    fn varint_long(&mut self, mut v: u64) {
        if v < 1 << 56 {
            let len = (64 - v.leading_zeros()).div_ceil(7) as usize;
            let spread = (v & 0x7f)
                | ((v & (0x7f << 7)) << 1)
                | ((v & (0x7f << 14)) << 2)
                | ((v & (0x7f << 21)) << 3)
                | ((v & (0x7f << 28)) << 4)
                | ((v & (0x7f << 35)) << 5)
                | ((v & (0x7f << 42)) << 6)
                | ((v & (0x7f << 49)) << 7);
            let more = 0x8080_8080_8080_8080 & ((1u64 << (8 * (len - 1))) - 1);
            self.out.reserve(8);
            let at = self.out.len();
            // SAFETY: `reserve` left room for eight bytes at `at`; the length grows only over
            // the `len` ≤ 8 of them just written.
            #[allow(unsafe_code)]
            unsafe {
                let dst = self.out.as_mut_ptr().add(at);
                dst.cast::<[u8; 8]>()
                    .write_unaligned((spread | more).to_le_bytes());
                self.out.set_len(at + len);
            }
            return;
        }
        while v >= 0x80 {
            self.out.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    fn count(&mut self, n: usize) {
        self.varint(n as u64);
    }

    /// Appends a string: its length, then its bytes. Most strings are short (names, regions,
    /// ids): a length under 128 and up to 16 bytes are written with one `reserve` and a few
    /// fixed-size stores, where `extend_from_slice` calls `memcpy` (in a guest, a call out of
    /// the sandbox).
    #[inline(always)]
    fn str(&mut self, s: &str) {
        let b = s.as_bytes();
        let n = b.len();
        if n > SHORT {
            self.count(n);
            self.out.extend_from_slice(b);
            return;
        }
        self.out.reserve(1 + SHORT);
        let at = self.out.len();
        // SAFETY: `reserve` left room for 1 + SHORT bytes at `at`. Every store below lies in
        // `at .. at + 1 + n` (n ≤ SHORT), every load in `b`, and together the stores cover
        // that range, so the length grows only over bytes just written.
        #[allow(unsafe_code)]
        unsafe {
            let dst = self.out.as_mut_ptr().add(at);
            dst.write(n as u8);
            let (src, dst) = (b.as_ptr(), dst.add(1));
            match n {
                8..=SHORT => windows::<8>(src, dst, n),
                4..=7 => windows::<4>(src, dst, n),
                1..=3 => {
                    dst.write(*src);
                    dst.add(n / 2).write(*src.add(n / 2));
                    dst.add(n - 1).write(*src.add(n - 1));
                }
                _ => {}
            }
            self.out.set_len(at + 1 + n);
        }
    }

    fn region(&mut self, region: &'v str) {
        match self.regions.position(region) {
            Some(i) => self.count(i + 1),
            None => {
                self.regions.push(region);
                self.byte(0);
                self.str(region);
            }
        }
    }

    fn wall_clock(&mut self, ms: u64) {
        if self.fixed_clocks {
            self.out.extend_from_slice(&ms.to_le_bytes());
        } else {
            self.varint(ms);
        }
    }

    fn side(&mut self, side: Side) {
        self.byte(match side {
            Side::Local => 0,
            Side::Remote => 1,
        });
    }

    fn hlc(&mut self, h: &'v Hlc) {
        self.wall_clock(h.wall_ms);
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

    /// The writes of one version, for the fields as sent ([`Format::V3`]).
    fn writes(
        &mut self,
        sent: impl Iterator<Item = SentField<'v>>,
        version: &'v PartyVersion,
        writes: &'v Writes,
    ) {
        let mut named: Vec<&'v Dot> = Vec::new();
        for f in sent {
            let (field, elements): (&'v Field, Option<Vec<&'v Element>>) = match f {
                SentField::Whole(f) => (f, None),
                SentField::Elements(f, e) => (f, Some(e)),
            };
            match writes.field(&field.name) {
                Some(dot) => {
                    self.byte(1);
                    self.dot(dot);
                    named.push(dot);
                }
                None => self.byte(0),
            }
            let entries = |e: &'v Element| e.entries.iter().map(|n| &n.dot);
            match (elements, &field.value) {
                (Some(sent), _) => named.extend(sent.into_iter().flat_map(entries)),
                (None, FieldValue::Elements(all)) => named.extend(all.iter().flat_map(entries)),
                (None, FieldValue::Json(_)) => {}
            }
        }
        match writes
            .tombstone
            .as_ref()
            .filter(|_| version.tombstone.is_some())
        {
            Some(dot) => {
                self.byte(1);
                self.dot(dot);
                named.push(dot);
            }
            None => self.byte(0),
        }
        named.sort_unstable();
        named.dedup();
        let known: Vec<(&'v Dot, &'v [Dot])> = named
            .into_iter()
            .filter_map(|d| writes.context(d).map(|c| (d, c)))
            .collect();
        self.count(known.len());
        for (dot, context) in known {
            self.dot(dot);
            self.dots(context);
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

/// Copies `n` bytes, `W ≤ n ≤ 2W`, from `src` to `dst` as two overlapping windows of `W`
/// bytes: two fixed-size loads and stores instead of a `memcpy` of `n`.
///
/// # Safety
///
/// `src` is valid for reading and `dst` for writing `n` bytes, and they do not overlap.
#[inline(always)]
#[allow(unsafe_code)]
unsafe fn windows<const W: usize>(src: *const u8, dst: *mut u8, n: usize) {
    debug_assert!((W..=2 * W).contains(&n));
    // SAFETY: both windows lie in the first `n` bytes of each, as `W ≤ n`.
    unsafe {
        let last = n - W;
        dst.cast::<[u8; W]>()
            .write_unaligned(src.cast::<[u8; W]>().read_unaligned());
        dst.add(last)
            .cast::<[u8; W]>()
            .write_unaligned(src.add(last).cast::<[u8; W]>().read_unaligned());
    }
}

struct Reader<'b, S> {
    bytes: &'b [u8],
    pos: usize,
    /// Format 2 and 3: a stamp's wall clock is eight bytes, not a varint.
    fixed_clocks: bool,
    /// Format 3: a call ends with its versions' writes.
    with_writes: bool,
    /// The region names defined so far, in order.
    regions: RegionTable<'b>,
    strings: S,
}

impl<'b, S: Strings> Reader<'b, S> {
    fn with_strings(bytes: &'b [u8], strings: S) -> Result<Self, PackError> {
        let Some(format) = Format::of(bytes) else {
            return Err(PackError {
                at: 0,
                what: "unknown format (expected 1, 2 or 3)",
            });
        };
        Ok(Reader {
            bytes,
            pos: 1,
            fixed_clocks: format != Format::V1,
            with_writes: format == Format::V3,
            regions: RegionTable::new(),
            strings,
        })
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
        // Up to eight bytes at once where eight are left: the group that ends the integer is
        // the first byte without its top bit, and the 7-bit groups before it are gathered
        // with shifts and masks instead of a loop over the bytes.
        if let Some(w) = self.bytes.get(self.pos..self.pos + 8) {
            let w = u64::from_le_bytes(w.try_into().unwrap());
            let ends = !w & 0x8080_8080_8080_8080;
            if ends != 0 {
                let len = (ends.trailing_zeros() / 8 + 1) as usize;
                let w = w & (u64::MAX >> (64 - 8 * len));
                let v = (w & 0x7f)
                    | ((w >> 1) & (0x7f << 7))
                    | ((w >> 2) & (0x7f << 14))
                    | ((w >> 3) & (0x7f << 21))
                    | ((w >> 4) & (0x7f << 28))
                    | ((w >> 5) & (0x7f << 35))
                    | ((w >> 6) & (0x7f << 42))
                    | ((w >> 7) & (0x7f << 49));
                self.pos += len;
                return Ok(v);
            }
        }
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

    #[inline(always)]
    fn wall_clock(&mut self) -> Result<u64, PackError> {
        if !self.fixed_clocks {
            return self.varint();
        }
        let w = self
            .bytes
            .get(self.pos..self.pos + 8)
            .ok_or_else(|| self.error("ends too early"))?;
        self.pos += 8;
        Ok(u64::from_le_bytes(w.try_into().unwrap()))
    }

    #[inline(always)]
    fn u32(&mut self) -> Result<u32, PackError> {
        let v = self.varint()?;
        u32::try_from(v).map_err(|_| self.error("integer overflows 32 bits"))
    }

    /// A count of items that take at least a byte each: never more than the bytes left, so a
    /// hostile count cannot make the reader reserve more items than the input has bytes. (Each
    /// item still costs more memory than its bytes — up to ~30 times — which is why the host
    /// bounds an answer's size before reading it.)
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
        let s = text(&bytes[self.pos..self.pos + n])
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
        let name = self.region_slice()?;
        Ok(self.strings.string(name))
    }

    #[inline(always)]
    fn region_slice(&mut self) -> Result<&'b str, PackError> {
        Ok(match self.varint()? {
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
        })
    }

    fn merged_value(&mut self) -> Result<MergedValue, PackError> {
        Ok(match self.byte()? {
            0 => MergedValue::Copy(self.side()?),
            1 => {
                let stamp_from = self.side()?;
                let n = self.count()?;
                let mut elements = Vec::with_capacity(n);
                for _ in 0..n {
                    let m = self.count()?;
                    let mut refs = Vec::with_capacity(m);
                    for _ in 0..m {
                        refs.push(EntryRef {
                            side: self.side()?,
                            element: self.u32()?,
                            entry: self.u32()?,
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
                value: self.str()?,
                stamp: self.hlc()?,
            }),
            _ => return Err(self.bad_tag("unknown merged-value")),
        })
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
            wall_ms: self.wall_clock()?,
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

    /// The writes of `version` as read ([`Format::V3`]).
    fn writes(&mut self, version: &PartyVersion) -> Result<Writes, PackError> {
        let mut fields = Vec::new();
        for f in &version.fields {
            if let Some(dot) = self.some_dot()? {
                fields.push(FieldWrite {
                    name: f.name.clone(),
                    dot,
                });
            }
        }
        // Stable, so that of a field named twice the first is kept (as the spec says).
        fields.sort_by(|a, b| a.name.cmp(&b.name));
        fields.dedup_by(|a, b| a.name == b.name);
        let tombstone = self.some_dot()?;
        let n = self.count()?;
        let mut writes = Vec::with_capacity(n);
        for _ in 0..n {
            writes.push(Write {
                dot: self.dot()?,
                context: self.dots()?,
            });
        }
        writes.sort_by(|a, b| a.dot.cmp(&b.dot));
        writes.dedup_by(|a, b| a.dot == b.dot);
        Ok(Writes {
            fields,
            tombstone,
            writes,
        })
    }

    fn some_dot(&mut self) -> Result<Option<Dot>, PackError> {
        match self.byte()? {
            0 => Ok(None),
            1 => Ok(Some(self.dot()?)),
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

    /// Every length up to 17, with a non-ASCII byte at each position in turn: the overlapping
    /// loads must see every byte.
    #[test]
    fn short_ascii_sees_every_byte_of_up_to_16() {
        for n in 0..=17 {
            let ascii = vec![b'a'; n];
            assert_eq!(short_ascii(&ascii), n <= 16, "{n} ASCII bytes");
            for at in 0..n {
                let mut bytes = ascii.clone();
                bytes[at] = 0xc3;
                assert!(!short_ascii(&bytes), "{n} bytes, high bit at {at}");
            }
        }
    }

    /// Short strings take the inline check, longer ones `from_utf8`: both refuse what is not
    /// UTF-8 and give back what is.
    #[test]
    fn text_refuses_what_is_not_utf8_at_any_length() {
        for n in 0..=40 {
            let ascii = "a".repeat(n);
            assert_eq!(
                text(ascii.as_bytes()),
                Some(ascii.as_str()),
                "{n} ASCII bytes"
            );
            if n >= 2 {
                let mut accented = "a".repeat(n - 2);
                accented.push('é');
                assert_eq!(
                    text(accented.as_bytes()),
                    Some(accented.as_str()),
                    "{n} bytes"
                );
            }
            for at in 0..n {
                let mut bytes = ascii.clone().into_bytes();
                bytes[at] = 0xff;
                assert_eq!(text(&bytes), None, "{n} bytes, 0xff at {at}");
            }
        }
    }

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
    fn calls_and_answers_come_back_unchanged_in_either_format() {
        let (ctx, local, remote) = call();
        let mut buf = vec![9, 9, 9];
        for format in [Format::V1, Format::V2, Format::V3] {
            pack_call_ref(&mut buf, format, (&ctx).into(), &local, &remote);
            assert_eq!(Format::of(&buf), Some(format));
            assert_eq!(
                unpack_call(&buf).unwrap(),
                (ctx.clone(), local.clone(), remote.clone()),
                "{format:?}"
            );
            for r in [
                Resolution::KeepLocal,
                Resolution::TakeRemote,
                Resolution::Reject("no".into()),
                merged(),
            ] {
                pack_resolution(&mut buf, format, &r);
                assert_eq!(Format::of(&buf), Some(format));
                assert_eq!(unpack_resolution(&buf).unwrap(), r, "{format:?}");
            }
        }
    }

    /// The one difference between the formats: a stamp's wall clock is a varint in format 1
    /// and eight little-endian bytes in format 2 (a clock of today, 41 bits, takes six bytes
    /// as a varint).
    #[test]
    fn a_stamps_wall_clock_is_a_varint_in_format_1_and_eight_bytes_in_format_2() {
        let stamp = Hlc::new(1_764_000_000_000, 3, "eu");
        let mut leb128 = Vec::new();
        let mut ms = stamp.wall_ms;
        while ms >= 0x80 {
            leb128.push((ms as u8) | 0x80);
            ms >>= 7;
        }
        leb128.push(ms as u8);
        assert_eq!(leb128.len(), 6);
        for (format, clock) in [
            (Format::V1, leb128),
            (Format::V2, stamp.wall_ms.to_le_bytes().to_vec()),
        ] {
            let mut out = Vec::new();
            Writer::start(&mut out, format).hlc(&stamp);
            let mut want = vec![format as u8];
            want.extend_from_slice(&clock);
            want.extend_from_slice(&[3, 0, 2, b'e', b'u']);
            assert_eq!(out, want, "{format:?}");
            let mut r = Reader::with_strings(&out, Copied).unwrap();
            assert_eq!(r.hlc().unwrap(), stamp, "{format:?}");
            r.finish().unwrap();
            // Cut anywhere in the clock, the stamp is refused.
            for cut in 1..1 + clock.len() {
                let mut r = Reader::with_strings(&out[..cut], Copied).unwrap();
                assert!(r.hlc().is_err(), "{format:?} cut at {cut}");
            }
        }
    }

    /// Unpacked into the previous answer's allocations, whatever that answer was (more or
    /// fewer fields, a longer vector, another kind, or left half-written by a refused answer),
    /// an answer comes out as it does unpacked fresh.
    #[test]
    fn an_answer_unpacked_into_a_previous_one_is_the_same_as_unpacked_fresh() {
        let Resolution::Merged(full) = merged() else {
            unreachable!()
        };
        let mut short = full.clone();
        short.fields.truncate(1);
        short
            .version_vector
            .push(Dot::new("zz-longer-region-name", 7));
        short.tenant = "a-much-longer-tenant-name".into();
        short.tombstone = Some(hlc(3, "eu"));
        let answers = [
            Resolution::Merged(short.clone()),
            Resolution::Merged(full.clone()),
            Resolution::Merged(short),
            Resolution::Reject("no".into()),
            Resolution::Merged(full),
            Resolution::KeepLocal,
            merged(),
            Resolution::TakeRemote,
        ];
        let mut into = Resolution::KeepLocal;
        let mut buf = Vec::new();
        for (i, a) in answers.iter().enumerate() {
            pack_resolution(&mut buf, Format::LATEST, a);
            unpack_resolution_into(&buf, &mut into).unwrap();
            assert_eq!(&into, a, "answer {i}");
            // A refused answer leaves something behind; the next one is still right.
            let cut = &buf[..buf.len() - 1];
            if cut.len() > 1 {
                assert!(unpack_resolution_into(cut, &mut into).is_err());
            }
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
            Format::LATEST,
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

    /// The writes of `version("eu"/"na")`: `name` by one write, the contact medium's entry by
    /// its own, the tombstone by a third; the entry's context unknown; and a write no field
    /// sent names (`givenName` left out of the call), which is not sent.
    fn writes(region: &str) -> Writes {
        let d = |n| Dot::new(region, n);
        Writes {
            fields: vec![
                FieldWrite {
                    name: "contactMedium".into(),
                    dot: d(3),
                },
                FieldWrite {
                    name: "givenName".into(),
                    dot: d(1),
                },
                FieldWrite {
                    name: "name".into(),
                    dot: d(4),
                },
            ],
            tombstone: Some(Dot::new("eu", 2)),
            writes: vec![
                Write {
                    dot: d(1),
                    context: vec![],
                },
                Write {
                    dot: Dot::new("eu", 2),
                    context: vec![Dot::new("eu", 1)],
                },
                Write {
                    dot: d(4),
                    context: vec![Dot::new("apac", 7), Dot::new("eu", 2)],
                },
            ],
        }
    }

    /// Format 3 carries each version's writes for the fields it sends: what a field, an entry
    /// or the tombstone names comes back with its context; a write nothing sent names does not
    /// travel; formats 1 and 2 read as every write unknown.
    #[test]
    fn a_format_3_call_carries_the_writes_of_what_it_sends() {
        let (ctx, local, remote) = call();
        let (lw, rw) = (writes("eu"), writes("na"));
        let sent = |w: &Writes| Writes {
            fields: w
                .fields
                .iter()
                .filter(|f| f.name != "givenName")
                .cloned()
                .collect(),
            tombstone: w.tombstone.clone(),
            writes: w.writes[1..].to_vec(),
        };
        let mut buf = Vec::new();
        pack_call_writes(&mut buf, (&ctx).into(), (&local, &lw), (&remote, &rw));
        assert_eq!(Format::of(&buf), Some(Format::V3));
        let c = unpack_call_writes_with(&buf, Copied).unwrap();
        assert_eq!(c.ctx, ctx);
        assert_eq!(c.local, (local.clone(), sent(&lw)));
        assert_eq!(c.remote, (remote.clone(), sent(&rw)));
        assert_eq!(
            unpack_call(&buf).unwrap(),
            (ctx.clone(), local.clone(), remote.clone())
        );

        // Only the element sent, and only a field's write: the name's is not sent with it.
        let FieldValue::Elements(elements) = &remote.fields[0].value else {
            unreachable!()
        };
        let local_sent = [SentField::Whole(&local.fields[1])];
        let remote_sent = [SentField::Elements(&remote.fields[0], vec![&elements[0]])];
        let mut no_tombstone = remote.clone();
        no_tombstone.tombstone = None;
        pack_call_sent_writes(
            &mut buf,
            (&ctx).into(),
            Sent {
                version: &local,
                fields: &local_sent,
                writes: &lw,
            },
            Sent {
                version: &no_tombstone,
                fields: &remote_sent,
                writes: &rw,
            },
        );
        let c = unpack_call_writes_with(&buf, Copied).unwrap();
        let field = |w: &Writes, name: &str| {
            w.fields
                .iter()
                .filter(|f| f.name == name)
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(c.local.1.fields, field(&lw, "name"));
        assert_eq!(c.local.1.writes, lw.writes[1..]);
        assert_eq!(c.remote.1.fields, field(&rw, "contactMedium"));
        assert_eq!((c.remote.1.tombstone, c.remote.1.writes), (None, vec![]));

        for format in [Format::V1, Format::V2] {
            pack_call_ref(&mut buf, format, (&ctx).into(), &local, &remote);
            let c = unpack_call_writes_with(&buf, Copied).unwrap();
            assert!(c.local.1.is_empty() && c.remote.1.is_empty(), "{format:?}");
        }
        // Every truncation of a format-3 call is refused.
        pack_call_writes(&mut buf, (&ctx).into(), (&local, &lw), (&remote, &rw));
        for cut in 0..buf.len() {
            assert!(unpack_call(&buf[..cut]).is_err(), "cut at {cut}");
        }
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

    /// More regions than the table keeps inline (eight): each still spelled once, each number
    /// read back as the name it stands for, in a call and in an answer.
    #[test]
    fn a_call_naming_twenty_regions_comes_back_unchanged() {
        let (ctx, mut local, remote) = call();
        let regions: Vec<String> = (0..20).map(|i| format!("region-{i:02}")).collect();
        local.version_vector = regions.iter().map(|r| Dot::new(r, 1)).collect();
        local.fields[1].stamp.region = regions[19].clone();
        let mut buf = Vec::new();
        pack_call(&mut buf, &ctx, &local, &remote);
        let text = String::from_utf8_lossy(&buf);
        for r in &regions {
            assert_eq!(text.matches(r.as_str()).count(), 1, "{r}");
        }
        assert_eq!(unpack_call(&buf).unwrap(), (ctx, local, remote));
        let Resolution::Merged(mut m) = merged() else {
            unreachable!()
        };
        m.version_vector = regions.iter().rev().map(|r| Dot::new(r, 2)).collect();
        let answer = Resolution::Merged(m);
        pack_resolution(&mut buf, Format::LATEST, &answer);
        assert_eq!(unpack_resolution(&buf).unwrap(), answer);
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
        pack_resolution(&mut answer_bytes, Format::LATEST, &merged());
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

    /// Strings of every length from empty to past the short path, ASCII and not, written after
    /// every number of bytes already in the buffer and with the buffer's capacity exactly used
    /// up: each comes out as its LEB128 length and its bytes, after what was there, and reads
    /// back as itself.
    #[test]
    fn strings_of_every_length_are_written_as_length_and_bytes() {
        for n in 0..=40usize {
            for text in ["a".repeat(n), "é".repeat(n / 2) + &"z".repeat(n % 2)] {
                let mut want = Vec::new();
                let mut len = text.len() as u64;
                while len >= 0x80 {
                    want.push((len as u8) | 0x80);
                    len >>= 7;
                }
                want.push(len as u8);
                want.extend_from_slice(text.as_bytes());
                for before in 0..=9 {
                    let mut out = Vec::with_capacity(1 + before);
                    let mut w = Writer::start(&mut out, Format::LATEST);
                    for i in 0..before {
                        w.byte(i as u8);
                    }
                    w.str(&text);
                    let written = &out[1 + before..];
                    assert_eq!(written, &want[..], "{text:?} after {before} bytes");
                    assert!(
                        out[1..1 + before]
                            .iter()
                            .enumerate()
                            .all(|(i, &b)| b == i as u8)
                    );
                    let mut r = Reader::with_strings(&out, Copied).unwrap();
                    r.pos += before;
                    assert_eq!(r.str().unwrap(), text, "{text:?} read back");
                    r.finish().unwrap();
                }
            }
        }
    }

    #[test]
    fn varints_round_trip_and_overlong_ones_are_refused_where_they_stop() {
        let read = |bytes: &[u8]| {
            let mut with_format = vec![Format::LATEST as u8];
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
            let mut out = vec![Format::LATEST as u8];
            Writer::start(&mut out, Format::LATEST).varint(v);
            assert_eq!(read(&out[1..]), Ok((v, out.len())), "{v}");
        }
        // Every length, at both ends of its range, written as the byte loop of LEB128 writes
        // it and read back with and without eight bytes after it (the reader's word-at-a-time
        // path and its byte loop).
        let leb128 = |mut v: u64| {
            let mut out = Vec::new();
            while v >= 0x80 {
                out.push((v as u8) | 0x80);
                v >>= 7;
            }
            out.push(v as u8);
            out
        };
        let mut values = vec![0x80, 0x3fff, 1_764_000_000_000, u64::MAX];
        for bits in (7..64).step_by(7) {
            values.extend([(1u64 << bits) - 1, 1 << bits, (1 << bits) + 1]);
        }
        for v in values {
            let mut out = vec![Format::LATEST as u8];
            Writer::start(&mut out, Format::LATEST).varint(v);
            assert_eq!(&out[1..], leb128(v), "{v} is written as LEB128");
            let n = out.len();
            assert_eq!(read(&out[1..]), Ok((v, n)), "{v} alone");
            out.extend_from_slice(&[0xff; 8]);
            assert_eq!(read(&out[1..]), Ok((v, n)), "{v} followed by eight bytes");
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
        for unknown in [0, 4, 0xff] {
            let e = unpack_resolution(&[unknown, 0]).unwrap_err();
            assert_eq!((e.at, e.what), (0, "unknown format (expected 1, 2 or 3)"));
        }
        assert!(unpack_call(&[]).is_err());
        assert_eq!(
            unpack_resolution(&[1, 0xff]).unwrap_err().what,
            "unknown resolution"
        );
    }
}
