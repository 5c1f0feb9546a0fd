//! The APIs and versions the broker serves, copied as data from
//! `engine/src/server/api_versions.rs` (`SUPPORTED_APIS`, `PRODUCE_MIN_SERVED_VERSION`) so this
//! crate needs only the protocol crate. Only bodies of served requests reach a handler's decoder,
//! so only those are fuzzed. Keep the table in step with the engine's.

use kafka_protocol::messages::ApiKey;

/// `(api, min version, max version)` as advertised by the broker's ApiVersions answer.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 7),
    (ApiKey::Fetch, 4, 11),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 2, 7),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 7),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 4),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DeleteRecords, 0, 2),
];

/// Produce versions below this are advertised but refused before decoding.
pub const PRODUCE_MIN_SERVED_VERSION: i16 = 3;

/// Whether the broker decodes the body of `api` at `version` (mirrors the engine's `is_served`).
pub fn is_served(api: ApiKey, version: i16) -> bool {
    SUPPORTED_APIS
        .iter()
        .find(|(key, _, _)| *key == api)
        .is_some_and(|(_, min, max)| {
            version >= *min
                && version <= *max
                && !(api == ApiKey::Produce && version < PRODUCE_MIN_SERVED_VERSION)
        })
}
