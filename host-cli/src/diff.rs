//! A readable diff of two parties (TMF JSON), field by field; arrays element by element.

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
