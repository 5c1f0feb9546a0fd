//! IncrementalAlterConfigs (v0-1): SET, DELETE, APPEND and SUBTRACT on single topic configs,
//! through the controller (`admin::configs`).

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use ringbroker_protocol::frame::Request;

use super::alter_configs::unsupported_resource;
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
    let body: IncrementalAlterConfigsRequest = decode_body(request)?;
    let mut responses = Vec::with_capacity(body.resources.len());
    for resource in &body.resources {
        let name = resource.resource_name.as_str();
        let outcome = if let Some(refused) = alter_refusal(session, resource.resource_type, name) {
            refused
        } else if resource.resource_type == RESOURCE_TOPIC {
            let ops: Option<Vec<ConfigOp>> = resource
                .configs
                .iter()
                .map(|c| {
                    Some(ConfigOp {
                        key: c.name.to_string(),
                        value: c.value.as_ref().map(|v| v.to_string()),
                        op: OpType::from_code(c.config_operation)?,
                    })
                })
                .collect();
            match ops {
                Some(ops) => {
                    alter_topic_configs(
                        shard,
                        resource.resource_name.as_str(),
                        &ops,
                        false,
                        body.validate_only,
                    )
                    .await
                }
                None => {
                    AdminOutcome::error(ResponseError::InvalidRequest, "unknown config operation")
                }
            }
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
        &IncrementalAlterConfigsResponse::default().with_responses(responses),
    )
}
