//! Written against the WIT as an attacker would: the default merge, then values computed over
//! it that follow every structural rule (members the inputs hold, stamped with the inputs'
//! stamps) and are the same in any order, so every law but validity holds; but they are not
//! TMF632: `status` is "bogus-status" and `contactMedium` the string "not-an-array". With
//! `{"oversize": N}` in its configuration it computes a `givenName` of N bytes instead. The host
//! must refuse both.
use policy_sdk::types::*;
struct SchemaBreak;
impl policy_sdk::Policy for SchemaBreak {
    fn describe() -> Description {
        policy_sdk::description("hostile-schema-break", "0.0.1")
    }
    fn resolve(ctx: &Context, local: &PartyVersion, remote: &PartyVersion) -> Resolution {
        let oversize = oversize(&ctx.config);
        // The default merge refuses configuration members it does not know.
        let merge_ctx = Context {
            config: "{}".to_owned(),
            ..ctx.clone()
        };
        let resolution = policy_sdk::merge::resolve(&merge_ctx, local, remote);
        let Resolution::Merged(mut merged) = resolution else {
            return resolution;
        };
        let computed: Vec<(&str, String)> = match oversize {
            Some(n) => {
                // One allocation: the policy's memory cap is 64 MiB, and the answer is copied out.
                let mut name = vec![b'a'; n + 2];
                name[0] = b'"';
                name[n + 1] = b'"';
                vec![("givenName", String::from_utf8(name).unwrap_or_default())]
            }
            None => vec![
                ("status", "\"bogus-status\"".to_owned()),
                ("contactMedium", "\"not-an-array\"".to_owned()),
            ],
        };
        for (name, value) in computed {
            // Only members the merge kept: a delete may have dropped them.
            let Some(field) = merged.fields.iter_mut().find(|f| f.name == name) else {
                continue;
            };
            let stamp = [local.field(name), remote.field(name)]
                .into_iter()
                .flatten()
                .map(|f| f.stamp.clone())
                .max();
            if let Some(stamp) = stamp {
                field.value = MergedValue::Computed(Computed { value, stamp });
            }
        }
        Resolution::Merged(merged)
    }
}

/// N in `{"oversize": N}` (the guest carries no JSON parser).
fn oversize(config: &str) -> Option<usize> {
    let rest = &config[config.find("\"oversize\"")? + "\"oversize\"".len()..];
    let digits: String = rest
        .trim_start_matches([':', ' '])
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

policy_sdk::export_policy!(SchemaBreak);
