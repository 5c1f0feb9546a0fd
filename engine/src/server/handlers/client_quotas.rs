//! DescribeClientQuotas (API 48) and AlterClientQuotas (API 49), what `kafka-configs
//! --entity-type users|clients|ips` sends. ringbroker has no client quotas yet, so every describe
//! is answered with no entries, after Kafka's own validation of the filter
//! (`ClientQuotasImage.describe`): an empty entity type, one given twice, a match string that
//! does not fit the match type or an IP component mixed with user or client-id ones is
//! INVALID_REQUEST; an unknown entity type or match type UNSUPPORTED_VERSION. Alter refuses every
//! entry with INVALID_REQUEST and a message saying quotas are not supported, as Kafka answers a
//! quota key it does not know.
//!
//! With the ACL authorizer, describing needs DescribeConfigs on the cluster and altering
//! AlterConfigs (Kafka's checks); a refusal is CLUSTER_AUTHORIZATION_FAILED.

use std::collections::HashSet;

use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use ringbroker_protocol::frame::Request;

use crate::security::acl::{Operation, Session};
use crate::server::dispatch::{decode_body, respond, HandlerError, Outcome};

/// Kafka's quota entity types (`ClientQuotaEntity`).
const ENTITY_TYPES: [&str; 3] = ["user", "client-id", "ip"];
/// `match_type` of a filter component (`ClientQuotaFilterComponent`): the named entity, the
/// default entity, or any entity of the type.
const MATCH_TYPE_EXACT: i8 = 0;
const MATCH_TYPE_DEFAULT: i8 = 1;
const MATCH_TYPE_SPECIFIED: i8 = 2;
/// What AlterClientQuotas answers for every entry.
const QUOTAS_UNSUPPORTED: &str =
    "client quotas are not supported by ringbroker yet: no quota config can be set";

pub fn describe(request: &Request, session: &Session) -> Result<Outcome, HandlerError> {
    let body: DescribeClientQuotasRequest = decode_body(request)?;
    let response = DescribeClientQuotasResponse::default();
    if let Some(code) = session.cluster_refusal(Operation::DescribeConfigs) {
        return respond(request, &response.with_error_code(code));
    }
    let response = match validate_filter(&body.components) {
        Ok(()) => response.with_entries(Some(Vec::new())),
        Err((error, message)) => response
            .with_error_code(error.code())
            .with_error_message(Some(StrBytes::from_string(message)))
            .with_entries(None),
    };
    respond(request, &response)
}

/// Kafka's checks of a DescribeClientQuotas filter, with its messages.
fn validate_filter(components: &[ComponentData]) -> Result<(), (ResponseError, String)> {
    let invalid = |message: String| Err((ResponseError::InvalidRequest, message));
    let mut seen: HashSet<&str> = HashSet::new();
    for component in components {
        let entity_type = component.entity_type.as_str();
        if entity_type.is_empty() {
            return invalid("Invalid empty entity type.".to_string());
        }
        if !seen.insert(entity_type) {
            return invalid(format!(
                "Entity type {entity_type} cannot appear more than once in the filter."
            ));
        }
        if !ENTITY_TYPES.contains(&entity_type) {
            return Err((
                ResponseError::UnsupportedVersion,
                format!("Unsupported entity type {entity_type}"),
            ));
        }
        let has_match = component._match.is_some();
        match component.match_type {
            MATCH_TYPE_EXACT if !has_match => {
                return invalid(
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.".into(),
                )
            }
            MATCH_TYPE_DEFAULT if has_match => {
                return invalid(
                    "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."
                        .into(),
                )
            }
            MATCH_TYPE_SPECIFIED if has_match => {
                return invalid(
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."
                        .into(),
                )
            }
            MATCH_TYPE_EXACT | MATCH_TYPE_DEFAULT | MATCH_TYPE_SPECIFIED => {}
            other => {
                return Err((
                    ResponseError::UnsupportedVersion,
                    format!("Unknown match type {other}"),
                ))
            }
        }
    }
    if seen.contains("ip") && (seen.contains("user") || seen.contains("client-id")) {
        return invalid(
            "Invalid entity filter component combination. IP filter component should not be \
             used with user or clientId filter component."
                .to_string(),
        );
    }
    Ok(())
}

pub fn alter(request: &Request, session: &Session) -> Result<Outcome, HandlerError> {
    let body: AlterClientQuotasRequest = decode_body(request)?;
    let (code, message) = match session.cluster_refusal(Operation::AlterConfigs) {
        Some(code) => (code, None),
        None => (
            ResponseError::InvalidRequest.code(),
            Some(StrBytes::from_static_str(QUOTAS_UNSUPPORTED)),
        ),
    };
    let entries = body
        .entries
        .into_iter()
        .map(|entry| {
            let entity = entry
                .entity
                .into_iter()
                .map(|e| {
                    EntityData::default()
                        .with_entity_type(e.entity_type)
                        .with_entity_name(e.entity_name)
                })
                .collect();
            EntryData::default()
                .with_error_code(code)
                .with_error_message(message.clone())
                .with_entity(entity)
        })
        .collect();
    respond(
        request,
        &AlterClientQuotasResponse::default().with_entries(entries),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(entity_type: &str, match_type: i8, name: Option<&str>) -> ComponentData {
        ComponentData::default()
            .with_entity_type(StrBytes::from_string(entity_type.to_string()))
            .with_match_type(match_type)
            .with_match(name.map(|n| StrBytes::from_string(n.to_string())))
    }

    #[test]
    fn the_filters_kafka_configs_sends_are_valid() {
        // `--describe --entity-type users`, `... --entity-name alice`, `... --entity-default`.
        for components in [
            vec![component("user", MATCH_TYPE_SPECIFIED, None)],
            vec![component("user", MATCH_TYPE_EXACT, Some("alice"))],
            vec![component("user", MATCH_TYPE_DEFAULT, None)],
            vec![
                component("user", MATCH_TYPE_EXACT, Some("alice")),
                component("client-id", MATCH_TYPE_SPECIFIED, None),
            ],
            vec![component("ip", MATCH_TYPE_EXACT, Some("10.0.0.1"))],
            vec![],
        ] {
            assert_eq!(validate_filter(&components), Ok(()), "{components:?}");
        }
    }

    #[test]
    fn bad_filters_get_kafkas_errors() {
        use ResponseError::{InvalidRequest, UnsupportedVersion};
        for (components, error) in [
            (
                vec![component("", MATCH_TYPE_SPECIFIED, None)],
                InvalidRequest,
            ),
            (
                vec![
                    component("user", MATCH_TYPE_SPECIFIED, None),
                    component("user", MATCH_TYPE_EXACT, Some("a")),
                ],
                InvalidRequest,
            ),
            (
                vec![component("user", MATCH_TYPE_EXACT, None)],
                InvalidRequest,
            ),
            (
                vec![component("user", MATCH_TYPE_DEFAULT, Some("a"))],
                InvalidRequest,
            ),
            (
                vec![component("user", MATCH_TYPE_SPECIFIED, Some("a"))],
                InvalidRequest,
            ),
            (
                vec![
                    component("ip", MATCH_TYPE_SPECIFIED, None),
                    component("user", MATCH_TYPE_SPECIFIED, None),
                ],
                InvalidRequest,
            ),
            (
                vec![component("group", MATCH_TYPE_SPECIFIED, None)],
                UnsupportedVersion,
            ),
            (vec![component("user", 3, None)], UnsupportedVersion),
        ] {
            let result = validate_filter(&components);
            assert_eq!(result.map_err(|(e, _)| e), Err(error), "{components:?}");
        }
    }
}
