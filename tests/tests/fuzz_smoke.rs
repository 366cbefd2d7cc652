//! The fuzz targets' properties (`fuzz/src/lib.rs`, included below as a module) over their
//! seed corpora and a few thousand inputs made from them, every choice drawn from one printed
//! seed: the part of the fuzzing that runs in the test command. The long runs are cargo-fuzz's
//! (`fuzz/README.md`); what they find is kept in `fuzz/corpus/<target>/` and replayed here.
//!
//! `FUZZ_SMOKE_SEED=<n> cargo test -p integration-tests --test fuzz_smoke` replays a run with
//! seed `n`; a failure names the input, writes it to a file for `cargo fuzz run`, and prints
//! that command. `BLESS=1` rewrites the seed corpora from what the code writes (below).

#[path = "../../fuzz/src/lib.rs"]
mod parsers_fuzz;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use host_aws::dynamo::party_item;
use host_core::api::{self, ApiRequest};
use host_core::conflict::CapturedConflict;
use host_core::conflict_log::{ConflictOutcome, ConflictRecord};
use host_core::event::parse_event;
use host_core::ingest::{Ingest, IngestConfig};
use host_core::store::memory::{Change, Journal, MemoryDeadLetters, MemoryStore, OwnCopy};
use host_core::store::{DeadLetter, IngestStore, Provenance, StoredParty};
use host_core::tenant::LogSettings;
use integration_tests::samples;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

/// The seed of a plain `cargo test`: a fixed one, so that the test is the same on every run.
const DEFAULT_SEED: u64 = 20_261_215;

/// Inputs made from the seeds, per target: together a few thousand, about five seconds in a
/// debug build (the event target validates each against the TMF632 schemas).
const MUTATIONS: usize = 600;

/// The largest input made, as the fuzz runs bound theirs (`-max_len=65536`).
const MAX_LEN: usize = 65_536;

const REPLAY: &str = "cargo test -p integration-tests --test fuzz_smoke";

/// A fuzz target: its name under `fuzz/` and the property it checks.
struct Target {
    name: &'static str,
    check: fn(&[u8]) -> bool,
}

impl Target {
    const fn new(name: &'static str, check: fn(&[u8]) -> bool) -> Self {
        Target { name, check }
    }
}

const TMF632_EVENT: Target = Target::new("tmf632_event", parsers_fuzz::tmf632_event);
const CAPTURED_CONFLICT: Target =
    Target::new("captured_conflict", parsers_fuzz::captured_conflicts);
const PARTY_ITEM: Target = Target::new("party_item", parsers_fuzz::party_item);
const STREAM_EVENT: Target = Target::new("stream_event", parsers_fuzz::stream_event);
const CONFLICT_RECORD: Target = Target::new("conflict_record", parsers_fuzz::conflict_record);
const JOURNAL_ITEM: Target = Target::new("journal_item", parsers_fuzz::journal_items);
const STREAM_FAILURE: Target = Target::new("stream_failure", parsers_fuzz::stream_failure);

/// One test a target, named for the property it checks: each runs [`smoke`] on its target.
macro_rules! smoke_tests {
    ($($test:ident => $target:ident;)*) => {$(
        #[test]
        fn $test() {
            smoke(&$target);
        }
    )*};
}

smoke_tests! {
    tmf632_events_are_refused_with_tmf630_bodies_or_applied_never_a_panic => TMF632_EVENT;
    captured_conflict_files_are_refused_line_by_line_or_read_back_never_a_panic => CAPTURED_CONFLICT;
    party_items_are_refused_or_read_back_never_a_panic => PARTY_ITEM;
    stream_batches_are_refused_or_their_images_read_back_never_a_panic => STREAM_EVENT;
    conflict_records_are_refused_or_read_back_never_a_panic => CONFLICT_RECORD;
    journal_items_are_refused_or_loaded_never_a_panic => JOURNAL_ITEM;
    stream_failure_messages_are_refused_or_read_back_never_a_panic => STREAM_FAILURE;
}

