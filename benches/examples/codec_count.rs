//! Runs one codec step of one conflict `N` times, for counting its instructions with valgrind
//! (issue 21): the count of `N` loops minus the count of none, divided by `N`, is one step.
//!
//! ```sh
//! cargo build --release -p policy-benches --example codec_count
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/codec_count postcard all typical differs 1000
//! ```
//!
//! Arguments: `packed|postcard`, `encode-call|decode-call|encode-answer|decode-answer|all`,
//! `small|typical|large`, `differs|whole`, N. `sizes` instead prints the bytes each codec
//! writes for every conflict.

use policy_benches::fixtures::Size;
use policy_benches::postcard_form::{Codec, CodecCase, Sent, Step};

fn pick<T: Copy>(all: &[T], name: impl Fn(T) -> &'static str, arg: Option<String>) -> T {
    let arg = arg.unwrap_or_default();
    all.iter()
        .copied()
        .find(|x| name(*x) == arg)
        .unwrap_or_else(|| {
            let names: Vec<_> = all.iter().map(|x| name(*x)).collect();
            panic!("expected one of {names:?}, found {arg:?}")
        })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("sizes") {
        println!(
            "| conflict | sent | call packed | call postcard | answer packed | answer postcard |"
        );
        println!("|---|---|---|---|---|---|");
        for size in Size::ALL {
            for sent in Sent::ALL {
                let c = CodecCase::new(size, sent);
                println!(
                    "| {} | {} | {} | {} | {} | {} |",
                    size.name(),
                    sent.name(),
                    c.packed_call.len(),
                    c.postcard_call.len(),
                    c.packed_answer.len(),
                    c.postcard_answer.len()
                );
            }
        }
        return;
    }
    let codec = pick(&Codec::ALL, Codec::name, first);
    let step = pick(&Step::ALL, Step::name, args.next());
    let size = pick(&Size::ALL, Size::name, args.next());
    let sent = pick(&Sent::ALL, Sent::name, args.next());
    let n: u32 = args
        .next()
        .and_then(|n| n.parse().ok())
        .expect("the number of loops");
    let case = CodecCase::new(size, sent);
    let mut buf = Vec::with_capacity(case.packed_call.len().max(case.postcard_call.len()));
    for _ in 0..n {
        case.run(codec, step, &mut buf);
    }
}
