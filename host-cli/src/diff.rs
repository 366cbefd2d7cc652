//! A readable diff of two parties (TMF JSON), field by field; arrays element by element.

use policy_types::PartyVersion;
use serde_json::Value;
use std::collections::BTreeSet;

const WIDTH: usize = 72;

fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() <= WIDTH {
        text
    } else {
        let cut: String = text.chars().take(WIDTH - 1).collect();
        format!("{cut}…")
    }
}

/// Lines describing how `to` differs from `from` (`+` added, `-` removed, `~` changed).
/// A deleted party is `Value::Null`.
pub fn lines(from: &Value, to: &Value) -> Vec<String> {
    match (from, to) {
        (Value::Null, Value::Null) => return vec![],
        (Value::Null, _) => return vec!["+ (party exists)".to_owned()],
        (_, Value::Null) => return vec!["- (party deleted)".to_owned()],
        _ => {}
    }
    let (Some(a), Some(b)) = (from.as_object(), to.as_object()) else {
        return vec![format!("~ {} → {}", short(from), short(to))];
    };
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut out = Vec::new();
    for k in keys {
        match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) if x == y => {}
            (Some(Value::Array(x)), Some(Value::Array(y))) => {
                for e in x.iter().filter(|e| !y.contains(e)) {
                    out.push(format!("- {k}[]: {}", short(e)));
                }
                for e in y.iter().filter(|e| !x.contains(e)) {
                    out.push(format!("+ {k}[]: {}", short(e)));
                }
            }
            (Some(x), Some(y)) => out.push(format!("~ {k}: {} → {}", short(x), short(y))),
            (Some(x), None) => out.push(format!("- {k}: {}", short(x))),
            (None, Some(y)) => out.push(format!("+ {k}: {}", short(y))),
            (None, None) => {}
        }
    }
    out
}

/// Lines for what the TMF JSON does not show: fields whose value is the same in both parties
/// but whose stamp differs (`~ givenName: stamped 1001.0@apac → 1001.0@eu`), and a tombstone's
/// stamp. Two results that differ only there write different parties: the stamps decide every
/// later merge of them.
pub fn stamp_lines(from: Option<&PartyVersion>, to: Option<&PartyVersion>) -> Vec<String> {
    let (Some(a), Some(b)) = (from, to) else {
        return vec![];
    };
    let mut out = Vec::new();
    for f in &a.fields {
        if let Some(g) = b.field(&f.name)
            && g.value == f.value
            && g.stamp != f.stamp
        {
            out.push(format!("~ {}: stamped {} → {}", f.name, f.stamp, g.stamp));
        }
    }
    if let (Some(x), Some(y)) = (&a.tombstone, &b.tombstone)
        && x != y
    {
        out.push(format!("~ (deleted): stamped {x} → {y}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use party_model::{Writer, new_party};
    use policy_types::ResourceType;
    use serde_json::json;

    /// The same given name written in two regions: the TMF JSON is alike, the stamps are not.
    #[test]
    fn a_difference_in_stamps_alone_is_shown() {
        let write = |region: &str| {
            let mut v = new_party("acme", "1", ResourceType::Individual, region);
            Writer::new(region).write(&mut v, 1_000, &json!({"givenName": "Jo"}));
            v
        };
        let (eu, na) = (write("eu"), write("na"));
        assert!(
            lines(
                &party_model::to_tmf(&eu).unwrap(),
                &party_model::to_tmf(&na).unwrap()
            )
            .is_empty()
        );
        let shown = stamp_lines(Some(&eu), Some(&na));
        assert!(
            shown.contains(&"~ givenName: stamped 1000.0@eu → 1000.0@na".to_owned()),
            "{shown:?}"
        );
        assert!(stamp_lines(Some(&eu), Some(&eu)).is_empty());
    }
}
