//! Consumer-group APIs. Each group is coordinated by the shard owning its `__consumer_offsets`
//! partition (Kafka's placement); a request arriving elsewhere is forwarded there as its raw
//! Kafka body and the encoded response body comes back (schema `GroupRequest`/`GroupResult`).
//! APIs spanning groups (ListGroups, DescribeGroups, ConsumerGroupDescribe, DeleteGroups) ask each
//! group's shard.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use ringbroker_protocol::frame::Request;
use ringbroker_schema::{
    GroupRequest as MeshGroupRequest, GroupRequestArgs, GroupResult, GroupResultArgs, Payload,
};

use super::groups_authorization as authorization;
use super::not_coordinator;
use crate::groups::{offsets_partition_for, ClientInfo, OFFSETS_TOPIC_PARTITIONS};
use crate::metadata::owner_shard;
use crate::security::acl::{Operation, ResourceType, Session};
use crate::server::dispatch::{decode_body, respond, HandlerError, Outcome, Part};
use crate::shard::Shard;

/// First OffsetFetch version asking for a batch of groups (`groups`, not `group_id`).
const OFFSET_FETCH_GROUPS_VERSION: i16 = 8;

/// Name of the committed-offsets topic (Kafka's).
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The shard coordinating `group_id`.
pub fn coordinator_shard(group_id: &str, shard_count: usize) -> usize {
    owner_shard(
        OFFSETS_TOPIC,
        offsets_partition_for(group_id, OFFSETS_TOPIC_PARTITIONS),
        shard_count,
    )
}

pub async fn handle(
    shard: &Shard,
    request: &Request,
    peer: &str,
    session: &Session,
) -> Result<Outcome, HandlerError> {
    let version = request.version();
    let client = ClientInfo {
        client_id: request
            .header
            .client_id
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default(),
        client_host: peer_host(peer),
    };
    let group = single_group_of(request.api_key, version, request.body.clone())?;
    if let Some(group) = group {
        return single_group(shard, request, &group, &client, session).await;
    }
    match request.api_key {
        ApiKey::ListGroups => list_groups(shard, request, session).await,
        ApiKey::DescribeGroups => describe_groups(shard, request, session).await,
        ApiKey::DeleteGroups => delete_groups(shard, request, session).await,
        ApiKey::ConsumerGroupDescribe => consumer_group_describe(shard, request, session).await,
        ApiKey::OffsetFetch => offset_fetch_groups(shard, request, session).await,
        other => Err(HandlerError::Refused(format!("{other:?} is not served"))),
    }
}

/// The group of a request that names exactly one (the APIs its coordinator alone serves);
/// `None` for the APIs spanning groups.
fn single_group_of(api: ApiKey, version: i16, body: Bytes) -> Result<Option<String>, HandlerError> {
    fn group<T: Decodable>(
        api: ApiKey,
        version: i16,
        body: Bytes,
        id: impl FnOnce(T) -> StrBytes,
    ) -> Result<Option<String>, HandlerError> {
        Ok(Some(id(decode::<T>(api, version, body)?).to_string()))
    }
    match api {
        ApiKey::JoinGroup => group(api, version, body, |r: JoinGroupRequest| r.group_id.0),
        ApiKey::SyncGroup => group(api, version, body, |r: SyncGroupRequest| r.group_id.0),
        ApiKey::Heartbeat => group(api, version, body, |r: HeartbeatRequest| r.group_id.0),
        ApiKey::LeaveGroup => group(api, version, body, |r: LeaveGroupRequest| r.group_id.0),
        ApiKey::OffsetCommit => group(api, version, body, |r: OffsetCommitRequest| r.group_id.0),
        // v8+ carries a batch of groups, each coordinated by its own shard.
        ApiKey::OffsetFetch if version < OFFSET_FETCH_GROUPS_VERSION => {
            group(api, version, body, |r: OffsetFetchRequest| r.group_id.0)
        }
        ApiKey::OffsetDelete => group(api, version, body, |r: OffsetDeleteRequest| r.group_id.0),
        ApiKey::ConsumerGroupHeartbeat => {
            group(api, version, body, |r: ConsumerGroupHeartbeatRequest| {
                r.group_id.0
            })
        }
        _ => Ok(None),
    }
}

