//! The packed readers against hostile bytes: every truncation of a few real calls and answers,
//! single-byte flips, insertions and deletions of them, and random bytes, all drawn from one
//! printed seed. A reader refuses or accepts, never panics, and what it accepts packs and
//! unpacks back to itself.
//!
//! `PACKED_SEED=<n> cargo test -p policy-packed --test hostile_bytes` replays a run with seed
//! `n`; `BLESS=1` rewrites the fuzzer's seed corpus (`fuzz/corpus/`) from the seeds below.

use policy_packed::{
    Format, SentField, pack_call_ref, pack_call_sent, pack_call_writes, pack_resolution,
    unpack_call, unpack_resolution, unpack_resolution_into,
};
use policy_types::{
    Computed, Context, Dot, Element, Entry, EntryRef, Field, FieldValue, Hlc, MergedElements,
    MergedField, MergedParty, MergedValue, PartyVersion, Relation, Resolution, ResourceType, Side,
    writes::{FieldWrite, Write, Writes},
};
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

/// The seed of a plain `cargo test`: a fixed one, so that the test is the same on every run.
const DEFAULT_SEED: u64 = 20_261_214;

/// Per seed message: random single-byte flips, insertions and deletions (a third each).
const MUTATIONS_PER_SEED: usize = 2_000;

/// Inputs of random bytes; most start with a valid format byte so that they get past it.
const RANDOM_INPUTS: usize = 10_000;

const REPLAY: &str = "cargo test -p policy-packed --test hostile_bytes";

#[test]
fn hostile_bytes_are_refused_or_read_back_as_themselves_never_a_panic() {
    let seed = match std::env::var("PACKED_SEED") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("PACKED_SEED must be an unsigned integer, found {s:?}")),
        Err(_) => DEFAULT_SEED,
    };
    println!("seed {seed} (replay with PACKED_SEED={seed} {REPLAY})");
    let mut rng = Rng::new(seed);
    let mut check = Checker::new(seed);

    let seeds = seeds();
    for s in &seeds {
        check.run(&Origin::Seed(s), &s.bytes, Some(true));
        for at in 0..s.bytes.len() {
            // The format is prefix-free: a value read to its end needs every byte it was
            // written with, so no cut of a call or an answer is one.
            check.run(&Origin::Cut(s, at), &s.bytes[..at], Some(false));
        }
        for _ in 0..MUTATIONS_PER_SEED {
            let mut bytes = s.bytes.clone();
            let at = rng.below(bytes.len() + 1);
            let origin = match rng.below(3) {
                0 if at < bytes.len() => {
                    let mask = 1 + rng.below(255) as u8;
                    bytes[at] ^= mask;
                    Origin::Flip(s, at, mask)
                }
                1 if at < bytes.len() => {
                    bytes.remove(at);
                    Origin::Delete(s, at)
                }
                _ => {
                    let byte = rng.byte();
                    bytes.insert(at, byte);
                    Origin::Insert(s, at, byte)
                }
            };
            check.run(&origin, &bytes, None);
        }
    }
    for i in 0..RANDOM_INPUTS {
        let mut bytes: Vec<u8> = (0..rng.below(96)).map(|_| rng.byte()).collect();
        if let Some(first) = bytes.first_mut()
            && rng.below(4) != 0
        {
            *first = 1 + rng.below(2) as u8;
        }
        check.run(&Origin::Random(i), &bytes, None);
    }

    println!(
        "{} inputs, {} accepted by a reader and read back",
        check.inputs, check.accepted
    );
    // Mutated values are accepted often enough (a flipped letter in a string, another
    // counter) that none accepted means the round trip was never checked.
    assert!(
        check.accepted > seeds.len() * 10,
        "only {} of {} inputs accepted: the round trip is hardly exercised (seed {seed})",
        check.accepted,
        check.inputs
    );
}

