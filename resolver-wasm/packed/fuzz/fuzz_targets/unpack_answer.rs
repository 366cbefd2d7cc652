//! The host's reader of what an untrusted guest wrote: `unpack_resolution`, and
//! `unpack_resolution_into` over a previous answer as the host calls it. Both must refuse or
//! accept alike, and what they accept must pack and unpack back to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use policy_packed::{Format, pack_resolution, unpack_resolution, unpack_resolution_into};
use policy_types::{
    Computed, Dot, EntryRef, Hlc, MergedElements, MergedField, MergedParty, MergedValue,
    Resolution, Side,
};

fuzz_target!(|bytes: &[u8]| {
    let fresh = unpack_resolution(bytes);
    // The host unpacks into the answer of its previous call: start from a large one, so that
    // its strings and vectors are reused, shortened and overwritten.
    let mut into = previous();
    let reused = unpack_resolution_into(bytes, &mut into);
    match (&fresh, &reused) {
        (Ok(a), Ok(())) => assert_eq!(a, &into, "unpacked into a previous answer"),
        (Err(a), Err(b)) => assert_eq!(a, b, "refused over a previous answer"),
        _ => panic!("fresh {fresh:?}, into a previous answer {reused:?}"),
    }
    let Ok(answer) = fresh else { return };
    let format = Format::of(bytes).expect("an accepted answer declares its format");
    let mut again = Vec::new();
    pack_resolution(&mut again, format, &answer);
    assert_eq!(
        unpack_resolution(&again).as_ref(),
        Ok(&answer),
        "packed again"
    );
    // And over the answer just read, as the next call of the host would.
    unpack_resolution_into(&again, &mut into).expect("packed again");
    assert_eq!(into, answer, "packed again, unpacked into itself");
});

fn previous() -> Resolution {
    let stamp = Hlc::new(1_700_000_000_000, 1, "ap-southeast-2");
    Resolution::Merged(MergedParty {
        tenant: "a-tenant-with-a-long-name".into(),
        party_id: "p-0000000000000001".into(),
        version_vector: ["eu-west-1", "us-east-1", "ap-southeast-2", "sa-east-1"]
            .iter()
            .map(|r| Dot::new(*r, 7))
            .collect(),
        fields: (0..6)
            .map(|i| MergedField {
                name: format!("field-{i}"),
                value: match i % 3 {
                    0 => MergedValue::Copy(Side::Remote),
                    1 => MergedValue::Elements(MergedElements {
                        stamp_from: Side::Local,
                        elements: vec![vec![EntryRef {
                            side: Side::Remote,
                            element: i,
                            entry: 0,
                        }]],
                    }),
                    _ => MergedValue::Computed(Computed {
                        value: r#"{"computed":true}"#.into(),
                        stamp: stamp.clone(),
                    }),
                },
            })
            .collect(),
        tombstone: Some(stamp.clone()),
    })
}