/// Serves a request about one group on its coordinator shard, once the client may.
async fn single_group(
    shard: &Shard,
    request: &Request,
    group: &str,
    client: &ClientInfo,
    session: &Session,
) -> Result<Outcome, HandlerError> {
    let version = request.version();
    let operation = authorization::group_operation(request.api_key);
    if let Some(code) = session.refusal(operation, ResourceType::Group, group) {
        let body =
            not_coordinator::error_body(request.api_key, version, request.body.clone(), code)?;
        return Ok(Outcome::Reply(frame_body(request, body)?));
    }
    if !not_coordinator::coordinates(shard, group) {
        let body = not_coordinator::response_body(request.api_key, version, request.body.clone())?;
        return Ok(Outcome::Reply(frame_body(request, body)?));
    }
    let owner = coordinator_shard(group, shard.count);
    let api = request.api_key;
    let split = match api {
        ApiKey::OffsetCommit => authorization::split_commit(session, version, &request.body)?,
        _ => None,
    };
    let (asked, denied) = match split {
        Some(split) => (split.allowed, split.denied),
        None => (request.body.clone(), Vec::new()),
    };
    let mut body = route(shard, owner, api, version, asked, client).await?;
    if !denied.is_empty() {
        body = authorization::join_commit(version, body, denied)?;
    }
    if api == ApiKey::OffsetFetch {
        body = authorization::visible_offsets(session, version, &request.body, body)?;
    }
    Ok(Outcome::Reply(frame_body(request, body)?))
}

/// Kafka reports a member's host as "/<ip>" (Java's InetAddress form).
fn peer_host(peer: &str) -> String {
    let ip = peer
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    format!("/{ip}")
}

/// Puts the response header in front of an encoded body.
pub(super) fn frame_body(request: &Request, body: Bytes) -> Result<Vec<Part>, HandlerError> {
    let header_version = request.api_key.response_header_version(request.version());
    let header = ResponseHeader::default().with_correlation_id(request.correlation_id());
    let mut head = BytesMut::new();
    let size = header
        .compute_size(header_version)
        .map_err(|e| encode_error(request, e))?
        + body.len();
    head.extend_from_slice(&(size as i32).to_be_bytes());
    header
        .encode(&mut head, header_version)
        .map_err(|e| encode_error(request, e))?;
    Ok(vec![Part::Bytes(head.freeze()), Part::Bytes(body)])
}

fn encode_error(request: &Request, e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Encode {
        api: request.api_key,
        version: request.version(),
        reason: e.to_string(),
    }
}

fn malformed(api: ApiKey, version: i16, e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Malformed {
        api,
        version,
        reason: e.to_string(),
    }
}

pub(super) fn encode<T: Encodable>(
    api: ApiKey,
    version: i16,
    body: &T,
) -> Result<Bytes, HandlerError> {
    let mut out = BytesMut::new();
    body.encode(&mut out, version)
        .map_err(|e| HandlerError::Encode {
            api,
            version,
            reason: e.to_string(),
        })?;
    Ok(out.freeze())
}

pub(super) fn decode<T: Decodable>(
    api: ApiKey,
    version: i16,
    mut body: Bytes,
) -> Result<T, HandlerError> {
    T::decode(&mut body, version).map_err(|e| malformed(api, version, e))
}

