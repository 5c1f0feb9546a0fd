//! The authorization decision of Kafka's StandardAuthorizer for one principal, host, operation and
//! resource, given the ACLs: super users may do everything; a matching DENY beats any ALLOW; an
//! ALLOW matches its own operation, ALL, and the operations it implies (`Operation::allows`);
//! a resource no ACL covers at all (for anyone) follows `allow.everyone.if.no.acl.found`.

use super::types::{AclBinding, Operation, Permission, ResourceType};

/// The settings of the decision that are not ACLs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Principals allowed everything (`super.users`, `User:admin`).
    pub super_users: Vec<String>,
    /// Whether a resource without any ACL is open to everyone (Kafka's
    /// `allow.everyone.if.no.acl.found`).
    pub allow_if_no_acl: bool,
}

/// Who asks, from where, to do what on which resource.
#[derive(Debug, Clone, Copy)]
pub struct Action<'a> {
    pub principal: &'a str,
    pub host: &'a str,
    pub operation: Operation,
    pub resource_type: ResourceType,
    pub resource_name: &'a str,
}

/// Whether `acls` and `rules` allow `action`.
pub fn authorize(acls: &[AclBinding], rules: &Rules, action: &Action<'_>) -> bool {
    if rules.super_users.iter().any(|u| u == action.principal) {
        return true;
    }
    let mut covered = false;
    let mut allowed = false;
    for acl in acls
        .iter()
        .filter(|acl| acl.covers(action.resource_type, action.resource_name))
    {
        covered = true;
        if !acl.applies_to(action.principal, action.host) {
            continue;
        }
        match acl.permission {
            Permission::Deny
                if acl.operation == Operation::All || acl.operation == action.operation =>
            {
                return false;
            }
            Permission::Allow if acl.operation.allows(action.operation) => allowed = true,
            _ => {}
        }
    }
    allowed || (!covered && rules.allow_if_no_acl)
}

