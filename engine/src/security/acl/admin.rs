//! CreateAcls, DescribeAcls and DeleteAcls, what `kafka-acls` and the AdminClient send, with
//! Kafka's checks and error codes: the caller needs Alter on the cluster to change ACLs and
//! Describe to list them (CLUSTER_AUTHORIZATION_FAILED otherwise); without an authorizer they
//! answer SECURITY_DISABLED; an ACL or filter Kafka would refuse is INVALID_REQUEST with a message.
//! Resource types DELEGATION_TOKEN and USER are refused: nothing here would check them.
//!
//! The ACLs are the cluster's: checked here, a change goes to the active controller
//! (`cluster::forward`), which commits it to the metadata log, and is answered once this broker
//! has applied it. DescribeAcls reads this broker's copy (`store`).

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use ringbroker_protocol::frame::Request;

use super::session::Session;
use super::types::{
    AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType, CLUSTER_NAME,
};
use crate::cluster::controller::TopicOutcome;
use crate::cluster::forward;
use crate::cluster::rpc_api::{AdminReply, AdminRequest};
use crate::server::dispatch::{decode_body, respond, HandlerError, Outcome};
use crate::shard::Shard;

/// An error code with Kafka's message for it.
type Refusal = (ResponseError, String);

fn message(text: String) -> Option<StrBytes> {
    Some(StrBytes::from_string(text))
}

/// Why the request may not run at all: no authorizer, or the caller may not do `operation` on
/// the cluster.
fn refusal(shard: &Shard, session: &Session, operation: Operation) -> Option<Refusal> {
    if !shard.config.security.authorizer.enabled {
        return Some((
            ResponseError::SecurityDisabled,
            "No Authorizer is configured (start the broker with --authorizer acl)".to_string(),
        ));
    }
    (!session.authorize_cluster(operation)).then(|| {
        (
            ResponseError::ClusterAuthorizationFailed,
            format!(
                "{} may not {} the cluster's ACLs",
                session.principal(),
                operation.name()
            ),
        )
    })
}

/// Each entry of a change request checked, or all refused when the caller may not change ACLs.
fn check_each<T, U>(
    shard: &Shard,
    session: &Session,
    entries: &[T],
    check: impl Fn(&T) -> Result<U, Refusal>,
) -> Vec<Result<U, Refusal>> {
    let refused = refusal(shard, session, Operation::Alter);
    entries
        .iter()
        .map(|entry| match &refused {
            Some(refusal) => Err(refusal.clone()),
            None => check(entry),
        })
        .collect()
}

pub async fn create(
    shard: &Shard,
    session: &Session,
    request: &Request,
) -> Result<Outcome, HandlerError> {
    let body: CreateAclsRequest = decode_body(request)?;
    let checked = check_each(shard, session, &body.creations, |c| {
        new_acl(
            c.resource_type,
            &c.resource_name,
            c.resource_pattern_type,
            &c.principal,
            &c.host,
            c.operation,
            c.permission_type,
        )
    });
    let valid: Vec<AclBinding> = checked.iter().filter_map(|c| c.clone().ok()).collect();
    let reply =
        forward_unless_empty(shard, valid.len(), AdminRequest::CreateAcls { acls: valid }).await;
    // One outcome per valid ACL, in order.
    let mut outcomes = reply.outcomes.into_iter();
    let results = checked
        .into_iter()
        .map(|c| {
            let answer = match c {
                Err((error, text)) => Err((error.code(), text)),
                Ok(acl) => controller_refusal(outcomes.next()).map(|()| acl),
            };
            match answer {
                Ok(acl) => {
                    tracing::info!(principal = %session.principal(), acl = ?acl, "ACL created");
                    AclCreationResult::default()
                }
                Err((error, text)) => AclCreationResult::default()
                    .with_error_code(error)
                    .with_error_message(message(text)),
            }
        })
        .collect();
    respond(
        request,
        &CreateAclsResponse::default().with_results(results),
    )
}

/// Sends a change of `count` entries to the controller (nothing to send: an empty answer).
async fn forward_unless_empty(shard: &Shard, count: usize, change: AdminRequest) -> AdminReply {
    if count == 0 {
        return AdminReply::default();
    }
    forward::admin(shard, change).await
}

/// The controller's answer for one entry: `Err` with its error code and message when refused.
fn controller_refusal(outcome: Option<TopicOutcome>) -> Result<(), (i16, String)> {
    match outcome {
        Some(o) if o.error_code == 0 => Ok(()),
        Some(o) => Err((o.error_code, o.message.unwrap_or_default())),
        None => Err((
            ResponseError::UnknownServerError.code(),
            "the controller did not answer for this entry".to_string(),
        )),
    }
}