/// What the fuzzer starts from is what the seeds below pack to, file by file (the fuzzer may
/// add files of its own there; those are not checked).
#[test]
fn the_fuzzers_seed_corpus_is_what_the_packers_write() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let bless = std::env::var_os("BLESS").is_some();
    for s in seeds() {
        let dir = corpus.join(match s.kind {
            Kind::Call => "unpack_call",
            Kind::Answer => "unpack_answer",
        });
        let path = dir.join(&s.name);
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &s.bytes).unwrap();
        } else {
            let found = std::fs::read(&path).unwrap_or_default();
            assert!(
                found == s.bytes,
                "{} is not what the seed {} packs to (BLESS=1 {REPLAY} rewrites it)",
                path.display(),
                s.name
            );
        }
    }
}

/// Runs every reader on one input, keeping the answer unpacked last as the host does (its
/// allocations reused by the next answer).
struct Checker {
    seed: u64,
    reused: Resolution,
    buf: Vec<u8>,
    inputs: usize,
    accepted: usize,
}

impl Checker {
    fn new(seed: u64) -> Self {
        Checker {
            seed,
            reused: merged_many_regions(),
            buf: Vec::new(),
            inputs: 0,
            accepted: 0,
        }
    }

    /// Checks `bytes`; `valid` says whether the reader of the seed's kind must accept
    /// (`Some(true)`), must refuse (`Some(false)`), or may do either.
    fn run(&mut self, origin: &Origin, bytes: &[u8], valid: Option<bool>) {
        self.inputs += 1;
        let outcome = catch_unwind(AssertUnwindSafe(|| self.read(bytes)));
        let problem = match outcome {
            Ok(Ok((call_ok, answer_ok))) => {
                self.accepted += usize::from(call_ok || answer_ok);
                let ok = match origin.kind() {
                    Some(Kind::Call) => call_ok,
                    Some(Kind::Answer) => answer_ok,
                    None => return,
                };
                match valid {
                    Some(true) if !ok => "refused, though a packer wrote it".to_owned(),
                    Some(false) if ok => "accepted, though cut short".to_owned(),
                    _ => return,
                }
            }
            Ok(Err(problem)) => problem,
            Err(_) => "a reader panicked (its message is above)".to_owned(),
        };
        let mut hex = String::new();
        for b in bytes {
            write!(hex, "{b:02x}").unwrap();
        }
        panic!(
            "{origin}: {problem}\ninput ({} bytes): {hex}\nreproduce: PACKED_SEED={} {REPLAY}",
            bytes.len(),
            self.seed
        );
    }

    /// Whether the call reader and the answer reader accepted `bytes`, or what went wrong.
    fn read(&mut self, bytes: &[u8]) -> Result<(bool, bool), String> {
        let answer = unpack_resolution(bytes);
        let into = unpack_resolution_into(bytes, &mut self.reused);
        match (&answer, &into) {
            (Ok(a), Ok(())) if *a == self.reused => {}
            (Err(a), Err(b)) if a == b => {}
            _ => {
                return Err(format!(
                    "unpacked fresh: {answer:?}; into the previous answer: {into:?} holding {:?}",
                    self.reused
                ));
            }
        }
        if let Ok(a) = &answer {
            pack_resolution(&mut self.buf, format(bytes), a);
            let again = unpack_resolution(&self.buf);
            if again.as_ref() != Ok(a) {
                return Err(format!("answer {a:?} packed again unpacks as {again:?}"));
            }
        }

        let call = unpack_call(bytes);
        if let Ok((ctx, local, remote)) = &call {
            pack_call_ref(&mut self.buf, format(bytes), ctx.into(), local, remote);
            let again = unpack_call(&self.buf);
            if again != call {
                return Err(format!("call {call:?} packed again unpacks as {again:?}"));
            }
        }
        Ok((call.is_ok(), answer.is_ok()))
    }
}

/// The format an accepted input declares.
fn format(bytes: &[u8]) -> Format {
    Format::of(bytes).expect("an accepted input declares its format")
}

