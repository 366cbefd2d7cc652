//! The postcard mirrors of the contract's values (issue 21) carry what the packed format
//! carries: on every benchmark conflict, as sent and whole, the call and the default merge's
//! answer come back from postcard's bytes equal to the original, as they do from the packed
//! bytes, and every codec step runs.

use policy_benches::fixtures::Size;
use policy_benches::postcard_form::{Call, Codec, CodecCase, Resolution, Sent, Step};
use policy_types as t;

#[test]
fn postcard_and_packed_round_trips_equal_the_original() {
    for size in Size::ALL {
        for sent in Sent::ALL {
            let case = CodecCase::new(size, sent);
            let what = format!("{size:?} {sent:?}");

            let call: Call = postcard::from_bytes(&case.postcard_call).unwrap();
            assert_eq!(call, case.pc_call, "{what}: the postcard call");
            let ctx: t::Context = call.context.into();
            let (local, remote): (t::PartyVersion, t::PartyVersion) =
                (call.local.into(), call.remote.into());
            assert_eq!(
                (&ctx, &local, &remote),
                (&case.ctx, &case.local, &case.remote),
                "{what}: the call through postcard"
            );
            let answer: Resolution = postcard::from_bytes(&case.postcard_answer).unwrap();
            assert_eq!(
                t::Resolution::from(answer),
                case.answer,
                "{what}: the answer through postcard"
            );
            assert!(
                matches!(case.answer, t::Resolution::Merged(_)),
                "{what}: a merge"
            );

            let (ctx, local, remote) = policy_packed::unpack_call(&case.packed_call).unwrap();
            assert_eq!(
                (&ctx, &local, &remote),
                (&case.ctx, &case.local, &case.remote),
                "{what}: the call through the packed format"
            );
            assert_eq!(
                policy_packed::unpack_resolution(&case.packed_answer).unwrap(),
                case.answer,
                "{what}: the answer through the packed format"
            );

            // Each step writes what the case holds (the bytes the readers are timed on).
            for codec in Codec::ALL {
                for step in Step::ALL {
                    let mut buf = Vec::new();
                    case.run(codec, step, &mut buf);
                    let expected = match (codec, step) {
                        (Codec::Packed, Step::EncodeCall) => &case.packed_call,
                        (Codec::Packed, Step::EncodeAnswer | Step::All) => &case.packed_answer,
                        (Codec::Postcard, Step::EncodeCall) => &case.postcard_call,
                        (Codec::Postcard, Step::EncodeAnswer | Step::All) => &case.postcard_answer,
                        _ => continue,
                    };
                    assert_eq!(&buf, expected, "{what}: {codec:?} {step:?}");
                }
            }
        }
    }
}

/// The packed call the benchmarks time on the versions as sent is byte for byte what the host
/// writes from its views into the whole versions (`Stripped::pack`).
#[test]
fn the_packed_call_as_sent_is_the_hosts() {
    for size in Size::ALL {
        let pair = policy_benches::fixtures::concurrent(size);
        let stripped = host_core::sandbox::strip::strip(&pair.local, &pair.remote).unwrap();
        let mut host = Vec::new();
        stripped.pack(
            &mut host,
            policy_packed::Format::V2,
            (&pair.context()).into(),
        );
        let case = CodecCase::new(size, Sent::Differs);
        assert_eq!(host, case.packed_call, "{size:?}");
    }
}
