//! JSON form of the contract's values. Values that are JSON text in the contract (field values,
//! element entries, computed values) are embedded as JSON, not as strings of JSON, so that a
//! captured-conflict file reads like the party it describes.

use crate::{Computed, Dot, Entry, FieldValue, Hlc};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

fn raw<S: Serializer>(text: &str) -> Result<Box<RawValue>, S::Error> {
    RawValue::from_string(text.to_owned()).map_err(serde::ser::Error::custom)
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryJson {
    value: Box<RawValue>,
    stamp: Hlc,
    dot: Dot,
    #[serde(default)]
    position: u32,
}

impl Serialize for Entry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        EntryJson {
            value: raw::<S>(&self.value)?,
            stamp: self.stamp.clone(),
            dot: self.dot.clone(),
            position: self.position,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let e = EntryJson::deserialize(d)?;
        Ok(Entry {
            value: e.value.get().to_owned(),
            stamp: e.stamp,
            dot: e.dot,
            position: e.position,
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
enum FieldValueJson {
    Json(Box<RawValue>),
    Elements(Vec<crate::Element>),
}

impl Serialize for FieldValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FieldValue::Json(text) => FieldValueJson::Json(raw::<S>(text)?).serialize(s),
            FieldValue::Elements(elements) => {
                // Borrowing serialisation: avoid cloning the elements.
                #[derive(Serialize)]
                #[serde(rename_all = "lowercase")]
                enum Borrowed<'a> {
                    Elements(&'a [crate::Element]),
                }
                Borrowed::Elements(elements).serialize(s)
            }
        }
    }
}

impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match FieldValueJson::deserialize(d)? {
            FieldValueJson::Json(v) => FieldValue::Json(v.get().to_owned()),
            FieldValueJson::Elements(e) => FieldValue::Elements(e),
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComputedJson {
    value: Box<RawValue>,
    stamp: Hlc,
}

impl Serialize for Computed {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ComputedJson {
            value: raw::<S>(&self.value)?,
            stamp: self.stamp.clone(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Computed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let c = ComputedJson::deserialize(d)?;
        if c.value.get().is_empty() {
            return Err(D::Error::custom("empty computed value"));
        }
        Ok(Computed {
            value: c.value.get().to_owned(),
            stamp: c.stamp,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::*;

    #[test]
    fn field_values_embed_json() {
        let field = Field {
            name: "status".into(),
            stamp: Hlc::new(5, 0, "eu"),
            value: FieldValue::Json("\"validated\"".into()),
        };
        let text = serde_json::to_string(&field).unwrap();
        assert_eq!(
            text,
            r#"{"name":"status","stamp":{"wallMs":5,"logical":0,"region":"eu"},"value":{"json":"validated"}}"#
        );
        let back: Field = serde_json::from_str(&text).unwrap();
        assert_eq!(back, field);
    }

    #[test]
    fn unknown_members_are_refused() {
        let err = serde_json::from_str::<Hlc>(r#"{"wallMs":1,"logical":0,"region":"eu","x":1}"#);
        assert!(err.unwrap_err().to_string().contains("unknown field"));
    }
}
