//! The active controller's decisions on ACLs, as Kafka's `AclControlManager`: CreateAcls adds the
//! ACLs the image lacks (one `AccessControlEntry` record each), DeleteAcls removes every ACL a
//! filter matches (one `RemoveAccessControlEntry` record each). The brokers already checked each
//! ACL and filter as Kafka checks them (`security::acl::admin`), so the answers here are Kafka's
//! for a valid request: success, or too many ACLs. Outcomes are named by the entry's index.

use std::collections::BTreeSet;

use kafka_protocol::ResponseError;

use super::controller::{Decision, TopicOutcome};
use super::image::MetadataImage;
use super::records::MetadataRecord;
use crate::security::acl::store::MAX_ACLS;
use crate::security::acl::types::{AclBinding, AclFilter};

/// CreateAcls: an ACL already present succeeds without a record (Kafka does the same).
pub fn create_acls(image: &MetadataImage, acls: &[AclBinding]) -> Decision {
    let mut decision = Decision::default();
    let mut added = BTreeSet::new();
    for (slot, acl) in acls.iter().enumerate() {
        let name = slot.to_string();
        if image.acls.binary_search(acl).is_ok() || added.contains(acl) {
            decision.outcomes.push(TopicOutcome::ok(&name));
            continue;
        }
        if image.acls.len() + added.len() >= MAX_ACLS {
            decision.outcomes.push(TopicOutcome::error(
                &name,
                ResponseError::PolicyViolation,
                format!("the cluster holds at most {MAX_ACLS} ACLs"),
            ));
            continue;
        }
        added.insert(acl.clone());
        decision
            .records
            .push(MetadataRecord::AccessControlEntry(acl.clone()));
        decision.outcomes.push(TopicOutcome::ok(&name));
    }
    decision
}

/// DeleteAcls: each filter's outcome lists every ACL it matches (an ACL two filters match is
/// listed under both and removed once).
pub fn delete_acls(image: &MetadataImage, filters: &[AclFilter]) -> Decision {
    let mut decision = Decision::default();
    let mut removed = BTreeSet::new();
    for (slot, filter) in filters.iter().enumerate() {
        for acl in image.acls.iter().filter(|acl| filter.matches(acl)) {
            if removed.insert(acl) {
                decision
                    .records
                    .push(MetadataRecord::RemoveAccessControlEntry(acl.clone()));
            }
            decision.removed_acls.push((slot, acl.clone()));
        }
        decision.outcomes.push(TopicOutcome::ok(&slot.to_string()));
    }
    decision
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::acl::types::{Operation, PatternType, Permission, ResourceType};

    fn acl(topic: &str, operation: Operation) -> AclBinding {
        AclBinding::allow_on_topic(topic, "User:alice", operation)
    }

    fn topic_filter(name: Option<&str>) -> AclFilter {
        AclFilter {
            resource_type: ResourceType::Topic,
            resource_name: name.map(str::to_string),
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: Operation::Any,
            permission: Permission::Any,
        }
    }

    fn commit(image: &mut MetadataImage, decision: &Decision) {
        let index = image.applied_index + 1;
        image.apply(index, &decision.records);
    }

    #[test]
    fn creations_add_each_new_acl_once() {
        let mut image = MetadataImage::default();
        let first = create_acls(
            &image,
            &[acl("a", Operation::Read), acl("a", Operation::Read)],
        );
        assert_eq!(first.records.len(), 1, "a repeated ACL is one record");
        assert!(first.outcomes.iter().all(|o| o.error_code == 0));
        assert_eq!(first.outcomes[1].name, "1", "outcomes are named by index");
        commit(&mut image, &first);
        let again = create_acls(
            &image,
            &[acl("a", Operation::Read), acl("b", Operation::Write)],
        );
        assert_eq!(
            again.records,
            vec![MetadataRecord::AccessControlEntry(acl(
                "b",
                Operation::Write
            ))],
            "an ACL the cluster has succeeds without a record"
        );
        assert!(again.outcomes.iter().all(|o| o.error_code == 0));
    }

    #[test]
    fn deletions_list_what_each_filter_matched_and_remove_it_once() {
        let mut image = MetadataImage::default();
        let acls = [acl("a", Operation::Read), acl("b", Operation::Write)];
        let created = create_acls(&image, &acls);
        commit(&mut image, &created);
        let decision = delete_acls(
            &image,
            &[
                topic_filter(Some("a")),
                topic_filter(None),
                topic_filter(Some("zzz")),
            ],
        );
        assert_eq!(
            decision.removed_acls,
            vec![
                (0, acls[0].clone()),
                (1, acls[0].clone()),
                (1, acls[1].clone()),
            ]
        );
        assert_eq!(decision.records.len(), 2);
        assert_eq!(
            decision.outcomes.len(),
            3,
            "a filter matching nothing succeeds"
        );
        commit(&mut image, &decision);
        assert!(image.acls.is_empty());
    }
}
