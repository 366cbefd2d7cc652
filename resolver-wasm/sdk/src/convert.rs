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

/// The strings of a call that lies in the arena: each owns its bytes in the call, none is copied
/// (`arena::CallArena::share`). The policy gets them by `&` only, and the SDK drops them.
#[cfg(target_arch = "wasm32")]
struct Shared;

#[cfg(target_arch = "wasm32")]
impl policy_packed::Strings for Shared {
    #[inline]
    fn string(&mut self, s: &str) -> String {
        // SAFETY: the reader hands out slices of the call, which `ARENA.holds`; the strings
        // go into the arguments lent to the policy by `&`, so nothing writes to them.
        unsafe { crate::ARENA.share(s) }
    }
}

/// `memcmp`'s answer for two byte strings of the same length: the sign of the first byte that
/// differs. Without a loop over bytes: up to 16 bytes are two overlapping windows of 8 or 4
/// bytes (the second window's bytes that overlap the first are equal once the first is), three
/// bytes or fewer one word built from them; longer strings go a word at a time and end with an
/// overlapping window.
#[cfg(any(target_arch = "wasm32", test))]
#[inline(always)]
pub(crate) fn compare(a: &[u8], b: &[u8]) -> i32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap());
    let half =
        |s: &[u8], at: usize| u64::from(u32::from_le_bytes(s[at..at + 4].try_into().unwrap()));
    match n {
        0 => 0,
        1..=3 => {
            // The first, middle and last bytes, first most significant: for three bytes or
            // fewer these spell the string in order (repeating some), so they order as it does.
            let key = |s: &[u8]| {
                (u32::from(s[0]) << 16) | (u32::from(s[n / 2]) << 8) | u32::from(s[n - 1])
            };
            (key(a) as i32) - (key(b) as i32)
        }
        4..=7 => match first_difference(half(a, 0), half(b, 0)) {
            0 => first_difference(half(a, n - 4), half(b, n - 4)),
            d => d,
        },
        _ => {
            let mut i = 0;
            while i + 8 < n {
                let d = first_difference(word(a, i), word(b, i));
                if d != 0 {
                    return d;
                }
                i += 8;
            }
            first_difference(word(a, n - 8), word(b, n - 8))
        }
    }
}

/// The sign of the first byte (in memory order) that differs between two little-endian words:
/// the lowest set bit of their difference names it, without swapping the words' bytes (which
/// WebAssembly has no instruction for).
#[cfg(any(target_arch = "wasm32", test))]
#[inline(always)]
fn first_difference(x: u64, y: u64) -> i32 {
    let d = x ^ y;
    if d == 0 {
        return 0;
    }
    let shift = d.trailing_zeros() & !7;
    (((x >> shift) & 0xff) as i32) - (((y >> shift) & 0xff) as i32)
}

/// `packed-resolver.resolve`: the same policy on the packed form of the call. Arguments the
/// host packed wrongly are a host bug; the policy answers with a rejection that names it, so
/// that the conflict is kept with the reason.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn resolve_packed<P: Policy>(call: Vec<u8>) -> Vec<u8> {
    #[cfg(target_arch = "wasm32")]
    if crate::ARENA.holds(&call) {
        // Every string of the arguments owns its bytes in the call, and when everything the
        // arguments hold came from the arena, they are released at once instead of dropped.
        let (unpacked, blocks) =
            crate::ARENA.count_blocks(|| policy_packed::unpack_call_writes_with(&call, Shared));
        let answer = answer::<P>(format_of(&call), &unpacked);
        if let Some(blocks) = blocks {
            std::mem::forget(unpacked);
            // SAFETY: the blocks are those the arguments hold, which were just forgotten; the
            // answer was packed into a block of its own.
            unsafe { crate::ARENA.release(blocks) };
        }
        return answer;
    }
    answer::<P>(
        format_of(&call),
        &policy_packed::unpack_call_writes_with(&call, policy_packed::Copied),
    )
}

/// The format to answer a call in: the call's own, so that a host that writes only format 1
/// can read the answer; the latest where the call declares none (it is refused anyway).
fn format_of(call: &[u8]) -> policy_packed::Format {
    policy_packed::Format::of(call).unwrap_or(policy_packed::Format::LATEST)
}

/// Where the canonical ABI reads an export's `list<u8>` result: its pointer and length.
#[cfg(target_arch = "wasm32")]
#[repr(C, align(8))]
struct ReturnArea(std::cell::UnsafeCell<[u32; 2]>);

// SAFETY: wasm32 guests are single-threaded.
#[cfg(target_arch = "wasm32")]
unsafe impl Sync for ReturnArea {}

#[cfg(target_arch = "wasm32")]
static RETURN_AREA: ReturnArea = ReturnArea(std::cell::UnsafeCell::new([0; 2]));

/// `packed-resolver.resolve` in the canonical ABI, which `export_policy!` exports by hand: the
/// answer is left where it is for the host to copy out, and freed at the guest's next
/// allocation (`CallArena::hold`) instead of by a post-return call, one entry into the guest
/// fewer per call.
///
/// # Safety
///
/// `call` holds `len` bytes allocated through `cabi_realloc` for this call, which the guest
/// now owns (the canonical ABI's contract for a `list<u8>` argument).
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub unsafe fn __packed_export<P: Policy>(call: *mut u8, len: usize) -> *mut u8 {
    let call = if len == 0 {
        Vec::new()
    } else {
        // SAFETY: as the caller guarantees, an allocation of `len` bytes that is ours.
        unsafe { Vec::from_raw_parts(call, len, len) }
    };
    let answer = resolve_packed::<P>(call);
    let parts = [answer.as_ptr() as u32, answer.len() as u32];
    crate::ARENA.hold(answer);
    let area = RETURN_AREA.0.get();
    // SAFETY: the return area is ours and nothing else refers to it during the call.
    unsafe { area.write(parts) };
    area.cast()
}

