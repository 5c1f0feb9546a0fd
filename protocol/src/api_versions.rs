//! The API versions the ringbroker broker advertises: exactly what it implements
//! (docs/COMPATIBILITY.md section 1, checked against this table by a test). Kept here, beside the codecs, so the broker and the fuzz targets (fuzz/) share one table.
//! Not derived from the `kafka-protocol` crate's ranges: those describe what the crate can decode,
//! not what we serve (e.g. librdkafka needs Produce and FindCoordinator to start at v0).

use kafka_protocol::messages::ApiKey;

/// (api, min version, max version) for every API we serve.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    // Produce v0-2 are advertised so librdkafka < 2.11.1 keeps compressing (KAFKA-18659); they
    // never arrive from clients that also speak v3+, and are refused like Kafka 4 refuses them.
    (ApiKey::Produce, 0, 8),
    (ApiKey::Fetch, 4, 11),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    // v8 is flexible; v9 is the first a consumer-protocol (KIP-848) member may use: it carries the
    // member epoch (OffsetFetch v9 adds member id and epoch per group). v10 needs topic ids.
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
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
    // v0 must be listed: librdkafka enables idempotence only when it overlaps (docs/COMPATIBILITY.md section 1).
    (ApiKey::InitProducerId, 0, 4),
    // Transactions (transaction protocol version 1: no `transaction.version` feature is finalized,
    // so clients add partitions with AddPartitionsToTxn v0-3; v4-5 are Kafka's broker-to-broker
    // batch, whose `verify_only` transactions the partition leaders send: KIP-890 verification).
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 4),
    (ApiKey::TxnOffsetCommit, 0, 4),
    // Broker to broker: a transaction coordinator has the leader of a partition write its marker
    // (Kafka 4 keeps only v1).
    (ApiKey::WriteTxnMarkers, 1, 1),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    // The codec decodes v1+; v0 is only used by brokers older than Kafka 1.1's clients.
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DeleteRecords, 0, 2),
    // Followers ask it before fetching (v2 adds the current leader epoch, v3 the replica id, v4 is
    // flexible); v0-1 are gone from Kafka 4.
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    // kafka-leader-election: preferred (v0) and unclean (v1+) elections; v2 is flexible.
    (ApiKey::ElectLeaders, 0, 2),
    // v0-2: v1 adds the endpoint type (KIP-919), v2 the fenced-broker flags (KIP-1073).
    (ApiKey::DescribeCluster, 0, 2),
    // KIP-848 consumer groups (`group.protocol=consumer`): v1 adds the regex subscription and has the
    // client bring its member id (KIP-1082); ConsumerGroupDescribe v1 adds the member type (KIP-1099).
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    // SASL (docs/SECURITY.md). SaslHandshake v0 must be listed: librdkafka only does SASL when
    // the range includes it, and uses v1 anyway. A v0 handshake (raw, unframed tokens follow, no
    // current client sends one) is refused by closing the connection. SaslAuthenticate v1 adds
    // the session lifetime (KIP-368), v2 is flexible.
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    // Client quotas (`kafka-configs --describe --entity-type users` asks for them before the SCRAM
    // credentials): none exist, so describe answers no entries and alter refuses. v1 is flexible.
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
    // SCRAM credentials (`kafka-configs --entity-type users`), kept per broker (docs/SECURITY.md).
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    // ACLs (`kafka-acls`): v0 is gone from Kafka 4; v2 is flexible, v3 adds USER resources (which
    // are refused), kept per broker (docs/SECURITY.md).
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
];

/// Versions below this are advertised but refused (see above).
pub const PRODUCE_MIN_SERVED_VERSION: i16 = 3;

/// The advertised range of `api`, if we serve it.
pub fn supported_range(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|(key, _, _)| *key == api)
        .map(|(_, min, max)| (*min, *max))
}

/// Whether a request of `api` at `version` can be served.
pub fn is_served(api: ApiKey, version: i16) -> bool {
    match supported_range(api) {
        Some((min, max)) => {
            version >= min
                && version <= max
                && !(api == ApiKey::Produce && version < PRODUCE_MIN_SERVED_VERSION)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_ranges_are_within_what_the_codec_decodes() {
        for (api, min, max) in SUPPORTED_APIS {
            let codec = api.valid_versions();
            let served_min = if *api == ApiKey::Produce {
                PRODUCE_MIN_SERVED_VERSION
            } else {
                *min
            };
            assert!(
                served_min >= codec.min && *max <= codec.max,
                "{api:?} {min}-{max} vs {codec:?}"
            );
        }
    }

    #[test]
    fn librdkafka_feature_gates_start_at_zero() {
        assert_eq!(supported_range(ApiKey::Produce).map(|r| r.0), Some(0));
        assert_eq!(
            supported_range(ApiKey::FindCoordinator).map(|r| r.0),
            Some(0)
        );
        assert!(!is_served(ApiKey::Produce, 2));
        assert!(is_served(ApiKey::Produce, 8));
    }

    /// One row of the API table in docs/COMPATIBILITY.md: (name, key, min, max).
    fn documented_row(line: &str) -> Option<(String, i16, i16, i16)> {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        let [name, key, versions, ..] = cells.as_slice() else {
            return None;
        };
        let key = key.parse().ok()?;
        let (min, max) = versions.split_once('-').unwrap_or((versions, versions));
        Some((name.to_string(), key, min.parse().ok()?, max.parse().ok()?))
    }

    #[test]
    fn compatibility_doc_lists_every_served_api() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/COMPATIBILITY.md");
        let text = std::fs::read_to_string(path).expect("docs/COMPATIBILITY.md is readable");
        let table = text
            .split("<!-- api-versions-table")
            .nth(1)
            .and_then(|rest| rest.split("<!-- end of api-versions-table").next())
            .expect("docs/COMPATIBILITY.md has the api-versions-table markers");
        let mut documented: Vec<(String, i16, i16, i16)> =
            table.lines().filter_map(documented_row).collect();
        let mut served: Vec<(String, i16, i16, i16)> = SUPPORTED_APIS
            .iter()
            .map(|(api, min, max)| (format!("{api:?}"), *api as i16, *min, *max))
            .collect();
        documented.sort_by_key(|row| row.1);
        served.sort_by_key(|row| row.1);
        assert_eq!(
            documented, served,
            "docs/COMPATIBILITY.md section 1 must list exactly SUPPORTED_APIS \
             (| Name | key | min-max | notes |): update the page with the code"
        );
    }
}