/// Kafka's checks of a new ACL (`AclControlManager.validateNewAcl`).
fn new_acl(
    resource_type: i8,
    name: &str,
    pattern_type: i8,
    principal: &str,
    host: &str,
    operation: i8,
    permission: i8,
) -> Result<AclBinding, Refusal> {
    let invalid = |text: &str| (ResponseError::InvalidRequest, text.to_string());
    let resource_type = match ResourceType::from_code(resource_type) {
        Some(
            t @ (ResourceType::Topic
            | ResourceType::Group
            | ResourceType::Cluster
            | ResourceType::TransactionalId),
        ) => t,
        Some(t @ (ResourceType::DelegationToken | ResourceType::User)) => {
            return Err(invalid(&format!(
                "ACLs on {} resources are not supported by ringbroker",
                t.name()
            )))
        }
        _ => return Err(invalid("Invalid resourceType")),
    };
    let pattern_type = match PatternType::from_code(pattern_type) {
        Some(p @ (PatternType::Literal | PatternType::Prefixed)) => p,
        _ => return Err(invalid("Invalid patternType")),
    };
    let operation = match Operation::from_code(operation) {
        Some(Operation::Unknown | Operation::Any) | None => {
            return Err(invalid("Invalid operation"))
        }
        Some(op) => op,
    };
    let permission = match Permission::from_code(permission) {
        Some(p @ (Permission::Allow | Permission::Deny)) => p,
        _ => return Err(invalid("Invalid permissionType")),
    };
    if name.is_empty() {
        return Err(invalid("Resource name should not be empty"));
    }
    if resource_type == ResourceType::Cluster
        && (name != CLUSTER_NAME || pattern_type != PatternType::Literal)
    {
        return Err(invalid(
            "The cluster resource is named kafka-cluster, with a literal pattern",
        ));
    }
    if !principal.contains(':') {
        return Err(invalid(&format!(
            "Could not parse principal from `{principal}` (no colon is present separating the principal type from the principal name)"
        )));
    }
    if host.is_empty() {
        return Err(invalid("Host should not be empty (use * for every host)"));
    }
    Ok(AclBinding {
        resource_type,
        resource_name: name.to_string(),
        pattern_type,
        principal: principal.to_string(),
        host: host.to_string(),
        operation,
        permission,
    })
}

/// The filter of DescribeAcls or DeleteAcls, or why it is refused.
fn filter(
    resource_type: i8,
    name: Option<&StrBytes>,
    pattern_type: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    operation: i8,
    permission: i8,
) -> Result<AclFilter, Refusal> {
    let unknown = || {
        (
            ResponseError::InvalidRequest,
            "an unknown code in the ACL filter".to_string(),
        )
    };
    let filter = AclFilter {
        resource_type: ResourceType::from_code(resource_type).ok_or_else(unknown)?,
        resource_name: name.map(|n| n.to_string()),
        pattern_type: PatternType::from_code(pattern_type).ok_or_else(unknown)?,
        principal: principal.map(|p| p.to_string()),
        host: host.map(|h| h.to_string()),
        operation: Operation::from_code(operation).ok_or_else(unknown)?,
        permission: Permission::from_code(permission).ok_or_else(unknown)?,
    };
    match filter.invalid() {
        Some(reason) => Err((ResponseError::InvalidRequest, reason.to_string())),
        None => Ok(filter),
    }
}

pub fn describe(
    shard: &Shard,
    session: &Session,
    request: &Request,
) -> Result<Outcome, HandlerError> {
    let body: DescribeAclsRequest = decode_body(request)?;
    let checked = match refusal(shard, session, Operation::Describe) {
        Some(refusal) => Err(refusal),
        None => filter(
            body.resource_type_filter,
            body.resource_name_filter.as_ref(),
            body.pattern_type_filter,
            body.principal_filter.as_ref(),
            body.host_filter.as_ref(),
            body.operation,
            body.permission_type,
        ),
    };
    let response = match checked {
        Err((error, text)) => DescribeAclsResponse::default()
            .with_error_code(error.code())
            .with_error_message(message(text)),
        Ok(filter) => {
            let acls = shard.config.security.authorizer.store.snapshot();
            DescribeAclsResponse::default()
                .with_resources(by_resource(acls.iter().filter(|acl| filter.matches(acl))))
        }
    };
    respond(request, &response)
}

/// Groups ACLs by resource pattern, as DescribeAcls answers (the store keeps them sorted, so one
/// resource's ACLs are next to each other).
fn by_resource<'a>(acls: impl Iterator<Item = &'a AclBinding>) -> Vec<DescribeAclsResource> {
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for acl in acls {
        let description = AclDescription::default()
            .with_principal(StrBytes::from_string(acl.principal.clone()))
            .with_host(StrBytes::from_string(acl.host.clone()))
            .with_operation(acl.operation.code())
            .with_permission_type(acl.permission.code());
        let same = resources.last_mut().filter(|r| {
            r.resource_type == acl.resource_type.code()
                && r.pattern_type == acl.pattern_type.code()
                && r.resource_name.as_str() == acl.resource_name
        });
        match same {
            Some(resource) => resource.acls.push(description),
            None => resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(acl.resource_type.code())
                    .with_resource_name(StrBytes::from_string(acl.resource_name.clone()))
                    .with_pattern_type(acl.pattern_type.code())
                    .with_acls(vec![description]),
            ),
        }
    }
    resources
}

