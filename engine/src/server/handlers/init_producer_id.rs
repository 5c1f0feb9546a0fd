//! InitProducerId (v0-4) for idempotent producers: a fresh producer id with epoch 0 from this
//! shard's allocator (`producer_state::ids`). Like Kafka, a request without a transactional id
//! always gets a new id, also when it carries its current id and epoch (KIP-360, v3+): the Java
//! client bumps an idempotent producer's epoch itself and only asks for a new id when the epoch
//! is exhausted. A request with a transactional id goes to its transaction coordinator
//! (`handlers::transactions`).

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;
use ringbroker_protocol::frame::Request;

use crate::security::acl::types::CLUSTER_NAME;
use crate::security::acl::{Operation, ResourceType, Session};
use crate::server::dispatch::{decode_body, respond, HandlerError, Outcome};
use crate::shard::Shard;

pub async fn handle(
    shard: &Shard,
    request: &Request,
    session: &Session,
) -> Result<Outcome, HandlerError> {
    let body: InitProducerIdRequest = decode_body(request)?;
    let answer = match &body.transactional_id {
        Some(id) if id.0.is_empty() => Err(ResponseError::InvalidRequest),
        Some(_) => return super::transactions::handle(shard, request, session).await,
        // Kafka: an idempotent producer needs IdempotentWrite on the cluster, or Write on a topic.
        None if !may_write_idempotently(session) => Err(ResponseError::ClusterAuthorizationFailed),
        None => shard.producers.allocate_producer_id().await.map_err(|e| {
            tracing::warn!(shard = shard.id, error = %e, "cannot allocate a producer id");
            ResponseError::UnknownServerError
        }),
    };
    let response = match answer {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(error) => InitProducerIdResponse::default()
            .with_error_code(error.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    };
    respond(request, &response)
}

/// IdempotentWrite on the cluster, or Write on any topic (Kafka's KIP-679 rule: a producer that
/// may write somewhere may get a producer id). The topic check is unaudited: it is a search.
fn may_write_idempotently(session: &Session) -> bool {
    if !session.enforcing()
        || session.allows(
            Operation::IdempotentWrite,
            ResourceType::Cluster,
            CLUSTER_NAME,
        )
    {
        return true;
    }
    session.allows_some(Operation::Write, ResourceType::Topic)
        || session.authorize_cluster(Operation::IdempotentWrite)
}
