//! Version negotiation: the ranges this client speaks, intersected with what the broker advertises
//! in ApiVersions.

use std::collections::HashMap;

use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

use crate::error::{BenchError, Result};

/// One API this client speaks, with the versions it can encode and decode.
#[derive(Debug, Clone, Copy)]
pub struct ClientApi {
    /// The API key.
    pub key: ApiKey,
    /// Name for messages.
    pub name: &'static str,
    /// Lowest version we speak.
    pub min: i16,
    /// Highest version we speak. Produce stops at 8 because our pre-encoded frames assume the
    /// non-flexible layout (records are the last field of the frame).
    pub max: i16,
}

/// Produce: v3 is the first with record batches (v2 magic); v8 the last non-flexible version.
pub const PRODUCE: ClientApi = ClientApi {
    key: ApiKey::Produce,
    name: "Produce",
    min: 3,
    max: 8,
};
/// Fetch: v4 is the first returning record batches with the last stable offset.
pub const FETCH: ClientApi = ClientApi {
    key: ApiKey::Fetch,
    name: "Fetch",
    min: 4,
    max: 11,
};
/// Metadata.
pub const METADATA: ClientApi = ClientApi {
    key: ApiKey::Metadata,
    name: "Metadata",
    min: 1,
    max: 8,
};
/// ListOffsets.
pub const LIST_OFFSETS: ClientApi = ClientApi {
    key: ApiKey::ListOffsets,
    name: "ListOffsets",
    min: 1,
    max: 4,
};
/// CreateTopics.
pub const CREATE_TOPICS: ClientApi = ClientApi {
    key: ApiKey::CreateTopics,
    name: "CreateTopics",
    min: 2,
    max: 4,
};
/// FindCoordinator (transactions): v1 adds the key type (1 = transaction); v4 batches keys, which we do not need.
pub const FIND_COORDINATOR: ClientApi = ClientApi {
    key: ApiKey::FindCoordinator,
    name: "FindCoordinator",
    min: 1,
    max: 3,
};
/// InitProducerId: v3 adds the producer id and epoch of a re-initializing producer (KIP-360).
pub const INIT_PRODUCER_ID: ClientApi = ClientApi {
    key: ApiKey::InitProducerId,
    name: "InitProducerId",
    min: 0,
    max: 4,
};
/// AddPartitionsToTxn: v4 and up is the broker-to-broker batched form.
pub const ADD_PARTITIONS_TO_TXN: ClientApi = ClientApi {
    key: ApiKey::AddPartitionsToTxn,
    name: "AddPartitionsToTxn",
    min: 0,
    max: 3,
};
/// EndTxn: v5 is transaction protocol version 2 (epoch bump per transaction), not spoken here.
pub const END_TXN: ClientApi = ClientApi {
    key: ApiKey::EndTxn,
    name: "EndTxn",
    min: 0,
    max: 4,
};
/// ApiVersions: v0 is understood by every broker and needs no client software name.
pub const API_VERSIONS_VERSION: i16 = 0;

/// What the broker advertised: api key → (min, max).
#[derive(Debug, Clone, Default)]
pub struct BrokerVersions {
    ranges: HashMap<i16, (i16, i16)>,
}

impl BrokerVersions {
    /// Reads the advertised ranges out of an ApiVersions response.
    pub fn from_response(response: &ApiVersionsResponse) -> Result<Self> {
        if response.error_code != 0 {
            return Err(BenchError::broker(response.error_code, "ApiVersions"));
        }
        let ranges = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(BrokerVersions { ranges })
    }

    /// The highest version both sides speak.
    pub fn pick(&self, api: ClientApi) -> Result<i16> {
        let advertised = self.ranges.get(&(api.key as i16)).copied();
        match advertised {
            Some((lo, hi)) if lo.max(api.min) <= hi.min(api.max) => Ok(hi.min(api.max)),
            other => Err(BenchError::UnsupportedVersion {
                api: api.name,
                min: api.min,
                max: api.max,
                advertised: match other {
                    Some((lo, hi)) => format!("{lo}..={hi}"),
                    None => "nothing".into(),
                },
            }),
        }
    }

    /// Builds a table directly (tests).
    #[cfg(test)]
    pub fn from_pairs(pairs: &[(ApiKey, i16, i16)]) -> Self {
        BrokerVersions {
            ranges: pairs
                .iter()
                .map(|&(k, lo, hi)| (k as i16, (lo, hi)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_highest_common_version() {
        let v = BrokerVersions::from_pairs(&[(ApiKey::Produce, 0, 12), (ApiKey::Fetch, 4, 6)]);
        assert_eq!(v.pick(PRODUCE).expect("overlap"), 8);
        assert_eq!(v.pick(FETCH).expect("overlap"), 6);
        assert!(v.pick(METADATA).is_err());
        let old = BrokerVersions::from_pairs(&[(ApiKey::Produce, 0, 2)]);
        assert!(old.pick(PRODUCE).is_err());
    }
}
