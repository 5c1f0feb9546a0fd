//! Routes a decoded request to the handler of its API (one file per API under `handlers/`) and
//! turns the handler's result into response bytes.

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};
use ringbroker_protocol::frame::{self, Request};
use thiserror::Error;

use super::handlers;
use super::sendfile::FileRange;
use crate::metrics::hooks;
use crate::security::acl::{self, Session};
use crate::security::ClientListener;
use crate::shard::Shard;

/// A piece of a response frame: bytes, or a segment file range sent with `sendfile`.
pub enum Part {
    Bytes(Bytes),
    File(FileRange),
}

impl Part {
    pub fn len(&self) -> usize {
        match self {
            Part::Bytes(b) => b.len(),
            Part::File(range) => range.len as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the connection does with a request's result.
pub enum Outcome {
    /// Write these parts, in order (together one complete response frame).
    Reply(Vec<Part>),
    /// Write nothing (Produce with acks=0).
    NoReply,
    /// Close the connection (after the responses before this one).
    Close,
}

#[derive(Debug, Error)]
pub enum HandlerError {
    #[error("cannot decode {api:?} v{version} body: {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("cannot encode {api:?} v{version} response: {reason}")]
    Encode {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("{0}")]
    Refused(String),
}

/// Decodes the body of `request` as `T`.
pub fn decode_body<T: Decodable>(request: &Request) -> Result<T, HandlerError> {
    let mut body = request.body.clone();
    T::decode(&mut body, request.version()).map_err(|e| HandlerError::Malformed {
        api: request.api_key,
        version: request.version(),
        reason: e.to_string(),
    })
}

/// Encodes `body` as the response to `request`.
pub fn respond<T: Encodable>(request: &Request, body: &T) -> Result<Outcome, HandlerError> {
    let frame = frame::encode_response(
        request.api_key,
        request.version(),
        request.correlation_id(),
        body,
    )
    .map_err(|e| HandlerError::Encode {
        api: request.api_key,
        version: request.version(),
        reason: e.to_string(),
    })?;
    Ok(Outcome::Reply(vec![Part::Bytes(frame.freeze())]))
}

/// Serves one request that came in on `listener` from the client `session` describes (each
/// handler asks it whether the client may do what it asks). Errors close the connection with a
/// log line: Kafka does the same for requests it cannot parse.
pub async fn handle(
    shard: &Shard,
    request: Request,
    peer: &str,
    listener: &ClientListener,
    session: &Session,
) -> Outcome {
    let api = request.api_key;
    let version = request.version();
    if let Some(m) = shard.metrics() {
        m.request(api as i16);
    }
    let result = match api {
        ApiKey::ApiVersions => handlers::api_versions::handle(&request),
        ApiKey::Metadata => handlers::metadata::handle(shard, &request, listener, session).await,
        ApiKey::CreateTopics => handlers::create_topics::handle(shard, &request, session).await,
        ApiKey::DeleteTopics => handlers::delete_topics::handle(shard, &request, session).await,
        ApiKey::CreatePartitions => {
            handlers::create_partitions::handle(shard, &request, session).await
        }
        ApiKey::Produce => handlers::produce::handle(shard, &request, session).await,
        ApiKey::Fetch => handlers::fetch::handle(shard, &request, session).await,
        ApiKey::ListOffsets => handlers::list_offsets::handle(shard, &request, session).await,
        ApiKey::FindCoordinator => {
            handlers::find_coordinator::handle(shard, &request, listener, session).await
        }
        ApiKey::InitProducerId => {
            handlers::init_producer_id::handle(shard, &request, session).await
        }
        ApiKey::AddPartitionsToTxn
        | ApiKey::AddOffsetsToTxn
        | ApiKey::TxnOffsetCommit
        | ApiKey::EndTxn
        | ApiKey::DescribeTransactions
        | ApiKey::ListTransactions => {
            handlers::transactions::handle(shard, &request, session).await
        }
        ApiKey::DescribeConfigs => {
            handlers::describe_configs::handle(shard, &request, session).await
        }
        ApiKey::DescribeCluster => {
            handlers::describe_cluster::handle(shard, &request, listener, session)
        }
        // A SASL exchange runs in the connection before any request gets here (`security`).
        ApiKey::DescribeUserScramCredentials => {
            crate::security::scram_admin::describe(shard, &request, session)
        }
        ApiKey::AlterUserScramCredentials => {
            crate::security::scram_admin::alter(shard, &request, session).await
        }
        ApiKey::DescribeClientQuotas => handlers::client_quotas::describe(&request, session),
        ApiKey::AlterClientQuotas => handlers::client_quotas::alter(&request, session),
        ApiKey::SaslHandshake | ApiKey::SaslAuthenticate => {
            crate::security::sasl::session::refuse_out_of_state(&request)
        }
        ApiKey::CreateAcls => acl::admin::create(shard, session, &request).await,
        ApiKey::DescribeAcls => acl::admin::describe(shard, session, &request),
        ApiKey::DeleteAcls => acl::admin::delete(shard, session, &request).await,
        ApiKey::AlterConfigs => handlers::alter_configs::handle(shard, &request, session).await,
        ApiKey::DeleteRecords => handlers::delete_records::handle(shard, &request, session).await,
        ApiKey::ElectLeaders => handlers::elect_leaders::handle(shard, &request, session).await,
        ApiKey::WriteTxnMarkers => {
            handlers::write_txn_markers::handle(shard, &request, session).await
        }
        ApiKey::OffsetForLeaderEpoch => {
            handlers::offset_for_leader_epoch::handle(shard, &request, session).await
        }
        ApiKey::IncrementalAlterConfigs => {
            handlers::incremental_alter_configs::handle(shard, &request, session).await
        }
        _ => handlers::groups::handle(shard, &request, peer, session).await,
    };
    match result {
        Ok(outcome) => outcome,
        Err(e) => {
            if let Some(m) = shard.metrics() {
                m.error(api as i16, hooks::CLOSED_ERROR_CODE);
            }
            tracing::warn!(%peer, ?api, version, correlation_id = request.correlation_id(), error = %e, "closing connection");
            Outcome::Close
        }
    }
}
