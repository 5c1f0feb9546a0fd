//! The active controller's decisions on SCRAM credentials, as Kafka's `ScramControlManager`:
//! AlterUserScramCredentials becomes one `UserScramCredential` record per upsertion and one
//! `RemoveUserScramCredential` per deletion. The broker that received the request already made
//! Kafka's checks (mechanism, iterations, duplicates, a deletion of an unknown credential against
//! its own copy); here a user's changes are checked once more against the image the decision is
//! made on, and apply all together or not at all. A broker's start-up credentials (`--add-scram`,
//! an earlier credentials file) come with `only_if_absent`: they add what the cluster lacks and
//! never replace a credential someone set since.

use kafka_protocol::ResponseError;

use super::controller::{Decision, TopicOutcome};
use super::image::MetadataImage;
use super::records::MetadataRecord;
use super::rpc_api::ScramChanges;

/// Most SCRAM credentials (user and mechanism pairs) the cluster holds: each is a record in
/// every snapshot and a copy on every broker; far above any real deployment's users.
pub const MAX_SCRAM_CREDENTIALS: usize = 100_000;

/// One outcome per user (`ScramChanges::users`), and the records of the users whose changes
/// all hold.
pub fn alter_scram_credentials(image: &MetadataImage, changes: &ScramChanges) -> Decision {
    let store = &image.scram_credentials;
    let mut decision = Decision::default();
    let mut added = 0usize;
    for user in changes.users() {
        let deletions: Vec<_> = changes
            .deletions
            .iter()
            .filter(|(name, _)| *name == user)
            .collect();
        if deletions
            .iter()
            .any(|(name, mechanism)| store.get(name, *mechanism).is_none())
        {
            decision.outcomes.push(TopicOutcome::error(
                &user,
                ResponseError::ResourceNotFound,
                "Attempt to delete a user credential that does not exist",
            ));
            continue;
        }
        let upsertions: Vec<_> = changes
            .upsertions
            .iter()
            .filter(|c| c.user == user)
            .filter(|c| !changes.only_if_absent || store.get(&c.user, c.mechanism).is_none())
            .collect();
        let new = upsertions
            .iter()
            .filter(|c| store.get(&c.user, c.mechanism).is_none())
            .count();
        if store.len() + added + new > MAX_SCRAM_CREDENTIALS {
            decision.outcomes.push(TopicOutcome::error(
                &user,
                ResponseError::PolicyViolation,
                format!("the cluster holds at most {MAX_SCRAM_CREDENTIALS} SCRAM credentials"),
            ));
            continue;
        }
        added += new;
        decision
            .records
            .extend(deletions.into_iter().map(|(user, mechanism)| {
                MetadataRecord::RemoveUserScramCredential {
                    user: user.clone(),
                    mechanism: *mechanism,
                }
            }));
        decision.records.extend(
            upsertions
                .into_iter()
                .map(|c| MetadataRecord::UserScramCredential(c.clone())),
        );
        decision.outcomes.push(TopicOutcome::ok(&user));
    }
    decision
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::records::UserScramCredential;
    use crate::security::sasl::credentials::{ScramCredential, ScramMechanism};

    fn credential(user: &str, mechanism: ScramMechanism, password: &[u8]) -> UserScramCredential {
        UserScramCredential {
            user: user.into(),
            mechanism,
            credential: ScramCredential::from_password(mechanism, password, b"salt", 4096),
        }
    }

    fn commit(image: &mut MetadataImage, decision: &Decision) {
        let index = image.applied_index + 1;
        image.apply(index, &decision.records);
    }

    fn codes(decision: &Decision) -> Vec<(String, i16)> {
        decision
            .outcomes
            .iter()
            .map(|o| (o.name.clone(), o.error_code))
            .collect()
    }

    #[test]
    fn upsertions_and_deletions_become_records_per_user() {
        let mut image = MetadataImage::default();
        let created = alter_scram_credentials(
            &image,
            &ScramChanges {
                upsertions: vec![
                    credential("alice", ScramMechanism::Sha512, b"a"),
                    credential("bob", ScramMechanism::Sha256, b"b"),
                    credential("alice", ScramMechanism::Sha256, b"a"),
                ],
                ..ScramChanges::default()
            },
        );
        assert_eq!(
            codes(&created),
            [("alice".to_string(), 0), ("bob".to_string(), 0)]
        );
        assert_eq!(created.records.len(), 3);
        commit(&mut image, &created);
        assert_eq!(image.scram_credentials.len(), 3);

        // A user whose deletion names an absent credential changes nothing; the others do.
        let changed = alter_scram_credentials(
            &image,
            &ScramChanges {
                upsertions: vec![credential("bob", ScramMechanism::Sha256, b"new")],
                deletions: vec![
                    ("alice".into(), ScramMechanism::Sha512),
                    ("bob".into(), ScramMechanism::Sha512),
                ],
                only_if_absent: false,
            },
        );
        let not_found = ResponseError::ResourceNotFound.code();
        assert_eq!(
            codes(&changed),
            [("bob".to_string(), not_found), ("alice".to_string(), 0)]
        );
        commit(&mut image, &changed);
        let store = &image.scram_credentials;
        assert!(store.get("alice", ScramMechanism::Sha512).is_none());
        assert!(store.get("alice", ScramMechanism::Sha256).is_some());
        let bob = store.get("bob", ScramMechanism::Sha256).expect("bob");
        assert!(
            bob.matches_password(ScramMechanism::Sha256, b"b"),
            "unchanged"
        );
    }

    #[test]
    fn start_up_credentials_never_replace_the_clusters() {
        let mut image = MetadataImage::default();
        let changes = |password: &[u8]| ScramChanges {
            upsertions: vec![
                credential("admin", ScramMechanism::Sha512, password),
                credential("admin", ScramMechanism::Sha256, password),
            ],
            deletions: Vec::new(),
            only_if_absent: true,
        };
        let first = alter_scram_credentials(&image, &changes(b"first"));
        commit(&mut image, &first);
        let set_since = alter_scram_credentials(
            &image,
            &ScramChanges {
                upsertions: vec![credential("admin", ScramMechanism::Sha512, b"changed")],
                ..ScramChanges::default()
            },
        );
        commit(&mut image, &set_since);
        let again = alter_scram_credentials(&image, &changes(b"other broker"));
        assert_eq!(codes(&again), [("admin".to_string(), 0)]);
        assert!(again.records.is_empty(), "{:?}", again.records);
        let admin = image
            .scram_credentials
            .get("admin", ScramMechanism::Sha512)
            .expect("admin");
        assert!(admin.matches_password(ScramMechanism::Sha512, b"changed"));
    }
}
