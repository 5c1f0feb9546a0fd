//! The API versions this client speaks, and negotiation with a broker's ApiVersions answer.
//!
//! Upper bounds stop below the versions that need topic ids or reshape a request this client builds
//! (Produce/Fetch >= 13 and OffsetCommit/OffsetFetch >= 10 need topic ids; OffsetFetch >= 8 and
//! FindCoordinator >= 4 batch groups). The lower bounds are the first versions this client fills in
//! correctly. A broker advertising a wider range gets `min(our max, its max)`.

use kafka_protocol::messages::ApiKey;
use std::collections::HashMap;

/// (api, lowest, highest) version this client can send.
const CLIENT_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 1, 9),
    (ApiKey::OffsetCommit, 2, 7),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::FindCoordinator, 0, 3),
    (ApiKey::JoinGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 3),
    (ApiKey::LeaveGroup, 0, 3),
    (ApiKey::SyncGroup, 0, 3),
    (ApiKey::DescribeGroups, 0, 4),
    (ApiKey::ListGroups, 0, 3),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 4),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::DescribeConfigs, 1, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
];

/// The versions of `api` this client can send, or `None` if it never sends it.
pub fn client_range(api: ApiKey) -> Option<(i16, i16)> {
    CLIENT_VERSIONS
        .iter()
        .find(|(key, _, _)| *key == api)
        .map(|(_, min, max)| (*min, *max))
}

/// A broker's advertised (min, max) per API key, from its ApiVersions answer.
#[derive(Debug, Clone, Default)]
pub struct BrokerVersions {
    ranges: HashMap<i16, (i16, i16)>,
}

impl BrokerVersions {
    /// Builds the table from (api key, min, max) triples.
    pub fn new(ranges: impl IntoIterator<Item = (i16, i16, i16)>) -> Self {
        BrokerVersions {
            ranges: ranges
                .into_iter()
                .map(|(key, min, max)| (key, (min, max)))
                .collect(),
        }
    }

    /// The broker's range for `api`, if advertised.
    pub fn range(&self, api: ApiKey) -> Option<(i16, i16)> {
        self.ranges.get(&(api as i16)).copied()
    }

    /// The highest version both sides support, or `None` if the ranges do not overlap.
    pub fn negotiate(&self, api: ApiKey) -> Option<i16> {
        let (client_min, client_max) = client_range(api)?;
        let (broker_min, broker_max) = self.range(api)?;
        let version = client_max.min(broker_max);
        (version >= client_min.max(broker_min)).then_some(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_picks_the_highest_common_version() {
        // Ringbroker's advertisement (docs/COMPATIBILITY.md section 1): Produce 0-7, Fetch 4-11.
        let broker =
            BrokerVersions::new([(0, 0, 7), (1, 4, 11), (3, 0, 7), (19, 2, 4), (10, 0, 2)]);
        assert_eq!(broker.negotiate(ApiKey::Produce), Some(7));
        assert_eq!(broker.negotiate(ApiKey::Fetch), Some(11));
        assert_eq!(broker.negotiate(ApiKey::Metadata), Some(7));
        assert_eq!(broker.negotiate(ApiKey::FindCoordinator), Some(2));
        // Not advertised: no version.
        assert_eq!(broker.negotiate(ApiKey::JoinGroup), None);
        // A broker newer than us: our max.
        let newer = BrokerVersions::new([(0, 3, 13), (1, 4, 18)]);
        assert_eq!(newer.negotiate(ApiKey::Produce), Some(9));
        assert_eq!(newer.negotiate(ApiKey::Fetch), Some(12));
        // No overlap: a broker that only speaks Produce 0-2.
        let old = BrokerVersions::new([(0, 0, 2)]);
        assert_eq!(old.negotiate(ApiKey::Produce), None);
    }
}
