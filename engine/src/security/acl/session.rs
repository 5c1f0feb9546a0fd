//! One connection's view of the authorizer: its principal and host, and the decisions it has
//! already made. The request path asks `authorize`; with the authorizer off that is one branch,
//! and with it on a decision made before is found in a small per-connection cache (no lock, no
//! allocation) as long as the ACL generation it was made at is current. A miss takes the store's
//! read lock once, decides (`matcher`) and keeps the result.
//!
//! Denials are audited: counted in `ringbroker_authorization_denied_total` and logged with the
//! principal, the client address, the resource and the operation (WARN lines are rate-limited
//! per call site by the broker's log layer, `log_warnings_per_second`).

use std::cell::RefCell;
use std::sync::Arc;

use kafka_protocol::ResponseError;

use super::matcher::{self, Action, Rules};
use super::store::AclStore;
use super::types::{Operation, ResourceType, CLUSTER_NAME};
use crate::metrics::ShardMetrics;

/// Decisions a connection remembers: a client touches a handful of topics, a group, maybe a
/// transactional id. Past this, the oldest entry is replaced (round robin).
pub const DECISIONS_CACHED_PER_CONNECTION: usize = 16;

/// The broker's authorizer: off (everything is allowed, as without `--authorizer`), or Kafka's
/// ACL authorizer with its rules and the ACLs.
#[derive(Debug, Default)]
pub struct Authorizer {
    /// `authorizer.class.name` / `--authorizer acl`.
    pub enabled: bool,
    pub rules: Rules,
    pub store: AclStore,
}

impl Authorizer {
    /// An ACL authorizer with `rules`; its ACLs come from the data directory at start.
    pub fn acl(rules: Rules) -> Self {
        Authorizer {
            enabled: true,
            rules,
            store: AclStore::default(),
        }
    }
}

struct Decision {
    generation: u64,
    resource_type: ResourceType,
    operation: Operation,
    name: String,
    allowed: bool,
}

#[derive(Default)]
struct Cache {
    decisions: Vec<Decision>,
    /// The entry the next miss replaces once the cache is full.
    next: usize,
}

/// See the module doc.
pub struct Session {
    principal: String,
    /// The client's IP address, what ACL hosts are compared with.
    host: String,
    /// ip:port, for the audit log.
    peer: String,
    authorizer: Arc<Authorizer>,
    metrics: Option<Arc<ShardMetrics>>,
    cache: RefCell<Cache>,
}

impl Session {
    pub fn new(
        principal: String,
        peer: &str,
        authorizer: Arc<Authorizer>,
        metrics: Option<Arc<ShardMetrics>>,
    ) -> Self {
        let host = peer
            .parse::<std::net::SocketAddr>()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        Session {
            principal,
            host,
            peer: peer.to_string(),
            authorizer,
            metrics,
            cache: RefCell::new(Cache::default()),
        }
    }

    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// Whether requests are checked at all (`--authorizer acl`).
    pub fn enforcing(&self) -> bool {
        self.authorizer.enabled
    }

    /// Whether the client may do `operation` on the resource; a denial is counted and logged.
    pub fn authorize(&self, operation: Operation, resource_type: ResourceType, name: &str) -> bool {
        let allowed = self.allows(operation, resource_type, name);
        if !allowed {
            if let Some(m) = &self.metrics {
                ShardMetrics::add(&m.counters.authorization_denied, 1);
            }
            tracing::warn!(principal = %self.principal, peer = %self.peer, resource_type = resource_type.name(), resource = %name, operation = operation.name(), "authorization denied");
        }
        allowed
    }