/// What the fuzzers start from is what the code below writes, file by file (a run may add
/// files of its own there, such as a minimised crash kept as a regression; those are replayed
/// but not checked).
#[test]
fn the_fuzzers_seed_corpora_are_what_the_code_writes() {
    let bless = std::env::var_os("BLESS").is_some();
    for (target, seeds) in seeds() {
        let dir = corpus_dir(target);
        for (name, bytes) in seeds {
            let path = dir.join(&name);
            if bless {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &bytes).unwrap();
            } else {
                let found = std::fs::read(&path).unwrap_or_default();
                assert!(
                    found == bytes,
                    "{} is not what the seed {name} is written as (BLESS=1 {REPLAY} rewrites it)",
                    path.display()
                );
            }
        }
    }
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// Every file of the target's corpus, then `MUTATIONS` inputs made from them.
fn smoke(target: &Target) {
    let seed = integration_tests::env_seed("FUZZ_SMOKE_SEED").unwrap_or(DEFAULT_SEED);
    println!("seed {seed} (replay with FUZZ_SMOKE_SEED={seed} {REPLAY})");
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ fnv(target.name));
    let mut check = Checker {
        target,
        seed,
        inputs: 0,
        accepted: 0,
    };

    let dir = corpus_dir(target.name);
    let mut corpus: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    corpus.sort();
    assert!(!corpus.is_empty(), "{} holds no seeds", dir.display());
    let mut corpus_accepted = 0;
    for (name, bytes) in &corpus {
        corpus_accepted += usize::from(check.run(&format!("corpus file {name}"), bytes));
    }
    // The seeds are real inputs: most of them must get past the parser, or the mutations
    // below hardly reach what it guards.
    assert!(
        corpus_accepted * 2 > corpus.len(),
        "only {corpus_accepted} of the {} files in {} are accepted",
        corpus.len(),
        dir.display()
    );

    for i in 0..MUTATIONS {
        let (from, bytes) = &corpus[rng.random_range(0..corpus.len())];
        let (_, other) = &corpus[rng.random_range(0..corpus.len())];
        let (how, input) = mutate(&mut rng, bytes, other);
        check.run(&format!("input {i}: {from}, {how}"), &input);
    }
    println!(
        "{}: {} inputs, {} accepted by the parser",
        target.name, check.inputs, check.accepted
    );
    // A mutation keeps a value valid often enough (another letter in a string, another
    // number) that none accepted means the properties of accepted inputs went unchecked.
    assert!(
        check.accepted > corpus.len() + MUTATIONS / 20,
        "only {} of {} inputs accepted: the properties of accepted inputs are hardly checked",
        check.accepted,
        check.inputs
    );
}

struct Checker<'a> {
    target: &'a Target,
    seed: u64,
    inputs: usize,
    accepted: usize,
}

impl Checker<'_> {
    /// Runs the target's check on `bytes`; on a panic, names the input and keeps it in a file.
    fn run(&mut self, origin: &str, bytes: &[u8]) -> bool {
        self.inputs += 1;
        match catch_unwind(AssertUnwindSafe(|| (self.target.check)(bytes))) {
            Ok(accepted) => {
                self.accepted += usize::from(accepted);
                accepted
            }
            Err(_) => {
                let name = self.target.name;
                let kept = std::env::temp_dir().join(format!("fuzz_smoke-{name}-{}", self.seed));
                std::fs::write(&kept, bytes).unwrap();
                let mut shown =
                    String::from_utf8_lossy(&bytes[..bytes.len().min(2_000)]).into_owned();
                if bytes.len() > 2_000 {
                    write!(shown, "… ({} bytes)", bytes.len()).unwrap();
                }
                panic!(
                    "{name}, {origin}: the check panicked (its message is above)\n\
                     input: {shown}\n\
                     kept in {kept}; replay: FUZZ_SMOKE_SEED={seed} {REPLAY}, or from fuzz/: \
                     cargo +nightly fuzz run {name} {kept}",
                    kept = kept.display(),
                    seed = self.seed,
                );
            }
        }
    }
}

/// An input made from `bytes` (and sometimes `other`, another seed of the target), and how.
fn mutate(rng: &mut ChaCha8Rng, bytes: &[u8], other: &[u8]) -> (String, Vec<u8>) {
    let mut out = bytes.to_vec();
    let how = match rng.random_range(0..10) {
        // Most mutations keep the JSON well-formed, so that they reach past the JSON parser
        // into what reads the values.
        0..=5 => match json_mutation(rng, bytes, other) {
            Some((how, mutated)) => {
                out = mutated;
                how
            }
            None => byte_mutation(rng, &mut out, other),
        },
        _ => byte_mutation(rng, &mut out, other),
    };
    out.truncate(MAX_LEN);
    (how, out)
}

