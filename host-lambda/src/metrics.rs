//! Metrics as CloudWatch Embedded Metric Format lines: one JSON object per line on stdout,
//! which the Lambda service turns into metrics without an API call.
//!
//! Namespace `Tmf632Conflict`, dimensions `Function` and `Region` (tenants are not a dimension:
//! their number is unbounded, and a dimension per tenant would be a metric per tenant).

use std::time::{SystemTime, UNIX_EPOCH};

use host_core::ingest::Outcome;
use serde_json::{Map, Value, json};

pub const NAMESPACE: &str = "Tmf632Conflict";

/// One EMF document under construction.
#[derive(Debug, Clone)]
pub struct Metrics {
    function: String,
    region: String,
    values: Vec<(&'static str, f64, &'static str)>,
    properties: Map<String, Value>,
}

/// Emits the policy refresh counters (swaps, load failures, shadow comparisons) accumulated
/// since the last call, if any moved.
pub fn emit_policy_stats(function: &str, region: &str, resolver: Option<&host_core::Resolver>) {
    let Some(resolver) = resolver else {
        return;
    };
    let mut m = Metrics::new(function, region);
    let mut any = false;
    for (name, value) in resolver.lookup().take_stats() {
        if value > 0 {
            any = true;
            m = m.count(name, value);
        }
    }
    if any {
        m.emit();
    }
}

impl Metrics {
    pub fn new(function: &str, region: &str) -> Self {
        Metrics {
            function: function.to_owned(),
            region: region.to_owned(),
            values: Vec::new(),
            properties: Map::new(),
        }
    }

    /// Adds a count.
    pub fn count(mut self, name: &'static str, value: u64) -> Self {
        self.values.push((name, value as f64, "Count"));
        self
    }

    /// Adds a duration in milliseconds.
    pub fn millis(mut self, name: &'static str, value: f64) -> Self {
        self.values.push((name, value, "Milliseconds"));
        self
    }

    /// A property: searchable in the log line, not a metric (e.g. the policy digest).
    pub fn property(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.properties.insert(name.to_owned(), value.into());
        self
    }

    /// The counters an ingest outcome adds to.
    pub fn outcome(self, outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Applied { replay: false, .. } => self.count("EventsApplied", 1),
            Outcome::Applied { replay: true, .. } => self.count("IdempotentReplays", 1),
            Outcome::Refused(_) => self.count("EventsRefused", 1),
            Outcome::InProgress => self.count("EventsInProgress", 1),
            Outcome::DeadLettered(_) => self.count("DeadLetterSends", 1),
        }
    }

    /// The EMF document.
    pub fn document(&self, timestamp_ms: u64) -> Value {
        let mut doc = self.properties.clone();
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Function", "Region"]],
                    "Metrics": self.values.iter().map(|(n, _, u)| json!({"Name": n, "Unit": u})).collect::<Vec<_>>(),
                }],
            }),
        );
        doc.insert("Function".into(), json!(self.function));
        doc.insert("Region".into(), json!(self.region));
        for (name, value, _) in &self.values {
            doc.insert((*name).to_owned(), json!(value));
        }
        Value::Object(doc)
    }

    /// Writes the line to stdout (nothing when no metric was added).
    pub fn emit(&self) {
        if self.values.is_empty() {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        println!("{}", self.document(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document is what CloudWatch's EMF specification asks: `_aws.CloudWatchMetrics` with
    /// a namespace, dimension sets whose names are top-level members, and each metric a
    /// top-level number; properties ride along without becoming metrics.
    #[test]
    fn emf_lines_parse_and_carry_the_dimensions() {
        let line = Metrics::new("reconcile", "eu")
            .count("ConflictsResolved", 2)
            .millis("ResolutionLatency", 0.25)
            .property("policyDigest", "abc")
            .document(1_700_000_000_000)
            .to_string();
        let doc: Value = serde_json::from_str(&line).unwrap();
        let meta = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(doc["_aws"]["Timestamp"], json!(1_700_000_000_000u64));
        assert_eq!(meta["Namespace"], json!(NAMESPACE));
        let dims = meta["Dimensions"][0].as_array().unwrap();
        for d in dims {
            assert!(
                doc[d.as_str().unwrap()].is_string(),
                "dimension {d} is a member"
            );
        }
        assert_eq!(
            (doc["Function"].as_str(), doc["Region"].as_str()),
            (Some("reconcile"), Some("eu"))
        );
        let metrics = meta["Metrics"].as_array().unwrap();
        assert_eq!(metrics.len(), 2);
        for m in metrics {
            assert!(
                doc[m["Name"].as_str().unwrap()].is_number(),
                "{m} has a value"
            );
        }
        assert_eq!(
            metrics[1],
            json!({"Name": "ResolutionLatency", "Unit": "Milliseconds"})
        );
        assert_eq!(doc["policyDigest"], json!("abc"));
        assert!(!metrics.iter().any(|m| m["Name"] == "policyDigest"));
    }

    #[test]
    fn outcomes_count_where_the_alarms_look() {
        let doc = Metrics::new("ingest", "na")
            .outcome(&Outcome::DeadLettered("x".into()))
            .document(0);
        assert_eq!(doc["DeadLetterSends"], json!(1.0));
    }
}