    /// `authorize` on the cluster resource.
    pub fn authorize_cluster(&self, operation: Operation) -> bool {
        self.authorize(operation, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// Kafka's error code for a denied `operation` on the resource (TOPIC_, GROUP_, CLUSTER_ or
    /// TRANSACTIONAL_ID_AUTHORIZATION_FAILED), or `None` when it is allowed; audited.
    pub fn refusal(
        &self,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> Option<i16> {
        if self.authorize(operation, resource_type, name) {
            return None;
        }
        let error = match resource_type {
            ResourceType::Topic => ResponseError::TopicAuthorizationFailed,
            ResourceType::Group => ResponseError::GroupAuthorizationFailed,
            ResourceType::TransactionalId => ResponseError::TransactionalIdAuthorizationFailed,
            _ => ResponseError::ClusterAuthorizationFailed,
        };
        Some(error.code())
    }

    /// `refusal` on the cluster resource.
    pub fn cluster_refusal(&self, operation: Operation) -> Option<i16> {
        self.refusal(operation, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// Kafka's check for creating a topic: Create on the cluster, or on the topic.
    pub fn may_create_topic(&self, name: &str) -> bool {
        self.allows(Operation::Create, ResourceType::Cluster, CLUSTER_NAME)
            || self.authorize(Operation::Create, ResourceType::Topic, name)
    }

    /// Whether the client may do `operation` on the resource, without auditing a denial: for
    /// lists the client only sees part of (Metadata of all topics), as Kafka does.
    pub fn allows(&self, operation: Operation, resource_type: ResourceType, name: &str) -> bool {
        if !self.authorizer.enabled {
            return true;
        }
        let generation = self.authorizer.store.generation();
        if let Some(allowed) = self.cached(generation, operation, resource_type, name) {
            return allowed;
        }
        let acls = self.authorizer.store.snapshot();
        let allowed = matcher::authorize(
            &acls,
            &self.authorizer.rules,
            &Action {
                principal: &self.principal,
                host: &self.host,
                operation,
                resource_type,
                resource_name: name,
            },
        );
        self.remember(generation, operation, resource_type, name, allowed);
        allowed
    }

    /// Kafka's `authorizedOperations`: the bit field (bit n = operation code n) of the operations
    /// the client may do on the resource among those its type supports; all of them without an
    /// authorizer. What Metadata, DescribeGroups, ConsumerGroupDescribe and DescribeCluster report
    /// when asked (`include_*_authorized_operations`).
    pub fn authorized_operations(&self, resource_type: ResourceType, name: &str) -> i32 {
        resource_type
            .supported_operations()
            .iter()
            .filter(|op| self.allows(**op, resource_type, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }

    /// Whether the client may do `operation` on some resource of `resource_type` (an idempotent
    /// producer's InitProducerId); not cached: it is asked once per producer.
    pub fn allows_some(&self, operation: Operation, resource_type: ResourceType) -> bool {
        !self.authorizer.enabled
            || matcher::authorize_some(
                &self.authorizer.store.snapshot(),
                &self.authorizer.rules,
                &self.principal,
                &self.host,
                operation,
                resource_type,
            )
    }

    fn cached(
        &self,
        generation: u64,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> Option<bool> {
        self.cache
            .borrow()
            .decisions
            .iter()
            .find(|d| {
                d.generation == generation
                    && d.operation == operation
                    && d.resource_type == resource_type
                    && d.name == name
            })
            .map(|d| d.allowed)
    }

    fn remember(
        &self,
        generation: u64,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
        allowed: bool,
    ) {
        let mut cache = self.cache.borrow_mut();
        // A stale entry for the same key is refreshed in place.
        let slot = cache.decisions.iter().position(|d| {
            d.operation == operation && d.resource_type == resource_type && d.name == name
        });
        let slot = match slot {
            Some(slot) => slot,
            None if cache.decisions.len() < DECISIONS_CACHED_PER_CONNECTION => {
                cache.decisions.push(Decision {
                    generation,
                    resource_type,
                    operation,
                    name: name.to_string(),
                    allowed,
                });
                return;
            }
            None => {
                let slot = cache.next;
                cache.next = (slot + 1) % DECISIONS_CACHED_PER_CONNECTION;
                slot
            }
        };
        let decision = &mut cache.decisions[slot];
        decision.generation = generation;
        decision.resource_type = resource_type;
        decision.operation = operation;
        // Reuses the entry's buffer: no allocation once it has held a name this long.
        decision.name.clear();
        decision.name.push_str(name);
        decision.allowed = allowed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::acl::types::{AclBinding, PatternType, Permission};

    fn read(topic: &str) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: topic.into(),
            pattern_type: PatternType::Literal,
            principal: "User:alice".into(),
            host: "127.0.0.1".into(),
            operation: Operation::Read,
            permission: Permission::Allow,
        }
    }

    #[test]
    fn cached_decisions_follow_acl_changes() {
        let authorizer = Arc::new(Authorizer::acl(Rules::default()));
        let session = Session::new(
            "User:alice".into(),
            "127.0.0.1:5000",
            authorizer.clone(),
            None,
        );
        assert!(!session.authorize(Operation::Read, ResourceType::Topic, "t"));
        authorizer.store.install(&Arc::new(vec![read("t")]));
        assert!(session.authorize(Operation::Read, ResourceType::Topic, "t"));
        // Many more resources than the cache holds: answers stay right as entries are replaced.
        for i in 0..3 * DECISIONS_CACHED_PER_CONNECTION {
            assert!(!session.allows(Operation::Read, ResourceType::Topic, &format!("other-{i}")));
        }
        assert!(session.allows(Operation::Read, ResourceType::Topic, "t"));
        assert!(session.allows(Operation::Describe, ResourceType::Topic, "t"));
        let other_host = Session::new("User:alice".into(), "10.1.1.1:5000", authorizer, None);
        assert!(!other_host.allows(Operation::Read, ResourceType::Topic, "t"));
    }

    #[test]
    fn without_an_authorizer_everything_is_allowed() {
        let session = Session::new(
            "User:ANONYMOUS".into(),
            "127.0.0.1:1",
            Arc::new(Authorizer::default()),
            None,
        );
        assert!(session.authorize_cluster(Operation::Alter));
    }
}