fn byte_mutation(rng: &mut ChaCha8Rng, out: &mut Vec<u8>, other: &[u8]) -> String {
    let at = rng.random_range(0..=out.len());
    match rng.random_range(0..6) {
        0 => {
            out.truncate(at);
            format!("cut to {at} bytes")
        }
        1 if at < out.len() => {
            let mask = rng.random_range(1..=255u8);
            out[at] ^= mask;
            format!("byte {at} xor {mask:#04x}")
        }
        2 if at < out.len() => {
            let end = rng.random_range(at..=out.len().min(at + 64));
            out.drain(at..end);
            format!("bytes {at}..{end} deleted")
        }
        3 => {
            let token = TOKENS[rng.random_range(0..TOKENS.len())];
            out.splice(at..at, token.bytes());
            format!("{token:?} inserted at {at}")
        }
        4 => {
            let from = rng.random_range(0..=other.len());
            out.truncate(at);
            out.extend_from_slice(&other[from..]);
            format!("cut at {at}, another seed from byte {from} appended")
        }
        _ => {
            let byte = rng.random::<u8>();
            out.insert(at, byte);
            format!("{byte:#04x} inserted at {at}")
        }
    }
}

/// Pieces of JSON and of the formats' own words, as the fuzzers' dictionary has them.
const TOKENS: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1e308",
    "-0",
    "18446744073709551616",
    "\"\"",
    "{}",
    "[]",
    ",",
    ":",
    "\"",
    "\\u0000",
    "\\ud800",
    "{\"S\":\"x\"}",
    "{\"N\":\"1e400\"}",
    "{\"M\":{}}",
    "{\"L\":[]}",
    "{\"NULL\":true}",
    "{\"B\":\"AA==\"}",
    "{\"SS\":[]}",
    "\"@type\"",
    "\"id\"",
    "\"eventType\"",
    "\"json\"",
    "\"elements\"",
    "\"stamp\"",
    "\"wallMs\"",
    "\"deceaded\"",
];

/// A well-formed change of one value of the input (a line of it, for a file of lines).
fn json_mutation(rng: &mut ChaCha8Rng, bytes: &[u8], other: &[u8]) -> Option<(String, Vec<u8>)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let lines: Vec<&str> = text.split('\n').collect();
    let line = rng.random_range(0..lines.len());
    let mut value: Value = serde_json::from_str(lines[line]).ok()?;
    let donor: Option<Value> = std::str::from_utf8(other)
        .ok()
        .and_then(|t| t.split('\n').find_map(|l| serde_json::from_str(l).ok()));

    let mut paths = Vec::new();
    pointers(&value, String::new(), &mut paths);
    let path = paths[rng.random_range(0..paths.len())].clone();
    let node = value.pointer_mut(&path)?;
    let how = match rng.random_range(0..7) {
        0 => {
            // Remove a member or an element.
            match node {
                Value::Object(map) if !map.is_empty() => {
                    let key = map.keys().nth(rng.random_range(0..map.len())).cloned()?;
                    map.remove(&key);
                    format!("{path}/{key} removed")
                }
                Value::Array(items) if !items.is_empty() => {
                    let at = rng.random_range(0..items.len());
                    items.remove(at);
                    format!("{path}/{at} removed")
                }
                _ => {
                    *node = Value::Null;
                    format!("{path} set to null")
                }
            }
        }
        1 => {
            // An unknown member, or a repeated element.
            match node {
                Value::Object(map) => {
                    map.insert("x-unknown".into(), json!(1));
                    format!("{path}/x-unknown added")
                }
                Value::Array(items) if !items.is_empty() => {
                    let n = rng.random_range(1..64);
                    let item = items[rng.random_range(0..items.len())].clone();
                    items.extend(std::iter::repeat_n(item, n));
                    format!("an element of {path} repeated {n} times")
                }
                _ => {
                    *node = json!([node.clone()]);
                    format!("{path} wrapped in an array")
                }
            }
        }
        2 => {
            // A value from another seed of the target, of another shape.
            let donor = donor?;
            let mut donated = Vec::new();
            pointers(&donor, String::new(), &mut donated);
            let from = &donated[rng.random_range(0..donated.len())];
            *node = donor.pointer(from)?.clone();
            format!("{path} replaced with another seed's {from}")
        }
        3 => {
            // The same value as another type.
            let (changed, what) = match node {
                Value::String(s) => (
                    s.parse::<f64>().map(|n| json!(n)).unwrap_or(json!(s.len())),
                    "a number",
                ),
                Value::Number(n) => (json!(n.to_string()), "a string"),
                Value::Bool(b) => (json!(u8::from(*b)), "a number"),
                Value::Null => (json!({}), "an object"),
                Value::Array(items) => (json!(items.len()), "a number"),
                Value::Object(map) => (Value::Array(map.values().cloned().collect()), "an array"),
            };
            *node = changed;
            format!("{path} as {what}")
        }
        _ => {
            let (edge, what) = edge_value(rng);
            *node = edge;
            format!("{path} set to {what}")
        }
    };
    let mut lines: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    lines[line] = value.to_string();
    Some((
        format!("line {}: {how}", line + 1),
        lines.join("\n").into_bytes(),
    ))
}