/// Whether `principal` may do `operation` on at least one resource of `resource_type` (Kafka's
/// `authorizeByResourceType`, simplified): a super user, or an ALLOW rule for it that no DENY
/// rule of the same principal on every such resource (`*`) cancels.
pub fn authorize_some(
    acls: &[AclBinding],
    rules: &Rules,
    principal: &str,
    host: &str,
    operation: Operation,
    resource_type: ResourceType,
) -> bool {
    if rules.super_users.iter().any(|u| u == principal) {
        return true;
    }
    let applies =
        |acl: &&AclBinding| acl.resource_type == resource_type && acl.applies_to(principal, host);
    let denied_everywhere = acls.iter().filter(applies).any(|acl| {
        acl.permission == Permission::Deny
            && (acl.operation == Operation::All || acl.operation == operation)
            && acl.covers(resource_type, super::types::WILDCARD_RESOURCE)
            && acl.resource_name == super::types::WILDCARD_RESOURCE
    });
    !denied_everywhere
        && acls.iter().filter(applies).any(|acl| {
            acl.permission == Permission::Allow
                && (acl.operation == Operation::All || acl.operation == operation)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::acl::types::PatternType;

    fn acl(
        resource: (ResourceType, PatternType, &str),
        principal: &str,
        host: &str,
        operation: Operation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: resource.0,
            pattern_type: resource.1,
            resource_name: resource.2.into(),
            principal: principal.into(),
            host: host.into(),
            operation,
            permission,
        }
    }

    fn topic(pattern_type: PatternType, name: &str) -> (ResourceType, PatternType, &str) {
        (ResourceType::Topic, pattern_type, name)
    }

    fn may(acls: &[AclBinding], rules: &Rules, who: &str, op: Operation, name: &str) -> bool {
        authorize(
            acls,
            rules,
            &Action {
                principal: who,
                host: "10.0.0.1",
                operation: op,
                resource_type: ResourceType::Topic,
                resource_name: name,
            },
        )
    }

    const ALICE: &str = "User:alice";

    #[test]
    fn literal_prefixed_and_wildcard_patterns() {
        let rules = Rules::default();
        let acls = [
            acl(
                topic(PatternType::Prefixed, "orders-"),
                ALICE,
                "*",
                Operation::Write,
                Permission::Allow,
            ),
            acl(
                topic(PatternType::Literal, "audit"),
                ALICE,
                "*",
                Operation::Read,
                Permission::Allow,
            ),
            acl(
                topic(PatternType::Literal, "*"),
                "User:bob",
                "*",
                Operation::Read,
                Permission::Allow,
            ),
        ];
        assert!(may(&acls, &rules, ALICE, Operation::Write, "orders-eu"));
        assert!(!may(&acls, &rules, ALICE, Operation::Write, "order"));
        assert!(may(&acls, &rules, ALICE, Operation::Read, "audit"));
        assert!(!may(&acls, &rules, ALICE, Operation::Read, "audit-2"));
        assert!(may(&acls, &rules, "User:bob", Operation::Read, "anything"));
        assert!(!may(
            &acls,
            &rules,
            "User:bob",
            Operation::Write,
            "anything"
        ));
    }

    #[test]
    fn deny_beats_allow_and_all() {
        let rules = Rules::default();
        let acls = [
            acl(
                topic(PatternType::Literal, "*"),
                "User:*",
                "*",
                Operation::All,
                Permission::Allow,
            ),
            acl(
                topic(PatternType::Prefixed, "secret"),
                ALICE,
                "*",
                Operation::Read,
                Permission::Deny,
            ),
        ];
        assert!(!may(&acls, &rules, ALICE, Operation::Read, "secret-plans"));
        // A denied Read does not deny Describe (DENY rules imply nothing).
        assert!(may(
            &acls,
            &rules,
            ALICE,
            Operation::Describe,
            "secret-plans"
        ));
        assert!(may(
            &acls,
            &rules,
            "User:bob",
            Operation::Read,
            "secret-plans"
        ));
        let deny_all = [acl(
            topic(PatternType::Literal, "t"),
            ALICE,
            "*",
            Operation::All,
            Permission::Deny,
        )];
        assert!(!may(&deny_all, &rules, ALICE, Operation::Describe, "t"));
    }

    #[test]
    fn implied_operations() {
        let rules = Rules::default();
        let acls = [
            acl(
                topic(PatternType::Literal, "t"),
                ALICE,
                "*",
                Operation::Write,
                Permission::Allow,
            ),
            acl(
                topic(PatternType::Literal, "c"),
                ALICE,
                "*",
                Operation::AlterConfigs,
                Permission::Allow,
            ),
        ];
        assert!(may(&acls, &rules, ALICE, Operation::Describe, "t"));
        assert!(!may(&acls, &rules, ALICE, Operation::Read, "t"));
        assert!(may(&acls, &rules, ALICE, Operation::DescribeConfigs, "c"));
        assert!(!may(&acls, &rules, ALICE, Operation::Describe, "c"));
    }

    #[test]
    fn some_topic_is_enough_for_a_producer_id() {
        let rules = Rules::default();
        let acls = [acl(
            topic(PatternType::Prefixed, "orders-"),
            ALICE,
            "*",
            Operation::Write,
            Permission::Allow,
        )];
        let some = |acls: &[AclBinding], who| {
            authorize_some(
                acls,
                &rules,
                who,
                "10.0.0.1",
                Operation::Write,
                ResourceType::Topic,
            )
        };
        assert!(some(&acls, ALICE));
        assert!(!some(&acls, "User:bob"));
        let mut denied = acls.to_vec();
        denied.push(acl(
            topic(PatternType::Literal, "*"),
            ALICE,
            "*",
            Operation::All,
            Permission::Deny,
        ));
        assert!(!some(&denied, ALICE));
    }

    #[test]
    fn host_must_match() {
        let rules = Rules::default();
        let acls = [acl(
            topic(PatternType::Literal, "t"),
            ALICE,
            "10.0.0.2",
            Operation::Read,
            Permission::Allow,
        )];
        assert!(!may(&acls, &rules, ALICE, Operation::Read, "t"));
        let here = [acl(
            topic(PatternType::Literal, "t"),
            ALICE,
            "10.0.0.1",
            Operation::Read,
            Permission::Allow,
        )];
        assert!(may(&here, &rules, ALICE, Operation::Read, "t"));
    }

    #[test]
    fn super_users_and_resources_without_acls() {
        let closed = Rules {
            super_users: vec!["User:admin".into()],
            allow_if_no_acl: false,
        };
        let open = Rules {
            allow_if_no_acl: true,
            ..closed.clone()
        };
        let acls = [acl(
            topic(PatternType::Literal, "t"),
            "User:bob",
            "*",
            Operation::Read,
            Permission::Allow,
        )];
        assert!(may(&acls, &closed, "User:admin", Operation::Delete, "t"));
        assert!(!may(&acls, &closed, ALICE, Operation::Read, "free"));
        assert!(may(&acls, &open, ALICE, Operation::Read, "free"));
        // An ACL for someone else on the resource closes it, even when open by default.
        assert!(!may(&acls, &open, ALICE, Operation::Read, "t"));
        // Other resource types are not covered by topic ACLs.
        let cluster = Action {
            principal: ALICE,
            host: "10.0.0.1",
            operation: Operation::Read,
            resource_type: ResourceType::Group,
            resource_name: "t",
        };
        assert!(!authorize(&acls, &closed, &cluster));
    }
}
