//! TMF JSON in and out: element identity, canonical JSON, and the visible party.

use policy_types::{Element, FieldValue, PartyVersion};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// JSON text with object members sorted, whatever order they arrived in: two regions that
/// hold the same element must compute the same content identity.
pub fn canonical_json(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&map[k], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(v, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// The identity of an array element: `id:<id>` where it has an `id`, else `c:<digest>` of its
/// canonical JSON (the official v4 sample holds two characteristics both named `hobby`; both
/// are kept because their content differs).
pub fn element_key(element: &Value) -> String {
    match element.get("id") {
        Some(Value::String(id)) => format!("id:{id}"),
        Some(Value::Number(id)) => format!("id:{id}"),
        _ => {
            let digest = Sha256::digest(canonical_json(element).as_bytes());
            format!("c:{}", hex::encode(&digest[..12]))
        }
    }
}

/// The visible elements of an array field in display order: by the position their write gave
/// them, then by stamp, then by key.
pub fn visible_elements(elements: &[Element]) -> Vec<&str> {
    let mut visible: Vec<(&Element, &policy_types::Entry)> = elements
        .iter()
        .filter_map(|e| e.visible().map(|v| (e, v)))
        .collect();
    visible.sort_by(|(ea, a), (eb, b)| {
        (a.position, &a.stamp, &ea.key).cmp(&(b.position, &b.stamp, &eb.key))
    });
    visible.into_iter().map(|(_, v)| v.value.as_str()).collect()
}

/// The party as TMF JSON: `id` plus every field's visible value. A deleted party is `None`.
pub fn to_tmf(version: &PartyVersion) -> Option<Value> {
    if version.tombstone.is_some() && version.fields.is_empty() {
        return None;
    }
    let mut map = Map::new();
    map.insert("id".to_owned(), Value::String(version.party_id.clone()));
    for field in &version.fields {
        let value = match &field.value {
            FieldValue::Json(text) => serde_json::from_str(text).unwrap_or(Value::Null),
            FieldValue::Elements(elements) => Value::Array(
                visible_elements(elements)
                    .into_iter()
                    .map(|t| serde_json::from_str(t).unwrap_or(Value::Null))
                    .collect(),
            ),
        };
        map.insert(field.name.clone(), value);
    }
    Some(Value::Object(map))
}