/// Runs a single-group request on this shard's coordinator; returns the encoded response body.
async fn serve_local(
    shard: &Shard,
    api_key: i16,
    version: i16,
    body: Bytes,
    client: &ClientInfo,
) -> Result<Bytes, HandlerError> {
    let api = ApiKey::try_from(api_key)
        .map_err(|()| HandlerError::Refused(format!("unknown api key {api_key}")))?;
    // Transaction requests share this mesh path to their coordinator shard.
    if super::transactions::is_transaction_api(api) || api == ApiKey::ListTransactions {
        return super::transactions::serve_local(shard, api, version, body).await;
    }
    // The receiving shard saw this broker named leader of the group's offsets partition; the
    // coordinator takes the group's requests only once it has loaded the partition as leader.
    if let Some(group) = single_group_of(api, version, body.clone())? {
        if !not_coordinator::loaded_here(shard, &group) {
            return not_coordinator::response_body(api, version, body);
        }
    }
    let groups = &shard.groups;
    match api {
        ApiKey::JoinGroup => {
            let response = groups
                .join_group_from(decode(api, version, body)?, version, client)
                .await;
            encode(api, version, &response)
        }
        ApiKey::SyncGroup => {
            let response = groups
                .sync_group(decode(api, version, body)?, version)
                .await;
            encode(api, version, &response)
        }
        ApiKey::Heartbeat => {
            let response = groups.heartbeat(decode(api, version, body)?, version).await;
            encode(api, version, &response)
        }
        ApiKey::LeaveGroup => {
            let response = groups
                .leave_group(decode(api, version, body)?, version)
                .await;
            encode(api, version, &response)
        }
        ApiKey::OffsetCommit => {
            let response = groups
                .offset_commit(decode(api, version, body)?, version)
                .await;
            encode(api, version, &response)
        }
        ApiKey::OffsetFetch => {
            let response = groups
                .offset_fetch(decode(api, version, body)?, version)
                .await;
            encode(api, version, &response)
        }
        ApiKey::OffsetDelete => {
            let response = groups.offset_delete(decode(api, version, body)?).await;
            encode(api, version, &response)
        }
        ApiKey::ConsumerGroupHeartbeat => {
            // The topic table is the same on every shard (subscriptions resolve against it here).
            let topics = shard.topic_table();
            let response = groups
                .consumer_group_heartbeat(decode(api, version, body)?, version, client, &topics)
                .await;
            encode(api, version, &response)
        }
        ApiKey::ConsumerGroupDescribe => {
            let request: ConsumerGroupDescribeRequest = decode(api, version, body)?;
            let topics = shard.topic_table();
            let described = request
                .group_ids
                .iter()
                .map(|g| groups.consumer_group_describe(g.0.as_str(), &topics))
                .collect();
            encode(
                api,
                version,
                &ConsumerGroupDescribeResponse::default().with_groups(described),
            )
        }
        ApiKey::ListGroups => {
            let request: ListGroupsRequest = decode(api, version, body)?;
            let filter: Vec<String> = request
                .states_filter
                .iter()
                .map(|s| s.to_string())
                .collect();
            // Only the groups this broker coordinates: a broker that just stopped leading an
            // offsets partition may still hold a group a write in flight brought back.
            let mut listed = groups.list_groups(&filter);
            listed.retain(|g| {
                let id = g.group_id.0.as_str();
                not_coordinator::coordinates(shard, id) && not_coordinator::loaded_here(shard, id)
            });
            let response = ListGroupsResponse::default().with_groups(listed);
            encode(api, version, &response)
        }
        ApiKey::DescribeGroups => {
            let request: DescribeGroupsRequest = decode(api, version, body)?;
            let described: Vec<DescribedGroup> = request
                .groups
                .iter()
                .map(|g| groups.describe_group(g.0.as_str()))
                .collect();
            encode(
                api,
                version,
                &DescribeGroupsResponse::default().with_groups(described),
            )
        }
        ApiKey::DeleteGroups => {
            let request: DeleteGroupsRequest = decode(api, version, body)?;
            let mut results = Vec::with_capacity(request.groups_names.len());
            for name in &request.groups_names {
                let code = groups.delete_group(name.0.as_str()).await;
                results.push(
                    DeletableGroupResult::default()
                        .with_group_id(name.clone())
                        .with_error_code(code),
                );
            }
            encode(
                api,
                version,
                &DeleteGroupsResponse::default().with_results(results),
            )
        }
        other => Err(HandlerError::Refused(format!(
            "{other:?} is not a group api"
        ))),
    }
}

/// Runs a single-group request body on the shard `owner` (in place when that is this shard).
async fn route(
    shard: &Shard,
    owner: usize,
    api: ApiKey,
    version: i16,
    body: Bytes,
    client: &ClientInfo,
) -> Result<Bytes, HandlerError> {
    if owner == shard.id {
        serve_local(shard, api as i16, version, body, client).await
    } else {
        forward(shard, owner, api as i16, version, &body, client).await
    }
}

/// Runs a request body on the shard `owner` with no client information (transactions).
pub(super) async fn route_to(
    shard: &Shard,
    owner: usize,
    api: ApiKey,
    version: i16,
    body: Bytes,
) -> Result<Bytes, HandlerError> {
    route(shard, owner, api, version, body, &ClientInfo::default()).await
}

