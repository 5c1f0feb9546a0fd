//! DescribeUserScramCredentials and AlterUserScramCredentials, what `kafka-configs --entity-type
//! users` and the AdminClient send, with Kafka's checks and error codes: a user asked for twice is
//! DUPLICATE_RESOURCE, an unknown one RESOURCE_NOT_FOUND, an unknown mechanism
//! UNSUPPORTED_SASL_MECHANISM, an empty name, empty salt or an iteration count outside
//! 4096..=16384 UNACCEPTABLE_CREDENTIAL. Each user's changes apply all together or not at all.
//!
//! Describing reads this broker's copy of the cluster's credentials (`sasl::registry`, installed
//! from the metadata image). Changes go, once checked, to the active controller, which commits
//! them to the metadata log (`cluster::scram_control`); the answer comes once this broker has
//! applied them, and every broker authenticates with them as soon as it follows the log. With
//! the ACL authorizer, describing needs Describe on the cluster and changing Alter; with none,
//! any client may make them (as Kafka without one).

use std::collections::HashSet;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use ringbroker_protocol::frame::Request;

use super::sasl::credentials::{
    CredentialStore, ScramCredential, ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS,
};
use crate::cluster::forward;
use crate::cluster::records::UserScramCredential;
use crate::cluster::rpc_api::{AdminReply, AdminRequest, ScramChanges};
use crate::security::acl::{Operation, Session};
use crate::server::dispatch::{decode_body, respond, HandlerError, Outcome};
use crate::shard::Shard;

pub fn describe(
    shard: &Shard,
    request: &Request,
    session: &Session,
) -> Result<Outcome, HandlerError> {
    let body: DescribeUserScramCredentialsRequest = decode_body(request)?;
    // Kafka: Describe on the cluster.
    if let Some(code) = session.cluster_refusal(Operation::Describe) {
        return respond(
            request,
            &DescribeUserScramCredentialsResponse::default().with_error_code(code),
        );
    }
    let store = shard.config.security.credentials.read();
    let mut known: Vec<&str> = store.entries().map(|(user, _, _)| user).collect();
    known.sort_unstable();
    known.dedup();
    let asked: Vec<String> = match &body.users {
        Some(users) if !users.is_empty() => users.iter().map(|u| u.name.to_string()).collect(),
        _ => known.iter().map(|u| u.to_string()).collect(),
    };
    let mut seen = HashSet::new();
    let duplicates: HashSet<&str> = asked
        .iter()
        .filter(|u| !seen.insert(u.as_str()))
        .map(String::as_str)
        .collect();
    let mut results = Vec::new();
    let mut reported = HashSet::new();
    for user in &asked {
        if !reported.insert(user.as_str()) {
            continue;
        }
        let result = DescribeUserScramCredentialsResult::default()
            .with_user(StrBytes::from_string(user.clone()));
        let infos: Vec<CredentialInfo> = ScramMechanism::ALL
            .into_iter()
            .filter_map(|m| {
                store.get(user, m).map(|c| {
                    CredentialInfo::default()
                        .with_mechanism(m.kafka_type())
                        .with_iterations(c.iterations as i32)
                })
            })
            .collect();
        let result = if duplicates.contains(user.as_str()) {
            result
                .with_error_code(ResponseError::DuplicateResource.code())
                .with_error_message(Some(StrBytes::from_string(format!(
                    "Cannot describe SCRAM credentials for the same user twice in a single request: {user}"
                ))))
        } else if infos.is_empty() {
            result
                .with_error_code(ResponseError::ResourceNotFound.code())
                .with_error_message(Some(StrBytes::from_string(format!(
                    "Attempt to describe a user credential that does not exist: {user}"
                ))))
        } else {
            result.with_credential_infos(infos)
        };
        results.push(result);
    }
    drop(store);
    respond(
        request,
        &DescribeUserScramCredentialsResponse::default().with_results(results),
    )
}

/// One requested change.
enum Change {
    Delete(String, ScramMechanism),
    Upsert(UserScramCredential),
}

/// Why a change is refused: Kafka's error and its message.
type Refusal = (ResponseError, String);

/// One requested change, checked.
struct Checked {
    user: String,
    change: Result<Change, Refusal>,
    /// (user, mechanism type) it touches, for the duplicate check.
    key: (String, i8),
}

pub async fn alter(
    shard: &Shard,
    request: &Request,
    session: &Session,
) -> Result<Outcome, HandlerError> {
    let body: AlterUserScramCredentialsRequest = decode_body(request)?;
    // Kafka: Alter on the cluster, or every user's change fails with CLUSTER_AUTHORIZATION_FAILED.
    let allowed = session.authorize_cluster(Operation::Alter);
    let checked = check_changes(&body, allowed, &shard.config.security.credentials.read());
    let mut results = Vec::new();
    let mut changes = ScramChanges::default();
    for (user, outcome) in per_user(checked) {
        match outcome {
            Err((code, message)) => results.push(result(&user, code.code(), Some(message))),
            Ok(mine) => {
                for change in mine {
                    match change {
                        Change::Delete(user, mechanism) => {
                            changes.deletions.push((user, mechanism))
                        }
                        Change::Upsert(credential) => changes.upsertions.push(credential),
                    }
                }
            }
        }
    }
    // The users with valid changes go to the active controller, which commits them to the
    // metadata log; answered once this broker has applied them.
    let users = changes.users();
    let reply = if users.is_empty() {
        AdminReply::default()
    } else {
        forward::admin(shard, AdminRequest::AlterScramCredentials(changes)).await
    };
    for user in users {
        let outcome = reply.outcomes.iter().find(|o| o.name == user);
        results.push(match outcome {
            Some(o) if o.error_code == 0 => {
                tracing::info!(user = %user, principal = %session.principal(), "SCRAM credentials changed");
                result(&user, 0, None)
            }
            Some(o) => {
                tracing::warn!(user = %user, error_code = o.error_code, message = ?o.message, "SCRAM credentials not changed");
                result(&user, o.error_code, o.message.clone())
            }
            None => result(
                &user,
                ResponseError::UnknownServerError.code(),
                Some("the controller did not answer for this user".to_string()),
            ),
        });
    }
    respond(
        request,
        &AlterUserScramCredentialsResponse::default().with_results(results),
    )
}

