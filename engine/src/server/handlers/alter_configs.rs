//! AlterConfigs (v0-2): replaces a topic's explicit configs with the given set (configs left out
//! return to their defaults), through the controller (`admin::configs`). Broker configs are static.

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use ringbroker_protocol::frame::Request;

use super::describe_configs::{alter_refusal, RESOURCE_TOPIC};
use crate::admin::configs::{alter_topic_configs, ConfigOp, OpType};
use crate::admin::AdminOutcome;
use crate::security::acl::Session;
use crate::server::dispatch::{decode_body, respond, HandlerError, Outcome};
use crate::shard::Shard;

pub async fn handle(
    shard: &Shard,
    request: &Request,
    session: &Session,
) -> Result<Outcome, HandlerError> {
    let body: AlterConfigsRequest = decode_body(request)?;
    let mut responses = Vec::with_capacity(body.resources.len());
    for resource in &body.resources {
        let name = resource.resource_name.as_str();
        let outcome = if let Some(refused) = alter_refusal(session, resource.resource_type, name) {
            refused
        } else if resource.resource_type == RESOURCE_TOPIC {
            let ops: Vec<ConfigOp> = resource
                .configs
                .iter()
                .map(|c| ConfigOp {
                    key: c.name.to_string(),
                    value: c.value.as_ref().map(|v| v.to_string()),
                    op: OpType::Set,
                })
                .collect();
            alter_topic_configs(
                shard,
                resource.resource_name.as_str(),
                &ops,
                true,
                body.validate_only,
            )
            .await
        } else {
            unsupported_resource(resource.resource_type)
        };
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone())
                .with_error_code(outcome.error_code)
                .with_error_message(outcome.message.map(StrBytes::from_string)),
        );
    }
    respond(
        request,
        &AlterConfigsResponse::default().with_responses(responses),
    )
}

/// The answer for a resource whose configs cannot be changed here (broker settings are static).
pub fn unsupported_resource(resource_type: i8) -> AdminOutcome {
    AdminOutcome::error(
        ResponseError::InvalidRequest,
        format!("configs of resource type {resource_type} cannot be altered on this broker"),
    )
}