/// Sends a group request body to `owner` and returns its encoded response body.
async fn forward(
    shard: &Shard,
    owner: usize,
    api_key: i16,
    version: i16,
    body: &[u8],
    client: &ClientInfo,
) -> Result<Bytes, HandlerError> {
    let reply = shard
        .mesh
        .call(owner, body.len() + 64, |fbb| {
            let body = fbb.create_vector(body);
            let client_id = fbb.create_string(&client.client_id);
            let client_host = fbb.create_string(&client.client_host);
            let request = MeshGroupRequest::create(
                fbb,
                &GroupRequestArgs {
                    api_key,
                    api_version: version,
                    body: Some(body),
                    client_id: Some(client_id),
                    client_host: Some(client_host),
                },
            );
            (Payload::GroupRequest, request.as_union_value())
        })
        .await
        .map_err(|e| HandlerError::Refused(e.to_string()))?;
    let envelope = reply
        .envelope()
        .map_err(|e| HandlerError::Refused(e.to_string()))?;
    let result = envelope
        .payload_as_group_result()
        .ok_or_else(|| HandlerError::Refused("coordinator shard sent no group result".into()))?;
    match result.body() {
        Some(body) => Ok(Bytes::copy_from_slice(body.bytes())),
        None => Err(HandlerError::Refused(
            "coordinator shard could not serve the request".into(),
        )),
    }
}

/// Serves a forwarded group request (this shard coordinates the group).
pub async fn serve_remote(
    shard: &Shard,
    from: usize,
    correlation: u64,
    request: MeshGroupRequest<'_>,
) {
    let body = Bytes::copy_from_slice(request.body().map(|b| b.bytes()).unwrap_or_default());
    let client = ClientInfo {
        client_id: request.client_id().unwrap_or_default().to_string(),
        client_host: request.client_host().unwrap_or_default().to_string(),
    };
    let result = serve_local(
        shard,
        request.api_key(),
        request.api_version(),
        body,
        &client,
    )
    .await;
    if let Err(e) = &result {
        tracing::warn!(from, error = %e, "forwarded group request failed");
    }
    let body = result.ok();
    shard
        .mesh
        .reply(
            from,
            correlation,
            body.as_ref().map_or(0, Bytes::len) + 64,
            |fbb| {
                let body = body.as_ref().map(|b| fbb.create_vector(b));
                let reply = GroupResult::create(fbb, &GroupResultArgs { body });
                (Payload::GroupResult, reply.as_union_value())
            },
        )
        .await;
}

/// Runs `api` with `body` on every shard and returns the decoded responses (ours first).
async fn on_all_shards<T: Decodable>(
    shard: &Shard,
    api: ApiKey,
    version: i16,
    body: Bytes,
) -> Result<Vec<T>, HandlerError> {
    let mut out = Vec::with_capacity(shard.count);
    let client = ClientInfo::default();
    let local = serve_local(shard, api as i16, version, body.clone(), &client).await?;
    out.push(decode(api, version, local)?);
    for peer in (0..shard.count).filter(|p| *p != shard.id) {
        let remote = forward(shard, peer, api as i16, version, &body, &client).await?;
        out.push(decode(api, version, remote)?);
    }
    Ok(out)
}

async fn list_groups(
    shard: &Shard,
    request: &Request,
    session: &Session,
) -> Result<Outcome, HandlerError> {
    let responses: Vec<ListGroupsResponse> = on_all_shards(
        shard,
        ApiKey::ListGroups,
        request.version(),
        request.body.clone(),
    )
    .await?;
    let mut groups: Vec<ListedGroup> = responses.into_iter().flat_map(|r| r.groups).collect();
    authorization::visible_groups(session, &mut groups);
    respond(request, &ListGroupsResponse::default().with_groups(groups))
}

/// Asks each group's coordinator shard about that group alone: `singles` pairs each group with the request
/// holding only it (at the request's version). Returns the decoded answers in that order.
/// Groups the client may not act on are not asked: `refused` makes their GROUP_AUTHORIZATION_FAILED
/// answer (in the API's shape, in the same order).
async fn per_group<T: Encodable, R: Decodable>(
    shard: &Shard,
    request: &Request,
    singles: Vec<(String, T)>,
    authorized: (&Session, Operation),
    refused: impl Fn(&str, i16) -> R,
) -> Result<Vec<R>, HandlerError> {
    let (api, version) = (request.api_key, request.version());
    let (session, operation) = authorized;
    let mut answers = Vec::with_capacity(singles.len());
    for (group, single) in singles {
        if let Some(code) = session.refusal(operation, ResourceType::Group, &group) {
            answers.push(refused(&group, code));
            continue;
        }
        let owner = coordinator_shard(&group, shard.count);
        let encoded = encode(api, version, &single)?;
        let response = route(shard, owner, api, version, encoded, &ClientInfo::default()).await?;
        answers.push(decode(api, version, response)?);
    }
    Ok(answers)
}