/// Values at the edges of what a reader expects.
fn edge_value(rng: &mut ChaCha8Rng) -> (Value, &'static str) {
    match rng.random_range(0..12) {
        0 => (json!(u64::MAX), "u64::MAX"),
        1 => (json!(i64::MIN), "i64::MIN"),
        2 => (json!(-1), "-1"),
        3 => (json!(1.0e308), "1e308"),
        4 => (json!(""), "an empty string"),
        5 => (json!("x".repeat(20_000)), "a 20,000-byte string"),
        6 => (json!("\u{0}\u{fffd}\u{10ffff}"), "odd characters"),
        7 => {
            let mut deep = json!(0);
            for _ in 0..120 {
                deep = json!([deep]);
            }
            (deep, "arrays nested 120 deep")
        }
        8 => (json!({"S": "PARTY"}), "a string attribute"),
        9 => (
            json!({"N": "340282366920938463463374607431768211456"}),
            "a 2^128 number attribute",
        ),
        10 => (json!({"M": {"": {"NULL": true}}}), "a map attribute"),
        _ => (json!(1.5), "1.5"),
    }
}

/// The JSON pointer of every node of `value`.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let k = k.replace('~', "~0").replace('/', "~1");
                pointers(v, format!("{at}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                pointers(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// FNV-1a, to give each target its own stream from the one seed.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

// ---- The seed corpora: what the specification's examples, the samples and the code write ----

const T0: u64 = 1_735_689_600_000;

type Seeds = Vec<(String, Vec<u8>)>;

fn seeds() -> Vec<(&'static str, Seeds)> {
    vec![
        (TMF632_EVENT.name, event_seeds()),
        (CAPTURED_CONFLICT.name, captured_seeds()),
        (PARTY_ITEM.name, item_seeds()),
        (STREAM_EVENT.name, stream_seeds()),
        (CONFLICT_RECORD.name, record_seeds()),
        (JOURNAL_ITEM.name, journal_seeds()),
        (STREAM_FAILURE.name, stream_failure_seeds()),
    ]
}

const EVENTS: [&str; 8] = [
    "IndividualCreateEvent",
    "IndividualAttributeValueChangeEvent",
    "IndividualStateChangeEvent",
    "IndividualDeleteEvent",
    "OrganizationCreateEvent",
    "OrganizationAttributeValueChangeEvent",
    "OrganizationStateChangeEvent",
    "OrganizationDeleteEvent",
];

/// The official v5 event examples as published, a v4 envelope of each kind, and the bodies
/// of the official create and merge-patch examples (what `POST individual` carries).
fn event_seeds() -> Seeds {
    let v5 = samples::specs_dir().join("examples/v5");
    let file = |name: &str| std::fs::read(v5.join(format!("{name}.json"))).unwrap();
    let mut seeds = Seeds::new();
    for name in EVENTS {
        seeds.push((format!("v5-{name}.json"), file(&format!("{name}_request"))));
    }
    for name in EVENTS {
        let event = v4_event(name);
        parse_event(&event).unwrap_or_else(|e| panic!("the v4 {name} seed: {e}"));
        seeds.push((
            format!("v4-{name}"),
            serde_json::to_vec_pretty(&event).unwrap(),
        ));
    }
    for name in [
        "Individual_create_example_request",
        "Organization_create_example_request",
        "Individual_update_example_Patch_Merge_request",
        "Organization_update_example_Patch_Merge_request",
    ] {
        seeds.push((format!("api-{name}.json"), file(name)));
    }
    seeds
}

/// A v4 event (no `@type` on the envelope; v4 members and spellings: `deceaded`, contact
/// media with a `characteristic`, related parties by `@referredType`).
fn v4_event(event_type: &str) -> Value {
    let individual = event_type.starts_with("Individual");
    let party = match (individual, event_type) {
        (true, t) if t.contains("StateChange") => json!({"id": "42", "status": "deceaded"}),
        (true, t) if t.contains("Delete") => json!({"id": "42"}),
        (true, _) => json!({
            "id": "42", "givenName": "Jane", "familyName": "Lopez", "gender": "female",
            "birthDate": "1967-09-26T05:00:00.246Z", "status": "validated",
            "contactMedium": [
                {"mediumType": "email", "preferred": true,
                 "characteristic": {"emailAddress": "jane.lopez@example.com"}},
                {"mediumType": "postalAddress", "preferred": false,
                 "characteristic": {"city": "Morristown", "country": "USA", "postCode": "07960",
                                    "street1": "240 Headquarters Plaza"}}
            ],
            "partyCharacteristic": [{"name": "hobby", "value": "tennis"},
                                    {"name": "hobby", "value": "football"}],
            "relatedParty": [{"id": "128", "role": "employer", "@referredType": "Organization"}]
        }),
        (false, t) if t.contains("StateChange") => json!({"id": "128", "status": "closed"}),
        (false, t) if t.contains("Delete") => json!({"id": "128"}),
        (false, _) => json!({
            "id": "128", "name": "Coffee Do Brazil", "tradingName": "Coffee Do Brazil Ltd",
            "isLegalEntity": true, "organizationType": "company", "status": "validated",
            "existsDuring": {"startDateTime": "2015-10-15T00:00:00.000Z"}
        }),
    };
    let key = if individual {
        "individual"
    } else {
        "organization"
    };
    json!({
        "eventId": format!("v4-{event_type}"),
        "eventTime": "2019-06-01T12:00:00.000Z",
        "eventType": event_type,
        "timeOcurred": "2019-06-01T12:00:00.000Z",
        "correlationId": "c-1",
        "domain": "Commercial",
        "event": { key: party },
    })
}

/// Each line of the shipped sample file (the whole file is larger than the fuzzers' inputs),
/// and a file with comments, blank lines and a broken line between two good ones.
fn captured_seeds() -> Seeds {
    let text = std::fs::read_to_string(samples::samples_path()).unwrap();
    let mut seeds = Seeds::new();
    for (line, conflict) in text.lines().zip(samples::build()) {
        let id = conflict.id.clone().unwrap();
        seeds.push((format!("sample-{id}.jsonl"), line.as_bytes().to_vec()));
    }
    let first = text.lines().next().unwrap();
    let last = text.lines().last().unwrap();
    seeds.push((
        "commented.jsonl".to_owned(),
        format!("# captured by hand\n\n{first}\n{{\"tenant\": \"acme\"\n   \n{last}\n")
            .into_bytes(),
    ));
    seeds
}

/// Parties as the stores hold them: the samples' versions with provenance.
fn stored_parties() -> Vec<(String, StoredParty)> {
    samples::build()
        .into_iter()
        .take(4)
        .flat_map(|c| {
            let id = c.id.clone().unwrap();
            [("local", c.local), ("remote", c.remote)].map(|(side, version)| {
                let provenance = Provenance {
                    last_event_id: Some(format!("{id}-{side}")),
                    policy_digest: (side == "local").then(|| "ab".repeat(32)),
                    written_by: version.origin_region.clone(),
                    written_at_ms: T0,
                };
                (
                    format!("{id}-{side}"),
                    StoredParty {
                        version,
                        provenance,
                        writes: Default::default(),
                    },
                )
            })
        })
        .collect()
}

/// An item as `dynamo::party_item` writes it, in DynamoDB's JSON form (members sorted, so
/// that the file is the same on every run).
fn item_json(party: &StoredParty) -> Value {
    let item = serde_dynamo::Item::from(party_item(party).unwrap());
    serde_json::to_value(item).unwrap()
}

/// Items the code writes for the samples' parties, and the items of the deployed tables'
/// format (`host-aws/tests/fixtures/items.json`).
fn item_seeds() -> Seeds {
    let mut seeds: Seeds = stored_parties()
        .iter()
        .map(|(name, p)| {
            (
                format!("{name}.json"),
                item_json(p).to_string().into_bytes(),
            )
        })
        .collect();
    let fixtures = fixtures();
    for name in ["party", "deletedParty"] {
        seeds.push((
            format!("deployed-{name}.json"),
            fixtures[name]["item"].to_string().into_bytes(),
        ));
    }
    seeds
}

fn fixtures() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../host-aws/tests/fixtures/items.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// One stream record as Lambda delivers it (`NEW_AND_OLD_IMAGES`).
fn stream_record(n: u64, name: &str, keys: Value, old: Option<Value>, new: Option<Value>) -> Value {
    let mut change = json!({
        "ApproximateCreationDateTime": T0 / 1000 + n,
        "Keys": keys,
        "SequenceNumber": format!("{}", 4_000_000_000_000_000_000_000u128 + u128::from(n)),
        "SizeBytes": 1_024 + n,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    });
    if let Some(old) = old {
        change["OldImage"] = old;
    }
    if let Some(new) = new {
        change["NewImage"] = new;
    }
    json!({
        "eventID": format!("{n:032x}"),
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "eu-west-1",
        "dynamodb": change,
        "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/parties/stream/2025-01-01T00:00:00.000",
    })
}

/// Batches of the party table's stream built from the items the code writes: an overwrite
/// (what reconcile resolves), a deletion overwritten, and a batch with an insert, an
/// idempotency record's change and a removal, which reconcile passes over.
fn stream_seeds() -> Seeds {
    let parties = stored_parties();
    let keys = |item: &Value| json!({"pk": item["pk"], "sk": item["sk"]});
    let (old, new) = (item_json(&parties[0].1), item_json(&parties[1].1));
    let fixtures = fixtures();
    let deleted = fixtures["deletedParty"]["item"].clone();
    let record_item = fixtures["completedRecord"]["item"].clone();
    let batch = |records: Vec<Value>| json!({ "Records": records }).to_string().into_bytes();
    vec![
        (
            "modify-party.json".to_owned(),
            batch(vec![stream_record(
                1,
                "MODIFY",
                keys(&new),
                Some(old.clone()),
                Some(new.clone()),
            )]),
        ),
        (
            "modify-deleted-party.json".to_owned(),
            batch(vec![stream_record(
                2,
                "MODIFY",
                keys(&deleted),
                Some(deleted.clone()),
                Some(fixtures["party"]["item"].clone()),
            )]),
        ),
        (
            "mixed-batch.json".to_owned(),
            batch(vec![
                stream_record(3, "INSERT", keys(&old), None, Some(old.clone())),
                stream_record(
                    4,
                    "MODIFY",
                    keys(&record_item),
                    Some(record_item.clone()),
                    Some(record_item.clone()),
                ),
                stream_record(
                    5,
                    "MODIFY",
                    keys(&new),
                    Some(new.clone()),
                    Some(old.clone()),
                ),
                stream_record(6, "REMOVE", keys(&new), Some(new.clone()), None),
            ]),
        ),
    ]
}

/// Records as the conflict log writes them (`ConflictRecord::new`, stored as compact JSON by
/// both the local-directory and the DynamoDB log): merged, rejected, failed, re-resolved, and
/// one as the DynamoDB log shortens an oversized record (its written parties left out).
fn record_seeds() -> Seeds {
    let conflicts = samples::build();
    let digest = Some("ab".repeat(32));
    let record = |c: &CapturedConflict, at: u64, outcome: ConflictOutcome| {
        let config = c.config_text();
        ConflictRecord::new(
            "eu",
            &c.local,
            &c.remote,
            &config,
            T0 + at,
            &LogSettings::default(),
            outcome,
        )
    };
    let merged = |c: &CapturedConflict, by: &str, at: u64| ConflictOutcome {
        at_ms: T0 + at,
        by: by.to_owned(),
        decision: "merged".to_owned(),
        reason: None,
        policy_digest: digest.clone(),
        written: Some(c.remote.clone()),
    };
    let mut seeds = Vec::new();
    seeds.push((
        "merged",
        record(&conflicts[0], 0, merged(&conflicts[0], "reconcile", 0)),
    ));
    seeds.push((
        "rejected",
        record(
            &conflicts[1],
            1,
            ConflictOutcome::failed(
                "reconcile",
                T0 + 1,
                "rejected",
                "status: deceased is terminal",
                digest.clone(),
            ),
        ),
    ));
    seeds.push((
        "failed",
        record(
            &conflicts[2],
            2,
            ConflictOutcome::failed(
                "reconcile",
                T0 + 2,
                "failed",
                "the policy ran past its deadline",
                digest.clone(),
            ),
        ),
    ));
    let mut redriven = record(
        &conflicts[3],
        3,
        ConflictOutcome::failed(
            "reconcile",
            T0 + 3,
            "failed",
            "the policy trapped",
            digest.clone(),
        ),
    );
    redriven
        .outcomes
        .push(merged(&conflicts[3], "redrive", 60_000));
    seeds.push(("redriven", redriven));
    let last = conflicts.last().unwrap();
    seeds.push(("with-config", record(last, 4, merged(last, "host-cli", 4))));
    let mut seeds: Seeds = seeds
        .into_iter()
        .map(|(name, r)| (format!("{name}.json"), serde_json::to_vec(&r).unwrap()))
        .collect();
    let mut shortened = serde_json::to_value(record(
        &conflicts[0],
        0,
        merged(&conflicts[0], "reconcile", 0),
    ))
    .unwrap();
    shortened["outcomes"][0]
        .as_object_mut()
        .unwrap()
        .remove("written");
    shortened["truncated"] = json!("written parties omitted: over the item limit");
    seeds.push((
        "shortened.json".to_owned(),
        shortened.to_string().into_bytes(),
    ));
    seeds
}

/// A journal that keeps what a region's store hands it, in order.
#[derive(Default)]
struct Kept(Mutex<Vec<Change>>);

impl Journal for Kept {
    fn write(&self, _region: &str, changes: Vec<Change>) {
        self.0.lock().unwrap().extend(changes);
    }
}

/// Items as `serve`'s journal stores them (one JSON value each, as `durable.rs` writes them):
/// the changes a region's store makes while its API applies the official events (claims,
/// parties, own copies, completed records), releases and expiries, a dead letter, and one
/// restart's worth of items, one a line.
fn journal_seeds() -> Seeds {
    let journal = Arc::new(Kept::default());
    let store = MemoryStore::replica("eu", Arc::new(|| T0)).with_journal(journal.clone());
    let ingest = Ingest::new(store, MemoryDeadLetters::default(), IngestConfig::new("eu"));
    for (i, name) in [
        "IndividualCreateEvent",
        "IndividualAttributeValueChangeEvent",
        "IndividualStateChangeEvent",
    ]
    .into_iter()
    .enumerate()
    {
        let event = samples::event(&format!("{name}_request"), &format!("e-{i}"), i as u32);
        let route = host_core::event::listener_route(name).unwrap();
        let request = ApiRequest::new("POST", &format!("/tmf-api/party/v5{route}"))
            .with_body(event.to_string());
        let answer = api::handle(&ingest, None, "acme", &request, T0 + i as u64, T0 + 30_000);
        assert_eq!(
            answer.response.status, 201,
            "{name}: {:?}",
            answer.response.body
        );
    }
    ingest
        .store()
        .claim(
            &host_core::store::IdempotencyRecord {
                tenant: "acme".into(),
                key: "abandoned".into(),
                payload_hash: "00".repeat(32),
                status: host_core::store::RecordStatus::InProgress,
                in_progress_until: T0 + 30_000,
                expires_at: T0 / 1000 + 86_400,
                result: None,
            },
            T0,
        )
        .unwrap();
    ingest.store().release("acme", "abandoned").unwrap();
    let swept_from = journal.0.lock().unwrap().len();
    ingest.store().sweep(T0 + 10 * 86_400_000, 0);
    let mut changes = journal.0.lock().unwrap().clone();
    // A sweep forgets in the order of a hash map: sorted, the files are the same on every run.
    changes[swept_from..].sort_by_key(|c| serde_json::to_string(c).unwrap());

    let mut seeds = Seeds::new();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for change in &changes {
        let kind = match change {
            Change::Party { .. } => "party",
            Change::Own(_) => "own",
            Change::Record { record, .. } => match record.status {
                host_core::store::RecordStatus::InProgress => "claim",
                host_core::store::RecordStatus::Completed => "record",
            },
            Change::Released { .. } => "released",
            Change::Expired { .. } => "expired",
        };
        let n = kinds.entry(kind).or_default();
        *n += 1;
        // The first two of each kind: enough to start from.
        if *n <= 2 {
            seeds.push((
                format!("{kind}-{n}.json"),
                serde_json::to_vec(change).unwrap(),
            ));
        }
    }
    for kind in ["party", "own", "claim", "record", "released", "expired"] {
        assert!(kinds.contains_key(kind), "no {kind} change was journaled");
    }
    let letter = DeadLetter {
        tenant: "acme".into(),
        region: "eu".into(),
        reason: "the party would be 512000 bytes, over the store's 409600-byte item limit; nothing was truncated".into(),
        idempotency_key: Some("k-1".into()),
        payload: samples::example("IndividualCreateEvent_request"),
    };
    seeds.push((
        "dead-letter.json".to_owned(),
        serde_json::to_vec(&letter).unwrap(),
    ));
    // As many items as fit in a fuzzer's input.
    let mut restart = Vec::new();
    for line in changes.iter().map(|c| serde_json::to_string(c).unwrap()) {
        if restart.iter().map(|l: &String| l.len() + 1).sum::<usize>() + line.len() > MAX_LEN / 2 {
            break;
        }
        restart.push(line);
    }
    restart.push(serde_json::to_string(&letter).unwrap());
    seeds.push(("restart.jsonl".to_owned(), restart.join("\n").into_bytes()));
    // The captured conflicts' local version kept as a region's own write over the remote one:
    // what a restart re-queues for reconcile.
    let sample = &samples::build()[0];
    let overwritten = [
        Change::Own(OwnCopy::Party(StoredParty {
            version: sample.local.clone(),
            provenance: Provenance {
                written_by: sample.local.origin_region.clone(),
                ..Provenance::default()
            },
            writes: Default::default(),
        })),
        Change::Party {
            party: StoredParty {
                version: sample.remote.clone(),
                provenance: Provenance {
                    written_by: sample.remote.origin_region.clone(),
                    ..Provenance::default()
                },
                writes: Default::default(),
            },
            stamp: host_core::store::memory::WriteStamp {
                at_ms: T0,
                seq: 7,
                region: sample.remote.origin_region.clone(),
            },
        },
    ];
    let lines: Vec<String> = overwritten
        .iter()
        .map(|c| serde_json::to_string(c).unwrap())
        .collect();
    seeds.push((
        "restart-overwritten.jsonl".to_owned(),
        lines.join("\n").into_bytes(),
    ));
    // What the hub keeps beside the journal: a change owed to listeners as the write left it
    // (a restart makes its event from the new image), the same once its event was made, and a
    // hub dead letter.
    let (party, stamp) = changes
        .iter()
        .rev()
        .find_map(|c| match c {
            Change::Party { party, stamp } => Some((party.clone(), stamp.clone())),
            _ => None,
        })
        .expect("a party was journaled");
    let event = host_serve::hub::event_of_new_image("eu", &party, &stamp)
        .expect("an owed change has an event");
    let owed = [
        (
            "owed-change.json",
            host_serve::durable::Owed::Change {
                region: "eu".into(),
                party: Box::new(party.clone()),
                stamp,
            },
        ),
        (
            "owed-event.json",
            host_serve::durable::Owed::Event {
                region: "eu".into(),
                tenant: "acme".into(),
                event: event.clone(),
                listeners: vec!["0123456789abcdef".into()],
            },
        ),
    ];
    for (name, o) in owed {
        seeds.push((name.to_owned(), serde_json::to_vec(&o).unwrap()));
    }
    let hub_letter = host_serve::hub::HubDeadLetter {
        listener: "0123456789abcdef".into(),
        callback: "http://127.0.0.1:9/listener".into(),
        event_id: event["eventId"].as_str().unwrap_or_default().to_owned(),
        reason: "the callback could not be reached: connection refused (4 attempts)".into(),
    };
    seeds.push((
        "hub-dead-letter.json".to_owned(),
        serde_json::to_vec(&hub_letter).unwrap(),
    ));
    // Since redrive, the hub keeps a letter's event with it.
    let kept = host_serve::hub::KeptLetter {
        letter: hub_letter,
        event: Some(event.clone()),
    };
    seeds.push((
        "hub-dead-letter-with-event.json".to_owned(),
        serde_json::to_vec(&kept).unwrap(),
    ));
    seeds
}

/// Lambda's on-failure message of a DynamoDB stream batch (the shape AWS documents), of one
/// record and of a batch, and a message of another kind of source.
fn stream_failure_seeds() -> Seeds {
    let message = |first: &str, last: &str, size: u64| {
        json!({
            "requestContext": {"requestId": "316aa6d0-8154-4a4d-a8f6-2ee4c5bd4ed9",
                "functionArn": "arn:aws:lambda:eu-west-1:123456789012:function:tmf632-eu-ReconcileFunction:live",
                "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 6},
            "responseContext": {"statusCode": 200, "executedVersion": "7", "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": "2026-12-06T10:00:00.000Z",
            "DDBStreamBatchInfo": {
                "shardId": "shardId-00000001733484800000-8b7f1e44",
                "startSequenceNumber": first,
                "endSequenceNumber": last,
                "approximateArrivalOfFirstRecord": "2026-12-06T09:59:00Z",
                "approximateArrivalOfLastRecord": "2026-12-06T09:59:01Z",
                "batchSize": size,
                "streamArn": "arn:aws:dynamodb:eu-west-1:123456789012:table/tmf632-parties/stream/2026-12-01T00:00:00.000"
            }
        })
        .to_string()
        .into_bytes()
    };
    vec![
        (
            "one-record.json".to_owned(),
            message("800000000003126276362", "800000000003126276362", 1),
        ),
        (
            "batch.json".to_owned(),
            message("800000000003126276362", "800000000003126279999", 100),
        ),
        (
            "kinesis-source.json".to_owned(),
            json!({"KinesisBatchInfo": {"shardId": "shardId-000000000001",
                "startSequenceNumber": "49601189658422359378836298521827638475320189012309704706",
                "endSequenceNumber": "49601189658422359378836298521827638475320189012309704706",
                "batchSize": 1, "streamArn": "arn:aws:kinesis:eu-west-1:123456789012:stream/s"}})
            .to_string()
            .into_bytes(),
        ),
    ]
}