pub async fn delete(
    shard: &Shard,
    session: &Session,
    request: &Request,
) -> Result<Outcome, HandlerError> {
    let body: DeleteAclsRequest = decode_body(request)?;
    let checked = check_each(shard, session, &body.filters, |f: &DeleteAclsFilter| {
        filter(
            f.resource_type_filter,
            f.resource_name_filter.as_ref(),
            f.pattern_type_filter,
            f.principal_filter.as_ref(),
            f.host_filter.as_ref(),
            f.operation,
            f.permission_type,
        )
    });
    let valid: Vec<AclFilter> = checked.iter().filter_map(|c| c.clone().ok()).collect();
    let reply = forward_unless_empty(
        shard,
        valid.len(),
        AdminRequest::DeleteAcls { filters: valid },
    )
    .await;
    // One outcome per valid filter, in order; removed ACLs carry that filter's index.
    let mut outcomes = reply.outcomes.into_iter().enumerate();
    let results = checked
        .into_iter()
        .map(|c| {
            let answer = match c {
                Err((error, text)) => Err((error.code(), text)),
                Ok(_) => {
                    let (slot, outcome) = outcomes.next().unzip();
                    controller_refusal(outcome).map(|()| slot.unwrap_or_default())
                }
            };
            match answer {
                Err((error, text)) => DeleteAclsFilterResult::default()
                    .with_error_code(error)
                    .with_error_message(message(text)),
                Ok(slot) => {
                    let acls: Vec<&AclBinding> = reply
                        .removed_acls
                        .iter()
                        .filter(|(filter, _)| *filter == slot)
                        .map(|(_, acl)| acl)
                        .collect();
                    for acl in &acls {
                        tracing::info!(principal = %session.principal(), acl = ?acl, "ACL deleted");
                    }
                    DeleteAclsFilterResult::default()
                        .with_matching_acls(acls.into_iter().map(matching_acl).collect())
                }
            }
        })
        .collect();
    respond(
        request,
        &DeleteAclsResponse::default().with_filter_results(results),
    )
}

fn matching_acl(acl: &AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(acl.resource_type.code())
        .with_resource_name(StrBytes::from_string(acl.resource_name.clone()))
        .with_pattern_type(acl.pattern_type.code())
        .with_principal(StrBytes::from_string(acl.principal.clone()))
        .with_host(StrBytes::from_string(acl.host.clone()))
        .with_operation(acl.operation.code())
        .with_permission_type(acl.permission.code())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(
        resource: ResourceType,
        name: &str,
        pattern: PatternType,
        principal: &str,
    ) -> Result<AclBinding, Refusal> {
        new_acl(
            resource.code(),
            name,
            pattern.code(),
            principal,
            "*",
            Operation::Read.code(),
            Permission::Allow.code(),
        )
    }

    #[test]
    fn new_acls_are_checked_as_kafka_checks_them() {
        assert!(create(
            ResourceType::Topic,
            "orders-",
            PatternType::Prefixed,
            "User:alice"
        )
        .is_ok());
        assert!(create(
            ResourceType::Cluster,
            CLUSTER_NAME,
            PatternType::Literal,
            "User:a"
        )
        .is_ok());
        let refused = |r: Result<AclBinding, Refusal>| r.err().map(|(error, _)| error);
        let invalid = Some(ResponseError::InvalidRequest);
        assert_eq!(
            refused(create(
                ResourceType::Cluster,
                "other",
                PatternType::Literal,
                "User:a"
            )),
            invalid
        );
        assert_eq!(
            refused(create(
                ResourceType::Topic,
                "t",
                PatternType::Match,
                "User:a"
            )),
            invalid
        );
        assert_eq!(
            refused(create(
                ResourceType::Any,
                "t",
                PatternType::Literal,
                "User:a"
            )),
            invalid
        );
        assert_eq!(
            refused(create(
                ResourceType::User,
                "t",
                PatternType::Literal,
                "User:a"
            )),
            invalid
        );
        assert_eq!(
            refused(create(
                ResourceType::Topic,
                "",
                PatternType::Literal,
                "User:a"
            )),
            invalid
        );
        assert_eq!(
            refused(create(
                ResourceType::Topic,
                "t",
                PatternType::Literal,
                "alice"
            )),
            invalid
        );
        let any_operation = new_acl(2, "t", 3, "User:a", "*", Operation::Any.code(), 3);
        assert_eq!(refused(any_operation), invalid);
    }

    #[test]
    fn filters_refuse_unknown_codes_and_describe_groups_by_resource() {
        assert!(filter(1, None, 1, None, None, 1, 1).is_ok());
        assert!(filter(0, None, 1, None, None, 1, 1).is_err());
        assert!(filter(2, None, 9, None, None, 1, 1).is_err());
        let acl = |name: &str, principal: &str| AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.into(),
            pattern_type: PatternType::Literal,
            principal: principal.into(),
            host: "*".into(),
            operation: Operation::Read,
            permission: Permission::Allow,
        };
        let acls = [acl("a", "User:x"), acl("a", "User:y"), acl("b", "User:x")];
        let resources = by_resource(acls.iter());
        assert_eq!(resources.len(), 2);
        assert_eq!(resources[0].acls.len(), 2);
        assert_eq!(resources[1].resource_name.as_str(), "b");
    }
}