/// Where an input came from, for the failure message.
enum Origin<'a> {
    Seed(&'a Seed),
    Cut(&'a Seed, usize),
    Flip(&'a Seed, usize, u8),
    Delete(&'a Seed, usize),
    Insert(&'a Seed, usize, u8),
    Random(usize),
}

impl Origin<'_> {
    /// The kind of the seed it was made from, if any.
    fn kind(&self) -> Option<Kind> {
        match self {
            Origin::Seed(s)
            | Origin::Cut(s, _)
            | Origin::Flip(s, ..)
            | Origin::Delete(s, _)
            | Origin::Insert(s, ..) => Some(s.kind),
            Origin::Random(_) => None,
        }
    }
}

impl std::fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Seed(s) => write!(f, "seed {}", s.name),
            Origin::Cut(s, at) => write!(f, "seed {} cut to {at} bytes", s.name),
            Origin::Flip(s, at, mask) => write!(f, "seed {}, byte {at} xor {mask:#04x}", s.name),
            Origin::Delete(s, at) => write!(f, "seed {}, byte {at} deleted", s.name),
            Origin::Insert(s, at, b) => write!(f, "seed {}, {b:#04x} inserted at {at}", s.name),
            Origin::Random(i) => write!(f, "random input {i}"),
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Call,
    Answer,
}

/// xorshift64*: enough for picking bytes and positions, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // SplitMix64 of the seed: neighbouring seeds start far apart, and never at zero
        // (xorshift's one fixed point).
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        (self.next() >> 56) as u8
    }
}

struct Seed {
    /// Its file name in the fuzzer's corpus.
    name: String,
    kind: Kind,
    bytes: Vec<u8>,
}

/// Calls and answers as a host and a policy write them, each in both formats: a conflict on
/// an individual (TMF632's example, an email changed in one region), one at the limits of
/// every integer, one naming more regions than the reader keeps inline, one sent as views.
fn seeds() -> Vec<Seed> {
    let ctx = Context {
        tenant: "acme".into(),
        resolving_region: "eu-west-1".into(),
        relation: Relation::Concurrent,
        config: r#"{"deleteRule":"update-resurrects"}"#.into(),
    };
    let local = individual("eu-west-1", "jane.l@newmail.example", 3);
    let remote = individual("us-east-1", "jane.lopez@example.com", 2);
    let (limits_local, limits_remote) = at_the_limits();
    let mut many_regions = local.clone();
    many_regions.version_vector = REGIONS.iter().map(|r| Dot::new(*r, 1)).collect();
    many_regions.origin_region = REGIONS[9].into();
    let calls = [
        ("individual", &local, &remote),
        ("limits", &limits_local, &limits_remote),
        ("many-regions", &many_regions, &remote),
    ];
    let answers = [
        ("keep-local", Resolution::KeepLocal),
        ("take-remote", Resolution::TakeRemote),
        (
            "reject",
            Resolution::Reject("contactMedium: two préférés in one element".into()),
        ),
        ("merged", merged()),
        ("merged-many-regions", merged_many_regions()),
    ];
    // The call as a host sends it to a policy of contract 1.1 and later: local sends only its
    // family name, remote its new email and the family name.
    let FieldValue::Elements(elements) = &remote.fields[2].value else {
        unreachable!("contactMedium has elements")
    };
    let local_sent = [SentField::Whole(&local.fields[3])];
    let remote_sent = [
        SentField::Elements(&remote.fields[2], vec![&elements[0]]),
        SentField::Whole(&remote.fields[3]),
    ];

    let mut seeds = Vec::new();
    for format in [Format::V1, Format::V2, Format::V3] {
        let v = format as u8;
        for (name, l, r) in calls {
            let mut bytes = Vec::new();
            pack_call_ref(&mut bytes, format, (&ctx).into(), l, r);
            assert_eq!(unpack_call(&bytes), Ok((ctx.clone(), l.clone(), r.clone())));
            seeds.push(Seed {
                name: format!("call-{name}-v{v}"),
                kind: Kind::Call,
                bytes,
            });
        }
        let mut bytes = Vec::new();
        pack_call_sent(
            &mut bytes,
            format,
            (&ctx).into(),
            &local,
            &local_sent,
            &remote,
            &remote_sent,
        );
        unpack_call(&bytes).unwrap();
        seeds.push(Seed {
            name: format!("call-sent-v{v}"),
            kind: Kind::Call,
            bytes,
        });
        for (name, answer) in &answers {
            let mut bytes = Vec::new();
            pack_resolution(&mut bytes, format, answer);
            assert_eq!(unpack_resolution(&bytes).as_ref(), Ok(answer));
            seeds.push(Seed {
                name: format!("answer-{name}-v{v}"),
                kind: Kind::Answer,
                bytes,
            });
        }
    }
    // Format 3 with writes: every field of each side named by a write of its region, whose
    // context is the other side's vector.
    let writes = |v: &PartyVersion, other: &PartyVersion| {
        let dot = |n| Dot::new(v.origin_region.as_str(), n);
        Writes {
            fields: v
                .fields
                .iter()
                .enumerate()
                .map(|(i, f)| FieldWrite {
                    name: f.name.clone(),
                    dot: dot(i as u64 % 2 + 1),
                })
                .collect(),
            tombstone: None,
            writes: (1..=2)
                .map(|n| Write {
                    dot: dot(n),
                    context: other.version_vector.clone(),
                })
                .collect(),
        }
    };
    let (lw, rw) = (writes(&local, &remote), writes(&remote, &local));
    let mut bytes = Vec::new();
    pack_call_writes(&mut bytes, (&ctx).into(), (&local, &lw), (&remote, &rw));
    unpack_call(&bytes).unwrap();
    seeds.push(Seed {
        name: "call-writes-v3".into(),
        kind: Kind::Call,
        bytes,
    });
    seeds
}

