//! ConsumerGroupDescribe (v0-1): a consumer-protocol group with its epochs, assignor and, per member, its
//! subscription, current and target assignments (topic ids with their names). A classic or unknown group
//! is GROUP_ID_NOT_FOUND, as Kafka answers (the AdminClient then asks DescribeGroups).

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions as DescribedTopicPartitions,
};
use kafka_protocol::messages::TopicName;

use super::assignor;
use super::model::ConsumerGroup;
use super::subscription;
use super::values::TopicPartitions;
use crate::groups::coordinator::Inner;
use crate::groups::responses::*;
use crate::metadata::TopicTable;
use crate::security::acl::types::OPERATIONS_NOT_REQUESTED;

/// Member type (v1+): the member speaks the consumer protocol (0 would be a classic member).
const CONSUMER_MEMBER_TYPE: i8 = 1;

impl Inner {
    pub(crate) fn consumer_group_describe(
        &self,
        group_id: &str,
        topics: &TopicTable,
    ) -> DescribedGroup {
        let mut described = DescribedGroup::default();
        described.group_id = str_bytes(group_id).into();
        described.authorized_operations = OPERATIONS_NOT_REQUESTED;
        let groups = self.groups.borrow();
        let consumer = groups
            .get(group_id)
            .filter(|g| g.state != crate::groups::group::GroupState::Dead)
            .and_then(|g| g.consumer.as_deref());
        let Some(consumer) = consumer else {
            let exists = groups.contains_key(group_id);
            described.error_code = GROUP_ID_NOT_FOUND;
            described.error_message = Some(str_bytes(&if exists {
                format!("Group {group_id} is not a consumer group.")
            } else {
                format!("Group {group_id} not found.")
            }));
            return described;
        };
        described.group_state = str_bytes(consumer.state().name());
        described.group_epoch = consumer.group_epoch;
        described.assignment_epoch = consumer.assignment_epoch;
        described.assignor_name = str_bytes(
            &consumer
                .preferred_assignor()
                .unwrap_or_else(|| assignor::SUPPORTED[0].to_string()),
        );
        described.members = members(consumer, topics);
        described
    }
}

fn members(consumer: &ConsumerGroup, topics: &TopicTable) -> Vec<Member> {
    consumer
        .members
        .values()
        .map(|m| {
            let mut member = Member::default();
            member.member_id = str_bytes(&m.member_id);
            member.instance_id = m.metadata.instance_id.as_deref().map(str_bytes);
            member.rack_id = m.metadata.rack_id.as_deref().map(str_bytes);
            member.member_epoch = m.epoch();
            member.client_id = str_bytes(&m.metadata.client_id);
            member.client_host = str_bytes(&m.metadata.client_host);
            member.subscribed_topic_names = m
                .metadata
                .subscribed_topic_names
                .iter()
                .map(|t| TopicName(str_bytes(t)))
                .collect();
            member.subscribed_topic_regex =
                m.metadata.subscribed_topic_regex.as_deref().map(str_bytes);
            member.assignment = assignment(&m.current.assigned, topics);
            member.target_assignment = consumer
                .target
                .get(&m.member_id)
                .map(|t| assignment(t, topics))
                .unwrap_or_default();
            member.member_type = CONSUMER_MEMBER_TYPE;
            member
        })
        .collect()
}

/// Partitions by topic, named from the topic table (a deleted topic keeps its id and an empty name).
fn assignment(partitions: &TopicPartitions, topics: &TopicTable) -> Assignment {
    let mut out = Assignment::default();
    out.topic_partitions = partitions
        .iter()
        .map(|(topic_id, set)| {
            let mut entry = DescribedTopicPartitions::default();
            entry.topic_id = *topic_id;
            entry.topic_name = TopicName(str_bytes(
                subscription::topic_name(topics, *topic_id).unwrap_or(""),
            ));
            entry.partitions = set.iter().copied().collect();
            entry
        })
        .collect();
    out
}
