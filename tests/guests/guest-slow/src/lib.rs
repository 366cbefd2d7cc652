//! A policy of known cost: it hashes the local version's field names and values `spin` times
//! (`{"spin": N}` in its configuration), then merges as the default policy does. Memory reads,
//! arithmetic and branches, as a policy's own code is: what the fuel budget is calibrated on.
use policy_sdk::types::*;
struct Slow;

fn spin(config: &str) -> u64 {
    let Some(rest) = config.split("\"spin\":").nth(1) else {
        return 0;
    };
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or(0)
}

impl policy_sdk::Policy for Slow {
    fn describe() -> Description {
        policy_sdk::description("slow", "1.0.0")
    }
    fn resolve(ctx: &Context, local: &PartyVersion, remote: &PartyVersion) -> Resolution {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for round in 0..spin(&ctx.config) {
            for f in &local.fields {
                let text = match &f.value {
                    FieldValue::Json(t) => t.as_str(),
                    FieldValue::Elements(_) => f.name.as_str(),
                };
                for b in text.bytes() {
                    h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
                }
            }
            h = h.rotate_left(5) ^ round;
        }
        // Never true in practice; it keeps the loop from being optimised away.
        if std::hint::black_box(h) == 1 {
            return Resolution::Reject("hash collision".into());
        }
        policy_sdk::merge::resolve(ctx, local, remote)
    }
}
policy_sdk::export_policy!(Slow);
