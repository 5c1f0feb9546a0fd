//! The metadata image: the cluster as the committed metadata log describes it (brokers with their
//! listeners, topics with their partitions' replicas, leaders and ISR, the ACLs, the SCRAM
//! credentials), built by applying records
//! in log order. Every node applies the same entries in the same order, so every node's image at a
//! given index is the same; the image at an index is also what a snapshot at that index holds.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;

use super::records::{BrokerRegistration, MetadataRecord, TopicId, UserScramCredential};
use crate::metadata::{PartitionState, TopicMeta, TopicTable};
use crate::security::acl::types::AclBinding;
use crate::security::CredentialStore;

/// The cluster metadata at `applied_index`.
#[derive(Debug, Clone, Default)]
pub struct MetadataImage {
    pub cluster_id: Option<String>,
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    /// Topics by name (shared with the shards: cloned only when changed).
    pub topics: Rc<TopicTable>,
    /// Names by topic id (derived from `topics`).
    names_by_id: HashMap<TopicId, String>,
    /// The cluster's ACLs, sorted, each once. An `Arc` because the broker's authorizer, shared by
    /// every shard thread, installs this very list (`AclStore::install`): cloned only when changed.
    pub acls: Arc<Vec<AclBinding>>,
    /// The users' SCRAM credentials. An `Arc` for the same reason as `acls`: the broker's
    /// credential registry installs this very store (`CredentialRegistry::install`).
    pub scram_credentials: Arc<CredentialStore>,
    /// Brokers whose current registration reported its data directory offline
    /// (`replication::log_dir`): in no ISR, leading nothing, until they report it online.
    pub log_dir_offline: std::collections::BTreeSet<i32>,
    /// Index of the last metadata log entry applied (0: none).
    pub applied_index: u64,
}

impl MetadataImage {
    /// Applies one log entry's records. Records that name an unknown topic or broker are skipped
    /// with a warning: every node skips them alike, so images stay identical, and the controller
    /// never writes such records from a consistent image.
    pub fn apply(&mut self, index: u64, records: &[MetadataRecord]) {
        debug_assert!(
            index > self.applied_index || (index == 0 && self.applied_index == 0),
            "entries apply in log order: {index} after {}",
            self.applied_index
        );
        for record in records {
            self.apply_record(index, record);
        }
        self.applied_index = index;
    }

    fn apply_record(&mut self, index: u64, record: &MetadataRecord) {
        match record {
            MetadataRecord::ClusterId(id) => {
                if self.cluster_id.is_none() {
                    self.cluster_id = Some(id.clone());
                }
            }
            MetadataRecord::Broker(registration) => {
                let mut registration = registration.clone();
                // The broker epoch is the index of its registration: unique and increasing.
                if index > 0 {
                    registration.epoch = index as i64;
                }
                // A new registration starts with its data directory online.
                self.log_dir_offline.remove(&registration.node_id);
                self.brokers.insert(registration.node_id, registration);
            }
            MetadataRecord::BrokerLogDir {
                node_id,
                epoch,
                offline,
            } => match self.brokers.get(node_id) {
                Some(broker) if broker.epoch == *epoch => {
                    if *offline {
                        self.log_dir_offline.insert(*node_id);
                    } else {
                        self.log_dir_offline.remove(node_id);
                    }
                }
                _ => tracing::warn!(
                    node_id,
                    epoch,
                    "metadata: log directory state of an unknown broker epoch"
                ),
            },
            MetadataRecord::BrokerState {
                node_id,
                epoch,
                fenced,
                shutting_down,
            } => match self.brokers.get_mut(node_id) {
                Some(broker) if broker.epoch == *epoch => {
                    broker.fenced = *fenced;
                    broker.shutting_down = *shutting_down;
                }
                _ => tracing::warn!(node_id, epoch, "metadata: state of an unknown broker epoch"),
            },
            MetadataRecord::Topic {
                name,
                topic_id,
                configs,
            } => {
                let topics = Rc::make_mut(&mut self.topics);
                topics.topics.insert(
                    name.clone(),
                    TopicMeta {
                        id: *topic_id,
                        partitions: 0,
                        configs: configs.clone(),
                        assignments: Vec::new(),
                    },
                );
                self.names_by_id.insert(*topic_id, name.clone());
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                state,
            } => {
                let Some(name) = self.names_by_id.get(topic_id).cloned() else {
                    tracing::warn!(partition, "metadata: partition of an unknown topic id");
                    return;
                };
                let topics = Rc::make_mut(&mut self.topics);
                let Some(meta) = topics.topics.get_mut(&name) else {
                    return;
                };
                let Ok(slot) = usize::try_from(*partition) else {
                    return;
                };
                if slot > meta.assignments.len() {
                    tracing::warn!(topic = %name, partition, "metadata: partitions must be added in order");
                    return;
                }
                if slot == meta.assignments.len() {
                    meta.assignments.push(state.clone());
                } else {
                    meta.assignments[slot] = state.clone();
                }
                meta.partitions = meta.assignments.len() as i32;
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                if let Some(name) = self.names_by_id.remove(topic_id) {
                    Rc::make_mut(&mut self.topics).topics.remove(&name);
                }
            }
            MetadataRecord::TopicConfig { topic_id, configs } => {
                let Some(name) = self.names_by_id.get(topic_id).cloned() else {
                    return;
                };
                if let Some(meta) = Rc::make_mut(&mut self.topics).topics.get_mut(&name) {
                    meta.configs = configs.clone();
                }
            }
            MetadataRecord::AccessControlEntry(acl) => {
                if let Err(slot) = self.acls.binary_search(acl) {
                    Arc::make_mut(&mut self.acls).insert(slot, acl.clone());
                }
            }
            MetadataRecord::RemoveAccessControlEntry(acl) => {
                if let Ok(slot) = self.acls.binary_search(acl) {
                    Arc::make_mut(&mut self.acls).remove(slot);
                }
            }
            MetadataRecord::UserScramCredential(c) => {
                Arc::make_mut(&mut self.scram_credentials).insert(
                    &c.user,
                    c.mechanism,
                    c.credential.clone(),
                );
            }
            MetadataRecord::RemoveUserScramCredential { user, mechanism } => {
                if self.scram_credentials.get(user, *mechanism).is_some() {
                    Arc::make_mut(&mut self.scram_credentials).remove(user, *mechanism);
                }
            }
        }
    }

