//! Writes the seed corpora: a few valid request frames to `in/frame_and_header/`, a few valid
//! record-batch buffers to `in/record_batch/` (one per codec), two-record records sections to
//! `in/record_walker/` and compressed payloads to `in/decompress/` (one per codec), SASL
//! conversations and tokens to `in/sasl_session/` and `in/sasl_tokens/`, TLS client bytes to
//! `in/tls_accept/` and the test certificates' DER to `in/cert_subject/`. Run from the `fuzz/` directory:
//! `cargo run --no-default-features --bin make_seeds`. Seeds are kept tiny on purpose: afl works
//! best on small inputs, and its mutations find the rest.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, FetchRequest, MetadataRequest, ProduceRequest, RequestHeader,
    SaslAuthenticateRequest, SaslHandshakeRequest, TopicName,
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
    sasl_seeds()?;
    tls_seeds()?;
    Ok(())
}

/// `in/sasl_session/` (whole SASL conversations as frames) and `in/sasl_tokens/` (the tokens
/// alone, in the harness's layout: switch byte, then the PLAIN token or the two SCRAM messages).
fn sasl_seeds() -> Result<(), Box<dyn std::error::Error>> {
    let session_dir = Path::new("in/sasl_session");
    let tokens_dir = Path::new("in/sasl_tokens");
    for dir in [session_dir, tokens_dir] {
        std::fs::create_dir_all(dir)?;
    }
    let handshake = |mechanism: &'static str, version: i16| {
        frame(
            ApiKey::SaslHandshake,
            version,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism)),
        )
    };
    let authenticate = |token: &[u8]| {
        frame(
            ApiKey::SaslAuthenticate,
            2,
            &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token)),
        )
    };
    let plain_token = b"\0alice\0fuzz-secret";
    let client_first = b"n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL";
    // The combined nonce the `sasl_tokens` harness's server sends back (client part, then its fixed part).
    let client_final = format!(
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL{}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            ringbroker_fuzz::security::SERVER_NONCE
        )
    );
    let client_final = client_final.as_bytes();
    let api_versions = frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())?;
    let conversations: [(&str, Vec<Vec<u8>>); 5] = [
        (
            "plain",
            vec![
                api_versions.clone(),
                handshake("PLAIN", 1)?,
                authenticate(plain_token)?,
            ],
        ),
        (
            "scram_sha_512",
            vec![
                handshake("SCRAM-SHA-512", 1)?,
                authenticate(client_first)?,
                authenticate(b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL,p=AAAA")?,
            ],
        ),
        (
            "scram_sha_256",
            vec![
                handshake("SCRAM-SHA-256", 1)?,
                authenticate(b"n,a=alice,n=alice,r=abc")?,
            ],
        ),
        ("unknown_mechanism", vec![handshake("GSSAPI", 1)?]),
        (
            "handshake_v0",
            vec![handshake("PLAIN", 0)?, authenticate(plain_token)?],
        ),
    ];
    for (name, frames) in conversations {
        write(session_dir, name, &frames.concat())?;
    }
    let mut plain = vec![0u8];
    plain.extend_from_slice(plain_token);
    write(tokens_dir, "plain", &plain)?;
    for (switch, name) in [
        (1u8, "scram_sha_256"),
        (2, "scram_sha_512"),
        (0x81, "scram_sha_256_proved"),
        (0x82, "scram_sha_512_proved"),
    ] {
        let mut token = vec![switch];
        token.extend_from_slice(&u16::try_from(client_first.len())?.to_be_bytes());
        token.extend_from_slice(client_first);
        token.extend_from_slice(client_final);
        write(tokens_dir, name, &token)?;
    }
    Ok(())
}

/// `in/tls_accept/` (what TLS clients send first: rustls ClientHellos for TLS 1.3 and 1.2, a
/// whole TLS 1.2 client side of an mTLS handshake with its Certificate message, and a plaintext
/// Kafka request on the TLS port) and `in/cert_subject/` (the test certificates' DER).
fn tls_seeds() -> Result<(), Box<dyn std::error::Error>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let tls_dir = Path::new("in/tls_accept");
    let subject_dir = Path::new("in/cert_subject");
    for dir in [tls_dir, subject_dir] {
        std::fs::create_dir_all(dir)?;
    }
    for name in ["server", "client", "ca"] {
        let der = CertificateDer::from_pem_file(format!("certs/{name}.pem"))?;
        write(subject_dir, name, &der)?;
    }
    #[allow(deprecated)] // The broker's provider, see `security::tls::crypto_provider`.
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file("certs/ca.pem")?)?;
    let client_chain = vec![CertificateDer::from_pem_file("certs/client.pem")?];
    let client_key = PrivateKeyDer::from_pem_file("certs/client.key")?;
    let files = ringbroker_engine::security::tls::TlsFiles {
        cert: "certs/server.pem".into(),
        key: "certs/server.key".into(),
        client_ca: Some("certs/ca.pem".into()),
        policy: Default::default(),
    };
    let server_config = ringbroker_engine::security::tls::server_config(&files)?;
    for (switch, name, versions) in [
        (0u8, "client_hello_tls13", &[&rustls::version::TLS13][..]),
        (0, "client_hello_tls12", &[&rustls::version::TLS12][..]),
        (
            1,
            "mtls_tls12_client_flights",
            &[&rustls::version::TLS12][..],
        ),
    ] {
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)?
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(client_chain.clone(), client_key.clone_key())?;
        let mut client = rustls::ClientConnection::new(
            std::sync::Arc::new(config),
            ServerName::try_from("localhost")?,
        )?;
        let mut sent = Vec::new();
        client.write_tls(&mut sent)?;
        if switch == 1 {
            // Play the handshake against the broker's mTLS configuration; keep the client's bytes.
            let mut server = rustls::ServerConnection::new(server_config.clone())?;
            let mut from_client = sent.clone();
            for _ in 0..8 {
                server.read_tls(&mut from_client.as_slice())?;
                server.process_new_packets()?;
                let mut to_client = Vec::new();
                server.write_tls(&mut to_client)?;
                client.read_tls(&mut to_client.as_slice())?;
                client.process_new_packets()?;
                from_client.clear();
                client.write_tls(&mut from_client)?;
                sent.extend_from_slice(&from_client);
                if !client.is_handshaking() && !server.is_handshaking() {
                    break;
                }
            }
        }
        let mut seed = vec![switch];
        seed.extend_from_slice(&sent);
        write(tls_dir, name, &seed)?;
    }
    let mut plaintext = vec![0u8];
    plaintext.extend_from_slice(&frame(
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    )?);
    write(tls_dir, "plaintext_kafka_request", &plaintext)?;
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
