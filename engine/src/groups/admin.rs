//! Group administration: DescribeGroups, ListGroups and DeleteGroups, as `kafka-consumer-groups` and the
//! AdminClient use them.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;

use super::coordinator::Inner;
use super::group::GroupState;
use super::offsets::group_tombstones;
use super::responses::*;
use super::store::{CoordinatorRecord, OffsetKey, OffsetRecord};

/// ListGroups v5 `group_type` of a classic group...
const CLASSIC_GROUP_TYPE: &str = "classic";
/// ...and of a consumer-protocol (KIP-848) group.
const CONSUMER_GROUP_TYPE: &str = "consumer";
/// The protocol type of consumer groups (ListGroups shows it for consumer-protocol groups too).
const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

impl Inner {
    pub(crate) fn describe_group(&self, group_id: &str) -> DescribedGroup {
        let mut described = DescribedGroup::default();
        described.group_id = str_bytes(group_id).into();
        let groups = self.groups.borrow();
        // A consumer-protocol group is not a classic one: Kafka describes it as Dead here (the AdminClient
        // asks ConsumerGroupDescribe for it).
        let Some(group) = groups.get(group_id).filter(|g| !g.is_consumer_group()) else {
            described.group_state = str_bytes(GroupState::Dead.name());
            return described;
        };
        described.group_state = str_bytes(group.state.name());
        described.protocol_type = str_bytes(group.protocol_type.as_deref().unwrap_or(""));
        let stable = group.state == GroupState::Stable;
        // Like Kafka: protocol, metadata and assignments are only meaningful once the group is Stable.
        let protocol = if stable {
            group.protocol_name.clone().unwrap_or_default()
        } else {
            String::new()
        };
        described.protocol_data = str_bytes(&protocol);
        described.members = group
            .members
            .iter()
            .map(|m| {
                let mut member = DescribedGroupMember::default();
                member.member_id = str_bytes(&m.member_id);
                member.group_instance_id = m.group_instance_id.as_deref().map(str_bytes);
                member.client_id = str_bytes(&m.client_id);
                member.client_host = str_bytes(&m.client_host);
                if stable {
                    member.member_metadata = m.metadata_for(&protocol);
                    member.member_assignment = m.assignment.clone();
                }
                member
            })
            .collect();
        described
    }

    pub(crate) fn list_groups(&self, states_filter: &[String]) -> Vec<ListedGroup> {
        let groups = self.groups.borrow();
        let mut listed: Vec<ListedGroup> = groups
            .values()
            .filter(|g| g.state != GroupState::Dead)
            .filter(|g| {
                let state = g
                    .consumer
                    .as_deref()
                    .map_or(g.state.name(), |c| c.state().name());
                states_filter.is_empty()
                    || states_filter.iter().any(|s| s.eq_ignore_ascii_case(state))
            })
            .map(|g| {
                let mut entry = ListedGroup::default();
                entry.group_id = str_bytes(&g.group_id).into();
                match g.consumer.as_deref() {
                    Some(consumer) => {
                        entry.protocol_type = str_bytes(CONSUMER_PROTOCOL_TYPE);
                        entry.group_state = str_bytes(consumer.state().name());
                        entry.group_type = str_bytes(CONSUMER_GROUP_TYPE);
                    }
                    None => {
                        entry.protocol_type = str_bytes(g.protocol_type.as_deref().unwrap_or(""));
                        entry.group_state = str_bytes(g.state.name());
                        entry.group_type = str_bytes(CLASSIC_GROUP_TYPE);
                    }
                }
                entry
            })
            .collect();
        listed.sort_by(|a, b| a.group_id.0.as_str().cmp(b.group_id.0.as_str()));
        listed
    }

    /// Deletes an Empty group, its offsets and its metadata (tombstones first, so a restart does not bring
    /// them back).
    pub(crate) async fn delete_group(&self, group_id: &str) -> i16 {
        if group_id.is_empty() {
            return INVALID_GROUP_ID;
        }
        let Ok(_permit) = self.persist_lock().await else {
            return COORDINATOR_NOT_AVAILABLE;
        };
        // Records queued before this request land first: nothing written for the group earlier may
        // outlive its tombstones in the log.
        self.drain_queue_locked().await;
        let tombstones: Vec<CoordinatorRecord> = {
            let mut groups = self.groups.borrow_mut();
            let Some(group) = groups.get_mut(group_id) else {
                return GROUP_ID_NOT_FOUND;
            };
            match group.state {
                GroupState::Dead => return GROUP_ID_NOT_FOUND,
                GroupState::Empty if group.has_no_members() => {}
                _ => return NON_EMPTY_GROUP,
            }
            // Dead while the tombstones are written: joins and commits meanwhile get COORDINATOR_NOT_AVAILABLE.
            group.state = GroupState::Dead;
            let mut tombstones: Vec<CoordinatorRecord> = group
                .offsets
                .keys()
                .map(|(topic, partition)| {
                    CoordinatorRecord::Offset(OffsetRecord {
                        key: OffsetKey {
                            group_id: group_id.to_string(),
                            topic: topic.clone(),
                            partition: *partition,
                        },
                        value: None,
                    })
                })
                .collect();
            tombstones.extend(group_tombstones(group));
            tombstones
        };
        let persisted = if tombstones.is_empty() {
            Ok(())
        } else {
            self.store.persist(&tombstones).await
        };
        let mut groups = self.groups.borrow_mut();
        match persisted {
            Ok(()) => {
                groups.remove(group_id);
                NONE
            }
            Err(error) => {
                tracing::warn!(group = group_id, %error, "group deletion not persisted");
                if let Some(group) = groups.get_mut(group_id) {
                    group.state = GroupState::Empty;
                }
                COORDINATOR_NOT_AVAILABLE
            }
        }
    }
}