    /// The records that rebuild this image (a snapshot).
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        if let Some(id) = &self.cluster_id {
            records.push(MetadataRecord::ClusterId(id.clone()));
        }
        for broker in self.brokers.values() {
            records.push(MetadataRecord::Broker(broker.clone()));
            records.push(MetadataRecord::BrokerState {
                node_id: broker.node_id,
                epoch: broker.epoch,
                fenced: broker.fenced,
                shutting_down: broker.shutting_down,
            });
            if self.log_dir_offline.contains(&broker.node_id) {
                records.push(MetadataRecord::BrokerLogDir {
                    node_id: broker.node_id,
                    epoch: broker.epoch,
                    offline: true,
                });
            }
        }
        for (name, meta) in &self.topics.topics {
            records.push(MetadataRecord::Topic {
                name: name.clone(),
                topic_id: meta.id,
                configs: meta.configs.clone(),
            });
            for (partition, state) in meta.assignments.iter().enumerate() {
                records.push(MetadataRecord::Partition {
                    topic_id: meta.id,
                    partition: partition as i32,
                    state: state.clone(),
                });
            }
        }
        records.extend(
            self.acls
                .iter()
                .map(|acl| MetadataRecord::AccessControlEntry(acl.clone())),
        );
        records.extend(self.scram_credentials.sorted_entries().into_iter().map(
            |(user, mechanism, credential)| {
                MetadataRecord::UserScramCredential(UserScramCredential {
                    user: user.to_string(),
                    mechanism,
                    credential: credential.clone(),
                })
            },
        ));
        records
    }

    /// Rebuilds the image a snapshot at `index` describes.
    pub fn from_records(index: u64, records: &[MetadataRecord]) -> MetadataImage {
        let mut image = MetadataImage::default();
        // Index 0: broker epochs come from the records themselves, not from the index.
        image.apply(0, records);
        image.applied_index = index;
        image
    }

    /// The name of the topic with this id.
    pub fn topic_name(&self, topic_id: &TopicId) -> Option<&str> {
        self.names_by_id.get(topic_id).map(String::as_str)
    }

    /// Registered brokers that may lead partitions (not fenced, not shutting down).
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers
            .values()
            .filter(|b| !b.fenced && !b.shutting_down)
    }

    /// Whether `node_id` is registered and live.
    pub fn is_live(&self, node_id: i32) -> bool {
        self.brokers
            .get(&node_id)
            .is_some_and(|b| !b.fenced && !b.shutting_down)
    }

    /// Whether `node_id` may lead a partition or join an ISR (Kafka's eligible replica, KIP-841):
    /// live, and its data directory online.
    pub fn is_eligible(&self, node_id: i32) -> bool {
        self.is_live(node_id) && !self.log_dir_offline.contains(&node_id)
    }

    /// Every partition whose replicas include `node_id`: what that broker must host.
    pub fn partitions_hosted_by(&self, node_id: i32) -> Vec<(String, i32)> {
        let mut hosted = Vec::new();
        for (name, meta) in &self.topics.topics {
            for (partition, state) in meta.assignments.iter().enumerate() {
                if state.replicas.contains(&node_id) {
                    hosted.push((name.clone(), partition as i32));
                }
            }
        }
        hosted
    }

    /// Partitions `node_id` leads, with their topic id.
    pub fn partitions_led_by(&self, node_id: i32) -> Vec<(TopicId, i32, PartitionState)> {
        let mut led = Vec::new();
        for meta in self.topics.topics.values() {
            for (partition, state) in meta.assignments.iter().enumerate() {
                if state.leader == node_id {
                    led.push((meta.id, partition as i32, state.clone()));
                }
            }
        }
        led
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::records::{self, BrokerEndpoint};
    use crate::metadata::NO_LEADER;
    use crate::security::sasl::credentials::{ScramCredential, ScramMechanism};

    fn broker(node_id: i32) -> MetadataRecord {
        MetadataRecord::Broker(BrokerRegistration {
            node_id,
            incarnation: [node_id as u8; 16],
            epoch: 0,
            listeners: vec![BrokerEndpoint::plaintext(
                &format!("10.0.0.{node_id}"),
                9092,
            )],
            rack: None,
            fenced: true,
            shutting_down: false,
        })
    }

    fn placed(leader: i32) -> PartitionState {
        PartitionState {
            replicas: vec![leader],
            isr: vec![leader],
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
        }
    }

    #[test]
    fn applying_records_builds_brokers_topics_and_partitions() {
        let mut image = MetadataImage::default();
        image.apply(1, &[MetadataRecord::ClusterId("c".into()), broker(1)]);
        image.apply(2, &[broker(2)]);
        assert_eq!(
            image.brokers[&1].epoch, 1,
            "the epoch is the registration's index"
        );
        assert_eq!(image.brokers[&2].epoch, 2);
        assert_eq!(
            image.live_brokers().count(),
            0,
            "registered brokers start fenced"
        );
        image.apply(
            3,
            &[MetadataRecord::BrokerState {
                node_id: 1,
                epoch: 1,
                fenced: false,
                shutting_down: false,
            }],
        );
        assert!(image.is_live(1) && !image.is_live(2));
        image.apply(
            4,
            &[
                MetadataRecord::Topic {
                    name: "t".into(),
                    topic_id: [9; 16],
                    configs: BTreeMap::new(),
                },
                MetadataRecord::Partition {
                    topic_id: [9; 16],
                    partition: 0,
                    state: placed(1),
                },
                MetadataRecord::Partition {
                    topic_id: [9; 16],
                    partition: 1,
                    state: placed(2),
                },
            ],
        );
        let meta = image.topics.get("t").expect("topic");
        assert_eq!(meta.partitions, 2);
        assert_eq!(meta.leader_of(1), 2);
        assert_eq!(meta.leader_of(7), NO_LEADER);
        assert_eq!(image.partitions_hosted_by(2), vec![("t".to_string(), 1)]);
        assert_eq!(image.topic_name(&[9; 16]), Some("t"));
    }

    #[test]
    fn a_stale_broker_epoch_changes_nothing() {
        let mut image = MetadataImage::default();
        image.apply(5, &[broker(1)]);
        image.apply(6, &[broker(1)]); // re-registration after a restart: epoch 6
        image.apply(
            7,
            &[MetadataRecord::BrokerState {
                node_id: 1,
                epoch: 5,
                fenced: false,
                shutting_down: false,
            }],
        );
        assert!(
            image.brokers[&1].fenced,
            "an old incarnation's unfence is ignored"
        );
    }

    #[test]
    fn a_snapshot_rebuilds_the_same_image() {
        let mut image = MetadataImage::default();
        image.apply(1, &[MetadataRecord::ClusterId("c".into()), broker(1)]);
        image.apply(
            2,
            &[
                MetadataRecord::Topic {
                    name: "t".into(),
                    topic_id: [9; 16],
                    configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
                },
                MetadataRecord::Partition {
                    topic_id: [9; 16],
                    partition: 0,
                    state: placed(1),
                },
                MetadataRecord::AccessControlEntry(write_acl("t")),
                scram("alice", ScramMechanism::Sha512, b"a"),
                scram("bob", ScramMechanism::Sha256, b"b"),
            ],
        );
        let rebuilt = MetadataImage::from_records(2, &image.to_records());
        assert_eq!(rebuilt.cluster_id, image.cluster_id);
        assert_eq!(rebuilt.brokers, image.brokers);
        assert_eq!(rebuilt.topics, image.topics);
        assert_eq!(rebuilt.acls, image.acls);
        assert_eq!(rebuilt.scram_credentials, image.scram_credentials);
        assert_eq!(
            records::encode(&rebuilt.to_records()),
            records::encode(&image.to_records()),
            "a snapshot is written the same way every time"
        );
        assert_eq!(rebuilt.applied_index, 2);
        image.apply(3, &[MetadataRecord::RemoveTopic { topic_id: [9; 16] }]);
        assert!(image.topics.get("t").is_none());
        assert_eq!(image.topic_name(&[9; 16]), None);
    }

    fn scram(user: &str, mechanism: ScramMechanism, password: &[u8]) -> MetadataRecord {
        MetadataRecord::UserScramCredential(UserScramCredential {
            user: user.into(),
            mechanism,
            credential: ScramCredential::from_password(mechanism, password, b"salt", 4096),
        })
    }

    #[test]
    fn scram_credentials_are_replaced_and_removed_by_user_and_mechanism() {
        let mut image = MetadataImage::default();
        image.apply(
            1,
            &[
                scram("alice", ScramMechanism::Sha512, b"first"),
                scram("alice", ScramMechanism::Sha256, b"first"),
            ],
        );
        let before = image.scram_credentials.clone();
        image.apply(2, &[scram("alice", ScramMechanism::Sha512, b"second")]);
        assert!(!Arc::ptr_eq(&before, &image.scram_credentials));
        let alice = image
            .scram_credentials
            .get("alice", ScramMechanism::Sha512)
            .expect("alice");
        assert!(alice.matches_password(ScramMechanism::Sha512, b"second"));
        let unchanged = image.scram_credentials.clone();
        image.apply(
            3,
            &[MetadataRecord::RemoveUserScramCredential {
                user: "nobody".into(),
                mechanism: ScramMechanism::Sha512,
            }],
        );
        assert!(
            Arc::ptr_eq(&unchanged, &image.scram_credentials),
            "removing an absent credential changes nothing"
        );
        image.apply(
            4,
            &[MetadataRecord::RemoveUserScramCredential {
                user: "alice".into(),
                mechanism: ScramMechanism::Sha256,
            }],
        );
        assert!(image
            .scram_credentials
            .get("alice", ScramMechanism::Sha256)
            .is_none());
        assert_eq!(image.scram_credentials.len(), 1);
    }

    fn write_acl(topic: &str) -> AclBinding {
        use crate::security::acl::types::Operation;
        AclBinding::allow_on_topic(topic, "User:alice", Operation::Write)
    }

    #[test]
    fn acls_are_added_once_kept_sorted_and_removed() {
        let mut image = MetadataImage::default();
        let before = image.acls.clone();
        image.apply(
            1,
            &[
                MetadataRecord::AccessControlEntry(write_acl("b")),
                MetadataRecord::AccessControlEntry(write_acl("a")),
                MetadataRecord::AccessControlEntry(write_acl("b")),
            ],
        );
        assert_eq!(*image.acls, vec![write_acl("a"), write_acl("b")]);
        assert!(!Arc::ptr_eq(&before, &image.acls), "a change is a new list");
        let unchanged = image.acls.clone();
        image.apply(2, &[broker(1)]);
        assert!(
            Arc::ptr_eq(&unchanged, &image.acls),
            "other records keep the list"
        );
        image.apply(
            3,
            &[
                MetadataRecord::RemoveAccessControlEntry(write_acl("a")),
                MetadataRecord::RemoveAccessControlEntry(write_acl("never")),
            ],
        );
        assert_eq!(*image.acls, vec![write_acl("b")]);
    }
}