const T0: u64 = 1_700_000_000_000;

/// More regions than the reader keeps inline (eight).
const REGIONS: [&str; 10] = [
    "eu-west-1",
    "us-east-1",
    "ap-south-1",
    "eu-central-1",
    "us-west-2",
    "ap-southeast-2",
    "sa-east-1",
    "ca-central-1",
    "me-south-1",
    "af-south-1",
];

fn json(name: &str, text: &str, stamp: Hlc) -> Field {
    Field {
        name: name.into(),
        stamp,
        value: FieldValue::Json(text.into()),
    }
}

/// An individual as TMF632's example has it, its email last written in `region`.
fn individual(region: &str, email: &str, counter: u64) -> PartyVersion {
    let written = Hlc::new(T0 + 1_000, 0, region);
    PartyVersion {
        tenant: "acme".into(),
        party_id: "42".into(),
        resource_type: ResourceType::Individual,
        fields: vec![
            json("@type", r#""Individual""#, Hlc::new(T0, 0, "eu-west-1")),
            json(
                "birthDate",
                r#""1967-09-26T05:00:00.246Z""#,
                Hlc::new(T0, 0, "eu-west-1"),
            ),
            Field {
                name: "contactMedium".into(),
                stamp: written.clone(),
                value: FieldValue::Elements(vec![
                    Element {
                        key: "c:dec23898fad0a49e38ffc2b1".into(),
                        entries: vec![Entry {
                            value: format!(
                                r#"{{"@type":"EmailContactMedium","emailAddress":"{email}","mediumType":"email","preferred":true}}"#
                            ),
                            stamp: written,
                            dot: Dot::new(region, counter),
                            position: 0,
                        }],
                    },
                    Element {
                        key: "c:fe79e25db2ccc80ed897f912".into(),
                        entries: vec![Entry {
                            // Longer than 127 bytes: a two-byte length.
                            value: concat!(
                                r#"{"@type":"GeographicAddressContactMedium","city":"Morristown","#,
                                r#""country":"USA","mediumType":"postalAddress","postCode":"07960","#,
                                r#""street1":"240 Headquarters Plazza"}"#
                            )
                            .into(),
                            stamp: Hlc::new(T0, 0, "eu-west-1"),
                            dot: Dot::new("eu-west-1", 1),
                            position: 1,
                        }],
                    },
                ]),
            },
            json("familyName", r#""Lopez""#, Hlc::new(T0, 0, "eu-west-1")),
            json("givenName", r#""Jöse""#, Hlc::new(T0, 1, "us-east-1")),
        ],
        version_vector: vec![Dot::new("eu-west-1", counter), Dot::new("us-east-1", 2)],
        tombstone: None,
        origin_region: region.into(),
    }
}

/// Every integer at its largest, empty strings, an empty element, a tombstone.
fn at_the_limits() -> (PartyVersion, PartyVersion) {
    let top = Hlc::new(u64::MAX, u32::MAX, "");
    let local = PartyVersion {
        tenant: String::new(),
        party_id: String::new(),
        resource_type: ResourceType::Organization,
        fields: vec![Field {
            name: String::new(),
            stamp: top.clone(),
            value: FieldValue::Elements(vec![
                Element {
                    key: String::new(),
                    entries: vec![Entry {
                        value: String::new(),
                        stamp: top.clone(),
                        dot: Dot::new("", u64::MAX),
                        position: u32::MAX,
                    }],
                },
                Element {
                    key: "empty".into(),
                    entries: Vec::new(),
                },
            ]),
        }],
        version_vector: vec![Dot::new("", u64::MAX), Dot::new("ü", 0)],
        tombstone: Some(top),
        origin_region: "ü".into(),
    };
    let remote = PartyVersion {
        fields: Vec::new(),
        version_vector: Vec::new(),
        tombstone: Some(Hlc::new(0, 0, "")),
        ..local.clone()
    };
    (local, remote)
}

/// A merged answer with every kind of merged value and a tombstone.
fn merged() -> Resolution {
    Resolution::Merged(MergedParty {
        tenant: "acme".into(),
        party_id: "42".into(),
        version_vector: vec![
            Dot::new("eu-west-1", 3),
            Dot::new("us-east-1", 2),
            Dot::new("ap-south-1", 1),
        ],
        fields: vec![
            MergedField {
                name: "@type".into(),
                value: MergedValue::Copy(Side::Local),
            },
            MergedField {
                name: "contactMedium".into(),
                value: MergedValue::Elements(MergedElements {
                    stamp_from: Side::Remote,
                    elements: vec![
                        vec![EntryRef {
                            side: Side::Remote,
                            element: 0,
                            entry: 0,
                        }],
                        vec![
                            EntryRef {
                                side: Side::Local,
                                element: 1,
                                entry: 0,
                            },
                            EntryRef {
                                side: Side::Remote,
                                element: 1,
                                entry: 0,
                            },
                        ],
                        Vec::new(),
                    ],
                }),
            },
            MergedField {
                name: "familyName".into(),
                value: MergedValue::Computed(Computed {
                    value: r#""Lopez-García""#.into(),
                    stamp: Hlc::new(T0 + 2_000, 1, "ap-south-1"),
                }),
            },
        ],
        tombstone: Some(Hlc::new(T0 + 3_000, 0, "us-east-1")),
    })
}

/// A merged answer naming ten regions, with references and a stamp at their limits.
fn merged_many_regions() -> Resolution {
    Resolution::Merged(MergedParty {
        tenant: "acme".into(),
        party_id: "p-0001".into(),
        version_vector: REGIONS
            .iter()
            .enumerate()
            .map(|(i, r)| Dot::new(*r, 1 << (6 * i)))
            .collect(),
        fields: vec![
            MergedField {
                name: "partyCharacteristic".into(),
                value: MergedValue::Elements(MergedElements {
                    stamp_from: Side::Local,
                    elements: vec![vec![EntryRef {
                        side: Side::Local,
                        element: u32::MAX,
                        entry: u32::MAX,
                    }]],
                }),
            },
            MergedField {
                name: "status".into(),
                value: MergedValue::Computed(Computed {
                    value: r#""validated""#.into(),
                    stamp: Hlc::new(u64::MAX, u32::MAX, REGIONS[9]),
                }),
            },
        ],
        tombstone: None,
    })
}