/// Kafka's checks of each deletion and upsertion (a deletion of a credential this broker does not
/// know is RESOURCE_NOT_FOUND; the controller checks that again on its image).
fn check_changes(
    body: &AlterUserScramCredentialsRequest,
    allowed: bool,
    store: &CredentialStore,
) -> Vec<Checked> {
    let check_user = |user: &str| {
        if allowed {
            check_user(user)
        } else {
            Err((
                ResponseError::ClusterAuthorizationFailed,
                "not authorized to alter SCRAM credentials".to_string(),
            ))
        }
    };
    let mut checked: Vec<Checked> = Vec::new();
    for deletion in &body.deletions {
        let user = deletion.name.to_string();
        let change = check_user(&user).and_then(|()| {
            let mechanism =
                ScramMechanism::of_kafka_type(deletion.mechanism).ok_or_else(unknown_mechanism)?;
            if store.get(&user, mechanism).is_none() {
                return Err((
                    ResponseError::ResourceNotFound,
                    "Attempt to delete a user credential that does not exist".to_string(),
                ));
            }
            Ok(Change::Delete(user.clone(), mechanism))
        });
        checked.push(Checked {
            key: (user.clone(), deletion.mechanism),
            user,
            change,
        });
    }
    for upsertion in &body.upsertions {
        let user = upsertion.name.to_string();
        let change = check_user(&user).and_then(|()| {
            let mechanism =
                ScramMechanism::of_kafka_type(upsertion.mechanism).ok_or_else(unknown_mechanism)?;
            let unacceptable = |m: &str| (ResponseError::UnacceptableCredential, m.to_string());
            if upsertion.iterations < MIN_ITERATIONS as i32 {
                return Err(unacceptable("Too few iterations"));
            }
            if upsertion.iterations > MAX_ITERATIONS as i32 {
                return Err(unacceptable("Too many iterations"));
            }
            if upsertion.salt.is_empty() || upsertion.salted_password.is_empty() {
                return Err(unacceptable("Salt and salted password must not be empty"));
            }
            Ok(Change::Upsert(UserScramCredential {
                user: user.clone(),
                mechanism,
                credential: ScramCredential::from_salted_password(
                    mechanism,
                    &upsertion.salted_password,
                    &upsertion.salt,
                    upsertion.iterations as u32,
                ),
            }))
        });
        checked.push(Checked {
            key: (user.clone(), upsertion.mechanism),
            user,
            change,
        });
    }
    checked
}

/// Users in request order, each once, with all their changes, or the first error among them (a
/// user with any bad change gets that error and no change; one named twice for the same
/// mechanism DUPLICATE_RESOURCE).
fn per_user(checked: Vec<Checked>) -> Vec<(String, Result<Vec<Change>, Refusal>)> {
    let mut seen = HashSet::new();
    let duplicated: HashSet<(String, i8)> = checked
        .iter()
        .filter(|c| !seen.insert(c.key.clone()))
        .map(|c| c.key.clone())
        .collect();
    let mut grouped: Vec<(String, Vec<Checked>)> = Vec::new();
    for c in checked {
        match grouped.iter_mut().find(|(user, _)| *user == c.user) {
            Some((_, mine)) => mine.push(c),
            None => grouped.push((c.user.clone(), vec![c])),
        }
    }
    grouped
        .into_iter()
        .map(|(user, mine)| {
            let outcome = if mine.iter().any(|c| duplicated.contains(&c.key)) {
                Err((
                    ResponseError::DuplicateResource,
                    "A user credential cannot be altered twice in the same request".to_string(),
                ))
            } else {
                mine.into_iter().map(|c| c.change).collect()
            };
            (user, outcome)
        })
        .collect()
}

fn result(user: &str, error_code: i16, message: Option<String>) -> AlterUserScramCredentialsResult {
    AlterUserScramCredentialsResult::default()
        .with_user(StrBytes::from_string(user.to_string()))
        .with_error_code(error_code)
        .with_error_message(message.map(StrBytes::from_string))
}

fn check_user(user: &str) -> Result<(), (ResponseError, String)> {
    if user.is_empty() {
        return Err((
            ResponseError::UnacceptableCredential,
            "Username must not be empty".to_string(),
        ));
    }
    Ok(())
}

fn unknown_mechanism() -> (ResponseError, String) {
    (
        ResponseError::UnsupportedSaslMechanism,
        "Unknown SCRAM mechanism".to_string(),
    )
}
