//! Changing topic configs (AlterConfigs, IncrementalAlterConfigs). The active controller applies
//! the operations to the topic's explicit configs (`apply_ops`), validates the result and commits
//! it; every broker hosting the topic then applies the new settings to its open logs
//! (`retention::apply_settings`).

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;

use super::{first_outcome, AdminOutcome};
use crate::cluster::forward;
use crate::cluster::rpc_api::AdminRequest;
use crate::shard::Shard;
use crate::topic_config::{self, TopicSettings};

/// Kafka's IncrementalAlterConfigs operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum OpType {
    Set = 0,
    Delete = 1,
    Append = 2,
    Subtract = 3,
}

impl OpType {
    pub fn from_code(code: i8) -> Option<OpType> {
        Some(match code {
            0 => OpType::Set,
            1 => OpType::Delete,
            2 => OpType::Append,
            3 => OpType::Subtract,
            _ => return None,
        })
    }
}

/// One config change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigOp {
    pub key: String,
    pub value: Option<String>,
    pub op: OpType,
}

/// Changes the configs of `topic` (from any shard). `replace_all` is AlterConfigs: the SET ops are
/// the new explicit set and every other config returns to its default.
pub async fn alter_topic_configs(
    shard: &Shard,
    topic: &str,
    ops: &[ConfigOp],
    replace_all: bool,
    validate_only: bool,
) -> AdminOutcome {
    let request = AdminRequest::AlterConfigs {
        name: topic.to_string(),
        ops: ops.to_vec(),
        replace_all,
        validate_only,
    };
    first_outcome(forward::admin(shard, request).await)
}

/// The explicit config set after `ops`, validated as a whole.
pub(crate) fn apply_ops(
    broker: &crate::config::BrokerConfig,
    current: &BTreeMap<String, String>,
    ops: &[ConfigOp],
    replace_all: bool,
) -> Result<BTreeMap<String, String>, AdminOutcome> {
    let invalid = |message: String| AdminOutcome::error(ResponseError::InvalidConfig, message);
    let mut configs = if replace_all {
        BTreeMap::new()
    } else {
        current.clone()
    };
    for op in ops {
        let Some(def) = topic_config::config_def(&op.key) else {
            return Err(invalid(format!("Unknown topic config name: {}", op.key)));
        };
        match op.op {
            OpType::Set => {
                let Some(value) = &op.value else {
                    return Err(invalid(format!("Null value not supported for {}", op.key)));
                };
                configs.insert(op.key.clone(), value.clone());
            }
            OpType::Delete => {
                configs.remove(&op.key);
            }
            OpType::Append | OpType::Subtract => {
                if def.config_type != topic_config::ConfigType::List {
                    return Err(invalid(format!(
                        "Config value append/subtract is not allowed for config key {}",
                        op.key
                    )));
                }
                let effective = TopicSettings::resolve(broker, &configs)
                    .value_of(&op.key)
                    .unwrap_or_default();
                let mut items: Vec<String> = effective
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                let given = op.value.as_deref().unwrap_or_default();
                for item in given.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if op.op == OpType::Append {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_string());
                        }
                    } else {
                        items.retain(|i| i != item);
                    }
                }
                configs.insert(op.key.clone(), items.join(","));
            }
        }
    }
    topic_config::validate(broker, &configs).map_err(|e| invalid(e.to_string()))?;
    Ok(configs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;

    fn op(key: &str, value: Option<&str>, op: OpType) -> ConfigOp {
        ConfigOp {
            key: key.into(),
            value: value.map(str::to_string),
            op,
        }
    }

    #[test]
    fn incremental_ops_edit_the_explicit_set() {
        let broker = BrokerConfig::default();
        let current = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
        let next = apply_ops(
            &broker,
            &current,
            &[
                op("cleanup.policy", Some("compact"), OpType::Append),
                op("retention.ms", None, OpType::Delete),
                op("segment.bytes", Some("2097152"), OpType::Set),
            ],
            false,
        )
        .expect("valid");
        assert_eq!(
            next,
            BTreeMap::from([
                ("cleanup.policy".to_string(), "delete,compact".to_string()),
                ("segment.bytes".to_string(), "2097152".to_string()),
            ])
        );
        let replaced = apply_ops(
            &broker,
            &next,
            &[op("retention.bytes", Some("100"), OpType::Set)],
            true,
        )
        .expect("valid");
        assert_eq!(
            replaced,
            BTreeMap::from([("retention.bytes".to_string(), "100".to_string())])
        );
    }

    #[test]
    fn invalid_changes_are_refused() {
        let broker = BrokerConfig::default();
        let current = BTreeMap::new();
        for bad in [
            op("retention.hours", Some("1"), OpType::Set),
            op("retention.ms", Some("-5"), OpType::Set),
            op("retention.ms", Some("5"), OpType::Append),
            op("cleanup.policy", Some("delete"), OpType::Subtract),
        ] {
            let outcome = apply_ops(&broker, &current, std::slice::from_ref(&bad), false)
                .expect_err("refused");
            assert_eq!(
                outcome.error_code,
                ResponseError::InvalidConfig.code(),
                "{bad:?}"
            );
        }
    }
}
