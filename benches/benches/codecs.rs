//! The packed format against postcard (issue 21): each codec step of one call (the host encodes
//! the call, the policy's reader decodes it, the answer is encoded, the host decodes it), on
//! every conflict size, on the call as the host sends it today (only what differs) and on whole
//! versions. Natively, both codecs; instruction counts: `examples/codec_count.rs`.

use criterion::Criterion;
use policy_benches::fixtures::Size;
use policy_benches::postcard_form::{Codec, CodecCase, Sent, Step};
use policy_benches::report::Report;

fn id(size: Size, sent: Sent, codec: Codec, step: Step) -> String {
    format!(
        "{}-{}-{}-{}",
        size.name(),
        sent.name(),
        codec.name(),
        step.name()
    )
}

fn codecs(c: &mut Criterion, cases: &[(Size, Sent, CodecCase)]) {
    let mut g = c.benchmark_group("codec");
    for (size, sent, case) in cases {
        for step in Step::ALL {
            for codec in Codec::ALL {
                let mut buf = Vec::new();
                g.bench_function(id(*size, *sent, codec, step), |b| {
                    b.iter(|| case.run(codec, step, &mut buf))
                });
            }
        }
    }
    g.finish();
}

fn main() {
    let cases: Vec<_> = Size::ALL
        .into_iter()
        .flat_map(|size| Sent::ALL.map(|sent| (size, sent, CodecCase::new(size, sent))))
        .collect();
    let mut rep = Report::run("Codecs", |c| codecs(c, &cases));
    for (size, sent, case) in &cases {
        rep.line(
            &format!(
                "{} {}: call bytes packed / postcard",
                size.name(),
                sent.name()
            ),
            &format!("{} / {}", case.packed_call.len(), case.postcard_call.len()),
        );
        rep.line(
            &format!(
                "{} {}: answer bytes packed / postcard",
                size.name(),
                sent.name()
            ),
            &format!(
                "{} / {}",
                case.packed_answer.len(),
                case.postcard_answer.len()
            ),
        );
        for step in Step::ALL {
            rep.ratio(
                &format!(
                    "{} {} {}: postcard / packed",
                    size.name(),
                    sent.name(),
                    step.name()
                ),
                ("codec", &id(*size, *sent, Codec::Postcard, step)),
                ("codec", &id(*size, *sent, Codec::Packed, step)),
                None,
            );
        }
    }
    rep.finish();
}
