//! Writes the seed corpora: a few valid request frames to `in/frame_and_header/`, a few valid
//! record-batch buffers to `in/record_batch/` (one per codec), two-record records sections to
//! `in/record_walker/` and compressed payloads to `in/decompress/` (one per codec). Run from the `fuzz/` directory:
//! `cargo run --no-default-features --bin make_seeds`. Seeds are kept tiny on purpose: afl works
//! best on small inputs, and its mutations find the rest.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, FetchRequest, MetadataRequest, ProduceRequest, RequestHeader,
    TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use ringbroker_protocol::batch::{build_simple_batch, Compression, BATCH_HEADER_BYTES};
use ringbroker_protocol::records::{BatchBuilder, Record};
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let frames_dir = Path::new("in/frame_and_header");
    let batches_dir = Path::new("in/record_batch");
    let walker_dir = Path::new("in/record_walker");
    let decompress_dir = Path::new("in/decompress");
    for dir in [frames_dir, batches_dir, walker_dir, decompress_dir] {
        std::fs::create_dir_all(dir)?;
    }

    let simple = build_simple_batch(1_700_000_000_000, &[b"a", b"bc"]);
    let topic = TopicName(StrBytes::from_static_str("t"));

    let api_versions = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("fz"))
        .with_client_software_version(StrBytes::from_static_str("1"));
    write(
        frames_dir,
        "api_versions_v3",
        &frame(ApiKey::ApiVersions, 3, &api_versions)?,
    )?;
    write(
        frames_dir,
        "api_versions_v0",
        &frame(ApiKey::ApiVersions, 0, &api_versions)?,
    )?;

    let metadata = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(topic.clone())),
    ]));
    write(
        frames_dir,
        "metadata_v12",
        &frame(ApiKey::Metadata, 12, &metadata)?,
    )?;
    write(
        frames_dir,
        "metadata_v1",
        &frame(ApiKey::Metadata, 1, &metadata)?,
    )?;

    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic.clone())
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(simple.clone().into()))])]);
    write(
        frames_dir,
        "produce_v7",
        &frame(ApiKey::Produce, 7, &produce)?,
    )?;
    write(
        frames_dir,
        "produce_v3",
        &frame(ApiKey::Produce, 3, &produce)?,
    )?;

    let fetch = FetchRequest::default()
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic)
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(1 << 20)])]);
    write(frames_dir, "fetch_v11", &frame(ApiKey::Fetch, 11, &fetch)?)?;

    // Two frames back to back, as on a pipelining connection.
    let mut pipelined = frame(ApiKey::ApiVersions, 3, &api_versions)?;
    pipelined.extend_from_slice(&frame(ApiKey::Metadata, 12, &metadata)?);
    write(frames_dir, "pipelined", &pipelined)?;

    // Record batches: the first byte is the harness's switch (1 = recompute CRCs).
    write(batches_dir, "simple", &switched(0, &simple))?;
    let mut two = simple.clone();
    two.extend_from_slice(&build_simple_batch(1_700_000_000_001, &[b"d"]));
    write(batches_dir, "two_batches", &switched(0, &two))?;
    for (name, codec) in [
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
        ("none_headers", Compression::None),
    ] {
        let mut builder = BatchBuilder::new(codec);
        builder.push(&Record {
            key: Some(b"k"),
            value: Some(b"value"),
            headers: &[("h", Some(b"v")), ("n", None)],
            timestamp_ms: 1_700_000_000_000,
        })?;
        builder.push(&Record {
            key: None,
            value: None,
            headers: &[],
            timestamp_ms: 1_700_000_000_005,
        })?;
        let batch = builder.finish()?;
        write(batches_dir, name, &switched(1, &batch))?;
        // record_walker: [codec, record count - 1 (u16 big-endian), records section].
        let records = &batch[BATCH_HEADER_BYTES..];
        let mut walker = vec![codec.id() as u8, 0, 1];
        walker.extend_from_slice(records);
        write(walker_dir, name, &walker)?;
        // decompress: [codec selector (id - 1), compressed payload].
        if codec != Compression::None {
            let mut payload = vec![codec.id() as u8 - 1];
            payload.extend_from_slice(records);
            write(decompress_dir, name, &payload)?;
        }
    }
    Ok(())
}

/// A complete request frame: size prefix, header at the API's header version, body.
fn frame<M: Encodable>(
    api_key: ApiKey,
    version: i16,
    body: &M,
) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("fz")));
    let mut payload = BytesMut::new();
    header.encode(&mut payload, api_key.request_header_version(version))?;
    body.encode(&mut payload, version)?;
    let mut out = BytesMut::with_capacity(4 + payload.len());
    out.put_i32(i32::try_from(payload.len())?);
    out.extend_from_slice(&payload);
    Ok(out.to_vec())
}

fn switched(switch: u8, batches: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + batches.len());
    out.push(switch);
    out.extend_from_slice(batches);
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(dir.join(name), bytes)
}
