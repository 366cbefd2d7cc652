//! The tenant's configuration of the default policy, a JSON document the operator sets.

/// What a delete does against a concurrent update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeleteRule {
    /// The party stays deleted whatever was written concurrently.
    #[default]
    DeleteWins,
    /// Fields written after the delete bring the party back (only those fields).
    UpdateResurrects,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Config {
    pub delete_rule: DeleteRule,
}

impl Config {
    /// Parses `{"deleteRule": "delete-wins" | "update-resurrects"}`; `{}` and `""` give the
    /// defaults. Unknown members are refused so that a typo is not silently ignored.
    pub fn parse(text: &str) -> Result<Config, String> {
        let text = text.trim();
        if text.is_empty() || text == "{}" {
            return Ok(Config::default());
        }
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| format!("policy configuration is not JSON: {e}"))?;
        let object = value
            .as_object()
            .ok_or_else(|| "policy configuration must be a JSON object".to_owned())?;
        let mut config = Config::default();
        for (key, value) in object {
            match key.as_str() {
                "deleteRule" => {
                    config.delete_rule = match value.as_str() {
                        Some("delete-wins") => DeleteRule::DeleteWins,
                        Some("update-resurrects") => DeleteRule::UpdateResurrects,
                        _ => {
                            return Err(format!(
                                "deleteRule must be \"delete-wins\" or \"update-resurrects\", found {value}"
                            ));
                        }
                    }
                }
                other => {
                    return Err(format!(
                        "unknown member {other:?} in policy configuration (known: deleteRule)"
                    ));
                }
            }
        }
        Ok(config)
    }
}
