//! DeleteTopics (v1-5: by name): the controller removes the topic from the table everywhere,
//! then the owners delete the partition files.

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use ringbroker_protocol::frame::Request;

use crate::admin;
use crate::security::acl::{Operation, ResourceType, Session};
use crate::server::dispatch::{decode_body, respond, HandlerError, Outcome};
use crate::shard::Shard;

pub async fn handle(
    shard: &Shard,
    request: &Request,
    session: &Session,
) -> Result<Outcome, HandlerError> {
    let body: DeleteTopicsRequest = decode_body(request)?;
    let mut responses = Vec::with_capacity(body.topic_names.len());
    for name in &body.topic_names {
        let outcome = match session.refusal(Operation::Delete, ResourceType::Topic, name.as_str()) {
            Some(error_code) => admin::AdminOutcome::refused(error_code),
            None => admin::delete_topic(shard, name.0.as_str()).await,
        };
        responses.push(
            DeletableTopicResult::default()
                .with_name(Some(name.clone()))
                .with_error_code(outcome.error_code)
                .with_error_message(outcome.message.map(StrBytes::from_string)),
        );
    }
    respond(
        request,
        &DeleteTopicsResponse::default().with_responses(responses),
    )
}
