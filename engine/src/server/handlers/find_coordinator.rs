//! FindCoordinator: this single broker coordinates every group (the owning shard is found
//! internally). Transaction coordinators do not exist yet.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use ringbroker_protocol::frame::Request;

use crate::server::dispatch::{decode_body, respond, HandlerError, Outcome};
use crate::shard::Shard;

/// Key type of a consumer group (1 is a transactional id).
const KEY_TYPE_GROUP: i8 = 0;

pub fn handle(shard: &Shard, request: &Request) -> Result<Outcome, HandlerError> {
    let body: FindCoordinatorRequest = decode_body(request)?;
    let config = &shard.config;
    let host = StrBytes::from_string(config.advertised_host.clone());
    let port = i32::from(config.advertised_port);
    let answer = |key_type: i8| -> (i16, Option<StrBytes>) {
        if key_type == KEY_TYPE_GROUP {
            (0, None)
        } else {
            (
                ResponseError::CoordinatorNotAvailable.code(),
                Some(StrBytes::from_static_str(
                    "transactions are not supported yet",
                )),
            )
        }
    };
    let mut response = FindCoordinatorResponse::default();
    if request.version() >= 4 {
        response.coordinators = body
            .coordinator_keys
            .iter()
            .map(|key| {
                let (error_code, error_message) = answer(body.key_type);
                let ok = error_code == 0;
                Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id(BrokerId(if ok { config.node_id } else { -1 }))
                    .with_host(if ok {
                        host.clone()
                    } else {
                        StrBytes::default()
                    })
                    .with_port(if ok { port } else { -1 })
                    .with_error_code(error_code)
                    .with_error_message(error_message)
            })
            .collect();
    } else {
        let (error_code, error_message) = answer(body.key_type);
        let ok = error_code == 0;
        response = response
            .with_error_code(error_code)
            .with_error_message(error_message)
            .with_node_id(BrokerId(if ok { config.node_id } else { -1 }))
            .with_host(if ok { host } else { StrBytes::default() })
            .with_port(if ok { port } else { -1 });
    }
    respond(request, &response)
}