async fn describe_groups(
    shard: &Shard,
    request: &Request,
    session: &Session,
) -> Result<Outcome, HandlerError> {
    let body: DescribeGroupsRequest = decode_body(request)?;
    let singles = body
        .groups
        .iter()
        .map(|g| (g.0.to_string(), body.clone().with_groups(vec![g.clone()])))
        .collect();
    let refused = |group: &str, code| {
        DescribeGroupsResponse::default().with_groups(vec![DescribedGroup::default()
            .with_group_id(GroupId(group.to_string().into()))
            .with_error_code(code)])
    };
    let authorized = (session, Operation::Describe);
    let answers: Vec<DescribeGroupsResponse> =
        per_group(shard, request, singles, authorized, refused).await?;
    let mut described: Vec<DescribedGroup> = answers.into_iter().flat_map(|a| a.groups).collect();
    if body.include_authorized_operations {
        for group in described.iter_mut().filter(|g| g.error_code == 0) {
            group.authorized_operations =
                session.authorized_operations(ResourceType::Group, group.group_id.as_str());
        }
    }
    respond(
        request,
        &DescribeGroupsResponse::default().with_groups(described),
    )
}

async fn consumer_group_describe(
    shard: &Shard,
    request: &Request,
    session: &Session,
) -> Result<Outcome, HandlerError> {
    let body: ConsumerGroupDescribeRequest = decode_body(request)?;
    let singles = body
        .group_ids
        .iter()
        .map(|g| {
            (
                g.0.to_string(),
                body.clone().with_group_ids(vec![g.clone()]),
            )
        })
        .collect();
    let refused = |group: &str, code| {
        ConsumerGroupDescribeResponse::default().with_groups(vec![
            consumer_group_describe_response::DescribedGroup::default()
                .with_group_id(GroupId(group.to_string().into()))
                .with_error_code(code),
        ])
    };
    let authorized = (session, Operation::Describe);
    let answers: Vec<ConsumerGroupDescribeResponse> =
        per_group(shard, request, singles, authorized, refused).await?;
    let mut described: Vec<_> = answers.into_iter().flat_map(|a| a.groups).collect();
    if body.include_authorized_operations {
        for group in described.iter_mut().filter(|g| g.error_code == 0) {
            group.authorized_operations =
                session.authorized_operations(ResourceType::Group, group.group_id.as_str());
        }
    }
    respond(
        request,
        &ConsumerGroupDescribeResponse::default().with_groups(described),
    )
}

/// OffsetFetch v8+: each group of the batch is asked of the shard coordinating it.
async fn offset_fetch_groups(
    shard: &Shard,
    request: &Request,
    session: &Session,
) -> Result<Outcome, HandlerError> {
    let body: OffsetFetchRequest = decode_body(request)?;
    let singles = body
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.0.to_string(),
                body.clone().with_groups(vec![g.clone()]),
            )
        })
        .collect();
    let refused = |group: &str, code| {
        OffsetFetchResponse::default().with_groups(vec![
            offset_fetch_response::OffsetFetchResponseGroup::default()
                .with_group_id(GroupId(group.to_string().into()))
                .with_error_code(code),
        ])
    };
    let authorized = (session, Operation::Describe);
    let answers: Vec<OffsetFetchResponse> =
        per_group(shard, request, singles, authorized, refused).await?;
    let fetched = answers.into_iter().flat_map(|a| a.groups).collect();
    respond(
        request,
        &OffsetFetchResponse::default().with_groups(fetched),
    )
}

async fn delete_groups(
    shard: &Shard,
    request: &Request,
    session: &Session,
) -> Result<Outcome, HandlerError> {
    let body: DeleteGroupsRequest = decode_body(request)?;
    let singles = body
        .groups_names
        .iter()
        .map(|g| {
            (
                g.0.to_string(),
                body.clone().with_groups_names(vec![g.clone()]),
            )
        })
        .collect();
    let refused = |group: &str, code| {
        DeleteGroupsResponse::default().with_results(vec![DeletableGroupResult::default()
            .with_group_id(GroupId(group.to_string().into()))
            .with_error_code(code)])
    };
    let authorized = (session, Operation::Delete);
    let answers: Vec<DeleteGroupsResponse> =
        per_group(shard, request, singles, authorized, refused).await?;
    let results = answers.into_iter().flat_map(|a| a.results).collect();
    respond(
        request,
        &DeleteGroupsResponse::default().with_results(results),
    )
}
