//! Topic-changing requests from any shard: the shard that read the client's request hands it to
//! shard 0 (over the mesh), whose agent sends it to the active controller and answers once the
//! change has reached every shard of this broker.

use std::rc::Rc;

use kafka_protocol::ResponseError;
use ringbroker_schema::{
    ControllerCall, ControllerCallArgs, ControllerReply, ControllerReplyArgs, Payload,
};

use super::controller::TopicOutcome;
use super::rpc_api::{self, AdminReply, AdminRequest};
use crate::shard::{Shard, CONTROLLER_SHARD};

/// Sends `request` to the active controller and waits until its change is visible here.
pub async fn admin(shard: &Shard, request: AdminRequest) -> AdminReply {
    if shard.id == CONTROLLER_SHARD {
        return match shard.agent() {
            Some(agent) => agent.admin(request).await,
            None => unavailable(&request, "the cluster agent is not running"),
        };
    }
    let payload = request.encode();
    let api = request.api();
    let reply = shard
        .mesh
        .call(CONTROLLER_SHARD, payload.len() + 64, |fbb| {
            let payload = fbb.create_vector(&payload);
            let call = ControllerCall::create(
                fbb,
                &ControllerCallArgs {
                    api,
                    payload: Some(payload),
                },
            );
            (Payload::ControllerCall, call.as_union_value())
        })
        .await;
    let message = match reply {
        Ok(message) => message,
        Err(error) => return unavailable(&request, &error.to_string()),
    };
    let decoded = message
        .envelope()
        .ok()
        .and_then(|e| e.payload_as_controller_reply())
        .and_then(|r| r.payload())
        .map(|p| rpc_api::decode_admin_reply(p.bytes()));
    match decoded {
        Some(Ok(reply)) => reply,
        Some(Err(error)) => unavailable(&request, &error.to_string()),
        None => unavailable(&request, "malformed reply from shard 0"),
    }
}

/// Serves a `ControllerCall` from another shard (on shard 0).
pub async fn serve_remote(
    shard: &Rc<Shard>,
    from: usize,
    correlation: u64,
    call: ControllerCall<'_>,
) {
    let payload = call
        .payload()
        .map(|p| p.bytes().to_vec())
        .unwrap_or_default();
    let reply = match AdminRequest::decode(call.api(), &payload) {
        Ok(request) => admin(shard, request).await,
        Err(error) => AdminReply {
            outcomes: vec![TopicOutcome {
                name: String::new(),
                error_code: ResponseError::InvalidRequest.code(),
                message: Some(error.to_string()),
            }],
            ..AdminReply::default()
        },
    };
    let bytes = rpc_api::encode_admin_reply(&reply);
    shard
        .mesh
        .reply(from, correlation, bytes.len() + 64, |fbb| {
            let payload = fbb.create_vector(&bytes);
            let reply = ControllerReply::create(
                fbb,
                &ControllerReplyArgs {
                    payload: Some(payload),
                },
            );
            (Payload::ControllerReply, reply.as_union_value())
        })
        .await;
}

fn unavailable(request: &AdminRequest, message: &str) -> AdminReply {
    AdminReply::failed(request, ResponseError::NotController.code(), message)
}
