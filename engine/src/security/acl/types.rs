//! Kafka's ACL vocabulary with its wire codes (org.apache.kafka.common.resource and
//! org.apache.kafka.common.acl): resource types, pattern types, operations, permissions, one ACL
//! binding and the filters DescribeAcls and DeleteAcls send.

use serde::{Deserialize, Serialize};

/// The name of the one cluster resource (Kafka's `Resource.CLUSTER_NAME`).
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// A literal resource name matching every resource of its type.
pub const WILDCARD_RESOURCE: &str = "*";
/// A `*_authorized_operations` field the client did not ask for (the schemas' default,
/// Kafka's "not provided").
pub const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;
/// The principal matching every principal.
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// The host matching every host.
pub const WILDCARD_HOST: &str = "*";

/// Declares a Kafka enum with its wire codes and its names (the names are what the ACL file holds,
/// and what `kafka-acls --list` prints).
macro_rules! kafka_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $($variant),* }

        impl $name {
            /// The wire code.
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code),* }
            }
            /// The value of a wire code (`None` for codes Kafka does not define).
            pub fn from_code(code: i8) -> Option<Self> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }
            /// Kafka's name of the value.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }
    };
}

kafka_enum!(
    /// Kafka's `ResourceType`.
    ResourceType {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
);

kafka_enum!(
    /// Kafka's `PatternType`: LITERAL and PREFIXED are stored; ANY and MATCH only filter.
    PatternType {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Match = 2, "MATCH";
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
);

kafka_enum!(
    /// Kafka's `AclOperation`.
    Operation {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
        TwoPhaseCommit = 15, "TWO_PHASE_COMMIT";
    }
);

kafka_enum!(
    /// Kafka's `AclPermissionType`.
    Permission {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

impl ResourceType {
    /// The operations Kafka's ACLs know for resources of this type (`AclEntry.supportedOperations`),
    /// which the `*_authorized_operations` fields report on.
    pub fn supported_operations(self) -> &'static [Operation] {
        use Operation::*;
        match self {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Delete,
                Alter,
                Describe,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
            ResourceType::Cluster => &[
                Create,
                Alter,
                Describe,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
            ],
            ResourceType::TransactionalId => &[Describe, Write, TwoPhaseCommit],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
            ResourceType::Unknown | ResourceType::Any => &[],
        }
    }
}

impl Operation {
    /// Whether an ALLOW rule for `self` also allows `requested` (Kafka's implied operations:
    /// Read, Write, Delete and Alter imply Describe; AlterConfigs implies DescribeConfigs).
    /// DENY rules never imply: a denied Read still lets the topic be described.
    pub fn allows(self, requested: Operation) -> bool {
        self == Operation::All
            || self == requested
            || (requested == Operation::Describe
                && matches!(
                    self,
                    Operation::Read | Operation::Write | Operation::Delete | Operation::Alter
                ))
            || (requested == Operation::DescribeConfigs && self == Operation::AlterConfigs)
    }
}

/// One stored ACL: a resource pattern and who may (or may not) do what on it from where.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    /// LITERAL or PREFIXED.
    pub pattern_type: PatternType,
    /// `User:<name>`, or `User:*` for everyone.
    pub principal: String,
    /// A client IP address, or `*`.
    pub host: String,
    pub operation: Operation,
    /// ALLOW or DENY.
    pub permission: Permission,
}

impl AclBinding {
    /// Whether this ACL's resource pattern covers the resource `(resource_type, name)`: the same
    /// literal name, the literal wildcard `*`, or a prefix of the name.
    pub fn covers(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => {
                    self.resource_name == name || self.resource_name == WILDCARD_RESOURCE
                }
                PatternType::Prefixed => name.starts_with(self.resource_name.as_str()),
                _ => false,
            }
    }

    /// Whether this ACL is about `principal` connecting from `host`.
    pub fn applies_to(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == WILDCARD_PRINCIPAL)
            && (self.host == host || self.host == WILDCARD_HOST)
    }
}

#[cfg(test)]
impl AclBinding {
    /// For tests: `principal` allowed `operation` on the literal topic `topic` from any host.
    pub fn allow_on_topic(topic: &str, principal: &str, operation: Operation) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: topic.into(),
            pattern_type: PatternType::Literal,
            principal: principal.into(),
            host: WILDCARD_HOST.into(),
            operation,
            permission: Permission::Allow,
        }
    }
}