/// The packed answer of `P` to an unpacked call, in `format`.
fn answer<P: Policy>(
    format: policy_packed::Format,
    unpacked: &Result<policy_packed::Unpacked, policy_packed::PackError>,
) -> Vec<u8> {
    let resolution = match unpacked {
        Ok(c) => {
            P::resolve_with_writes(&c.ctx, (&c.local.0, &c.local.1), (&c.remote.0, &c.remote.1))
        }
        Err(e) => t::Resolution::Reject(format!("the policy could not read its call: {e}")),
    };
    let mut out = Vec::with_capacity(256);
    policy_packed::pack_resolution(&mut out, format, &resolution);
    out
}

#[cfg(test)]
mod tests {
    use super::{compare, resolve_packed};
    use crate::Policy;
    use policy_packed::{self as packed, Format};
    use policy_types::{
        Context, Description, Dot, Field, FieldValue, Hlc, PartyVersion, Relation, Resolution,
        ResourceType,
    };

    struct DefaultMerge;

    impl Policy for DefaultMerge {
        fn describe() -> Description {
            crate::description("default-merge", "1.0.0")
        }
        fn resolve(ctx: &Context, local: &PartyVersion, remote: &PartyVersion) -> Resolution {
            tmf632_merge::resolve(ctx, local, remote)
        }
    }

    fn version(region: &str, ms: u64, name: &str) -> PartyVersion {
        PartyVersion {
            tenant: "acme".into(),
            party_id: "p-1".into(),
            resource_type: ResourceType::Individual,
            fields: vec![Field {
                name: "givenName".into(),
                stamp: Hlc::new(ms, 0, region),
                value: FieldValue::Json(format!("{name:?}")),
            }],
            version_vector: vec![Dot::new(region, 1)],
            tombstone: None,
            origin_region: region.into(),
        }
    }

    /// A host that writes only format 1 (one of contract 1.1) can read the answer: a policy
    /// answers in the format of its call, and gives the same answer in both.
    #[test]
    fn a_packed_call_is_answered_in_its_own_format() {
        let ctx = Context {
            tenant: "acme".into(),
            resolving_region: "eu".into(),
            relation: Relation::Concurrent,
            config: "{}".into(),
        };
        let (local, remote) = (
            version("eu", 1_764_000_000_000, "Ann"),
            version("na", 1_764_000_000_500, "Anne"),
        );
        let want = DefaultMerge::resolve(&ctx, &local, &remote);
        assert!(matches!(want, Resolution::Merged(_)));
        for format in [Format::V1, Format::V2] {
            let mut call = Vec::new();
            packed::pack_call_ref(&mut call, format, (&ctx).into(), &local, &remote);
            let answer = resolve_packed::<DefaultMerge>(call);
            assert_eq!(Format::of(&answer), Some(format));
            assert_eq!(
                packed::unpack_resolution(&answer).unwrap(),
                want,
                "{format:?}"
            );
        }
    }

    /// Against the standard library's ordering: every length up to 40 (each way through the
    /// windows, and several words), a difference at every position, in both directions, with
    /// bytes that differ in their high bit too.
    #[test]
    fn compare_orders_as_memcmp_does() {
        for n in 0..=40usize {
            let base: Vec<u8> = (0..n).map(|i| (i * 37 % 251) as u8).collect();
            assert_eq!(compare(&base, &base), 0, "{n} equal bytes");
            for at in 0..n {
                for delta in [1u8, 0x80, 0xff] {
                    let mut other = base.clone();
                    other[at] = other[at].wrapping_add(delta);
                    let want = base.cmp(&other) as i32;
                    assert_eq!(compare(&base, &other).signum(), want, "{n} bytes, at {at}");
                    assert_eq!(compare(&other, &base).signum(), -want, "{n} bytes, at {at}");
                    // A later byte that differs the other way does not decide.
                    if at + 1 < n {
                        other[at + 1] = other[at + 1].wrapping_sub(delta);
                        let want = base.cmp(&other) as i32;
                        assert_eq!(compare(&base, &other).signum(), want, "{n}, {at} and next");
                    }
                }
                // Any two bytes at `at` and any two after it: only the first difference decides,
                // however its bits and the next byte's fall in a word.
                const BYTES: [u8; 7] = [0x00, 0x01, 0x40, 0x7f, 0x80, 0xfe, 0xff];
                for (x, y, p, q) in BYTES.iter().flat_map(|&x| {
                    BYTES.iter().flat_map(move |&y| {
                        BYTES
                            .iter()
                            .flat_map(move |&p| BYTES.iter().map(move |&q| (x, y, p, q)))
                    })
                }) {
                    let (mut a, mut b) = (base.clone(), base.clone());
                    (a[at], b[at]) = (x, y);
                    if at + 1 < n {
                        (a[at + 1], b[at + 1]) = (p, q);
                    }
                    let want = a.cmp(&b) as i32;
                    assert_eq!(
                        compare(&a, &b).signum(),
                        want,
                        "{n} bytes: {a:?} against {b:?}"
                    );
                }
            }
        }
    }
}
