//! Kafka's `__consumer_offsets` record formats, so our log reads like Kafka's and Kafka's tools read ours.
//! Every key starts with an `i16` version that is also the record type: 0 and 1 are committed offsets
//! (`offset_commit`), 2 is a classic group's metadata (`group_metadata`), 3-8 and 16 are the state of
//! consumer-protocol groups (`consumer_group`). `wire` holds the primitive encodings (classic and
//! flexible) the schemas share.

mod consumer_group;
mod group_metadata;
mod offset_commit;
pub(crate) mod wire;

use bytes::Bytes;

use super::error::GroupError;
use super::store::{
    CoordinatorRecord, GroupMetadataRecord, OffsetKey, OffsetRecord, TxnOffsetRecord,
};
use wire::Reader;

pub use group_metadata::GROUP_METADATA_KEY_VERSION;

/// What a stored key names.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodedKey {
    Offset(OffsetKey),
    /// A classic group's metadata (the group id).
    GroupMetadata(String),
}

pub fn decode_key(buf: Bytes) -> Result<DecodedKey, GroupError> {
    let mut r = Reader::new(buf, false);
    match r.i16("key version")? {
        0 | offset_commit::OFFSET_KEY_VERSION => {
            Ok(DecodedKey::Offset(offset_commit::decode_key_body(&mut r)?))
        }
        GROUP_METADATA_KEY_VERSION => Ok(DecodedKey::GroupMetadata(
            group_metadata::decode_key_body(&mut r)?,
        )),
        other => Err(GroupError::MalformedRecord(format!(
            "unknown key version {other}"
        ))),
    }
}

/// Whether a key type is one of a consumer-protocol group's records.
fn is_consumer_group_key(key_type: i16) -> bool {
    matches!(
        key_type,
        consumer_group::GROUP_EPOCH_KEY_TYPE
            | consumer_group::MEMBER_KEY_TYPE
            | consumer_group::TARGET_EPOCH_KEY_TYPE
            | consumer_group::TARGET_MEMBER_KEY_TYPE
            | consumer_group::CURRENT_ASSIGNMENT_KEY_TYPE
            | consumer_group::REGEX_KEY_TYPE
    )
}

/// The key and value (`None`: tombstone) bytes of a record. A transaction's offset is encoded as
/// any offset (its batch carries the producer); a marker is a control batch, not a record.
pub fn encode_record(record: &CoordinatorRecord) -> Result<(Bytes, Option<Bytes>), GroupError> {
    match record {
        CoordinatorRecord::TxnMarker(_) => Err(GroupError::MalformedRecord(
            "a transaction marker is a control batch, not a keyed record".into(),
        )),
        CoordinatorRecord::Offset(record)
        | CoordinatorRecord::TxnOffset(TxnOffsetRecord { offset: record, .. }) => Ok((
            offset_commit::encode_key(&record.key)?,
            record
                .value
                .as_ref()
                .map(offset_commit::encode_value)
                .transpose()?,
        )),
        CoordinatorRecord::GroupMetadata(record) => Ok((
            group_metadata::encode_key(&record.group_id)?,
            record
                .value
                .as_ref()
                .map(group_metadata::encode_value)
                .transpose()?,
        )),
        CoordinatorRecord::Consumer(record) => Ok((
            consumer_group::encode_key(record)?,
            consumer_group::encode_value(record)?,
        )),
    }
}

/// A stored record back from its key and value bytes.
pub fn decode_record(key: Bytes, value: Option<Bytes>) -> Result<CoordinatorRecord, GroupError> {
    let mut r = Reader::new(key.clone(), false);
    let key_type = r.i16("key version")?;
    if is_consumer_group_key(key_type) {
        return Ok(CoordinatorRecord::Consumer(consumer_group::decode(
            key_type, &mut r, value,
        )?));
    }
    Ok(match decode_key(key)? {
        DecodedKey::Offset(key) => CoordinatorRecord::Offset(OffsetRecord {
            key,
            value: value.map(offset_commit::decode_value).transpose()?,
        }),
        DecodedKey::GroupMetadata(group_id) => {
            CoordinatorRecord::GroupMetadata(GroupMetadataRecord {
                group_id,
                value: value.map(group_metadata::decode_value).transpose()?,
            })
        }
    })
}