/// A filter of DescribeAcls and DeleteAcls (Kafka's `AclBindingFilter`): `None` and the ANY
/// values match everything; pattern type MATCH matches the ACLs that apply to the named resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    pub resource_name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclFilter {
    /// Why the filter cannot match anything meaningful: Kafka refuses UNKNOWN values.
    pub fn invalid(&self) -> Option<&'static str> {
        if self.resource_type == ResourceType::Unknown {
            Some("the filter's resource type is UNKNOWN")
        } else if self.pattern_type == PatternType::Unknown {
            Some("the filter's pattern type is UNKNOWN")
        } else if self.operation == Operation::Unknown {
            Some("the filter's operation is UNKNOWN")
        } else if self.permission == Permission::Unknown {
            Some("the filter's permission type is UNKNOWN")
        } else {
            None
        }
    }

    /// Kafka's `AclBindingFilter.matches`.
    pub fn matches(&self, acl: &AclBinding) -> bool {
        self.matches_pattern(acl)
            && self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && (self.operation == Operation::Any || self.operation == acl.operation)
            && (self.permission == Permission::Any || self.permission == acl.permission)
    }

    /// Kafka's `ResourcePatternFilter.matches`.
    fn matches_pattern(&self, acl: &AclBinding) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != acl.resource_type {
            return false;
        }
        let any_pattern = matches!(self.pattern_type, PatternType::Any | PatternType::Match);
        if !any_pattern && self.pattern_type != acl.pattern_type {
            return false;
        }
        let Some(name) = &self.resource_name else {
            return true;
        };
        if self.pattern_type == PatternType::Any || self.pattern_type == acl.pattern_type {
            return *name == acl.resource_name;
        }
        // MATCH: the ACLs that apply to the resource named.
        acl.covers(acl.resource_type, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(pattern_type: PatternType, name: &str) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.into(),
            pattern_type,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: Operation::Read,
            permission: Permission::Allow,
        }
    }

    fn filter(pattern_type: PatternType, name: Option<&str>) -> AclFilter {
        AclFilter {
            resource_type: ResourceType::Any,
            resource_name: name.map(str::to_string),
            pattern_type,
            principal: None,
            host: None,
            operation: Operation::Any,
            permission: Permission::Any,
        }
    }

    #[test]
    fn the_file_uses_kafkas_names() {
        let text =
            serde_json::to_string(&(Operation::IdempotentWrite, ResourceType::TransactionalId))
                .unwrap();
        assert_eq!(text, r#"["IDEMPOTENT_WRITE","TRANSACTIONAL_ID"]"#);
        for op in (0..=15).filter_map(Operation::from_code) {
            assert_eq!(
                serde_json::to_string(&op).unwrap(),
                format!("\"{}\"", op.name())
            );
        }
    }

    #[test]
    fn codes_round_trip() {
        for code in 0..=15 {
            let op = Operation::from_code(code).unwrap();
            assert_eq!(op.code(), code);
        }
        assert_eq!(ResourceType::from_code(8), None);
        assert_eq!(Permission::from_code(3), Some(Permission::Allow));
    }

    #[test]
    fn filters_match_as_kafkas_resource_pattern_filter() {
        let prefixed = acl(PatternType::Prefixed, "orders-");
        let literal = acl(PatternType::Literal, "orders-eu");
        let wildcard = acl(PatternType::Literal, "*");
        let matching = filter(PatternType::Match, Some("orders-eu"));
        assert!(matching.matches(&prefixed));
        assert!(matching.matches(&literal));
        assert!(matching.matches(&wildcard));
        assert!(!filter(PatternType::Match, Some("payments")).matches(&prefixed));
        // ANY with a name: the exact name, whatever the pattern type.
        assert!(filter(PatternType::Any, Some("orders-")).matches(&prefixed));
        assert!(!filter(PatternType::Any, Some("orders-eu")).matches(&prefixed));
        assert!(filter(PatternType::Literal, None).matches(&literal));
        assert!(!filter(PatternType::Literal, None).matches(&prefixed));
        let mut by_principal = filter(PatternType::Any, None);
        by_principal.principal = Some("User:bob".into());
        assert!(!by_principal.matches(&literal));
    }

    #[test]
    fn only_allow_rules_imply_describe() {
        assert!(Operation::Write.allows(Operation::Describe));
        assert!(Operation::AlterConfigs.allows(Operation::DescribeConfigs));
        assert!(!Operation::Describe.allows(Operation::Read));
        assert!(!Operation::Create.allows(Operation::Describe));
        assert!(Operation::All.allows(Operation::ClusterAction));
    }
}
