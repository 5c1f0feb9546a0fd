//! Harnesses for what a client can send before it has authenticated: the SASL exchange
//! (`ringbroker_engine::security::sasl`) and the first bytes on a TLS listener (rustls with the
//! broker's own server configuration, `security::tls::server_config`), and the client
//! certificate's subject reader (`security::principal`). Each runs the broker's code, not a copy.
//!
//! The test credentials use one PBKDF2 iteration instead of Kafka's minimum 4096: the count only
//! sets how long the key derivation loops, and a PLAIN attempt on a known user then costs
//! microseconds, not milliseconds, so the fuzzer keeps its speed.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::BytesMut;
use kafka_protocol::messages::ApiKey;
use ringbroker_engine::security::principal;
use ringbroker_engine::security::sasl::credentials::{
    CredentialStore, ScramCredential, ScramMechanism,
};
use ringbroker_engine::security::sasl::plain::{self, PlainError};
use ringbroker_engine::security::sasl::scram::{self, ScramError, SERVER_NONCE_BYTES};
use ringbroker_engine::security::sasl::session::{Gate, SaslSession};
use ringbroker_engine::security::sasl::MAX_UNAUTHENTICATED_REQUEST_BYTES;
use ringbroker_engine::security::tls::{self, TlsFiles};
use ringbroker_engine::security::{CredentialRegistry, SaslMechanism};
use ringbroker_protocol::frame::{self, FRAME_PREFIX_BYTES};
use rustls::ServerConnection;

/// The users the harnesses know, all with the password [`PASSWORD`].
pub const USERS: [&str; 2] = ["alice", "u,x=y"];
/// The one password of the test users.
pub const PASSWORD: &str = "fuzz-secret";
/// The server's nonce part in `sasl_tokens` (the broker draws it at random).
pub const SERVER_NONCE: [u8; SERVER_NONCE_BYTES] = [7; SERVER_NONCE_BYTES];
/// What a SASL reply may add to the request it answers: the mechanism list, an error message, a
/// salt and nonce (well under this); anything more is an unbounded echo.
const REPLY_OVERHEAD_BYTES_MAX: usize = 1024;
/// What the TLS server may write in one round: its first flight (certificate chain, key share,
/// and a CertificateRequest) is a few KiB.
const TLS_FLIGHT_BYTES_MAX: usize = 64 * 1024;

fn store() -> &'static CredentialStore {
    static STORE: OnceLock<CredentialStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let mut store = CredentialStore::default();
        for user in USERS {
            for mechanism in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
                let credential =
                    ScramCredential::from_password(mechanism, PASSWORD.as_bytes(), b"salt", 1);
                store.insert(user, mechanism, credential);
            }
        }
        store
    })
}

fn registry() -> Arc<CredentialRegistry> {
    static REGISTRY: OnceLock<Arc<CredentialRegistry>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            // The credentials a broker installs from its metadata image.
            let registry = CredentialRegistry::default();
            registry.install(&Arc::new(store().clone()));
            Arc::new(registry)
        })
        .clone()
}

/// One SASL connection: `data` is what the client sends, size-prefixed request frames back to
/// back, fed to `SaslSession::gate` as the connection's reader does (frames the reader would
/// refuse for their size end the connection here too). Every mechanism is enabled.
///
/// Sessions expire (an hour), so a SaslHandshake after authentication begins a re-authentication
/// (KIP-368), which the rest of the input then drives.
///
/// Invariants: only ApiVersions passes the gate; a reply is one whole response frame to the
/// request it answers (its correlation id) and no larger than that request plus
/// `REPLY_OVERHEAD_BYTES_MAX`; after a refusal the connection is closed; a client authenticates
/// only with the test password, and a re-authentication keeps the principal.
pub fn sasl_session(data: &[u8]) -> usize {
    let mechanisms: Arc<[SaslMechanism]> = Arc::from(SaslMechanism::ALL.as_slice());
    let mut session = SaslSession::new(
        mechanisms,
        registry(),
        "fuzz".to_string(),
        Some(Duration::from_secs(3600)),
    );
    let mut rest = data;
    let mut requests = 0usize;
    let mut first_principal: Option<String> = None;
    while rest.len() >= FRAME_PREFIX_BYTES {
        if session.is_authenticated() {
            let principal = session.principal().unwrap_or_default().to_string();
            let first = first_principal.get_or_insert_with(|| principal.clone());
            assert_eq!(*first, principal, "a re-authentication changed the principal");
            let next_api = rest
                .get(FRAME_PREFIX_BYTES..)
                .and_then(|body| frame::request_prefix(body).ok())
                .map(|p| p.api_key);
            if next_api != Some(ApiKey::SaslHandshake as i16)
                || !session.begin_reauthentication(Instant::now())
            {
                break;
            }
        }
        let size_prefix = [rest[0], rest[1], rest[2], rest[3]];
        let Ok(size) = frame::frame_size(size_prefix, MAX_UNAUTHENTICATED_REQUEST_BYTES) else {
            break;
        };
        let Some(body) = rest.get(FRAME_PREFIX_BYTES..FRAME_PREFIX_BYTES + size) else {
            break;
        };
        rest = &rest[FRAME_PREFIX_BYTES + size..];
        requests += 1;
        let prefix = frame::request_prefix(body).ok();
        match session.gate(BytesMut::from(body)) {
            Gate::Pass => {
                let api_key = prefix.map(|p| p.api_key);
                assert_eq!(
                    api_key,
                    Some(ApiKey::ApiVersions as i16),
                    "only ApiVersions passes"
                );
            }
            Gate::Reply(reply) => check_reply(&reply, body, prefix),
            Gate::ReplyAndClose(reply) => {
                check_reply(&reply, body, prefix);
                assert!(!session.is_authenticated());
                break;
            }
            Gate::Close(reason) => {
                assert!(!reason.is_empty());
                break;
            }
        }
    }
    if session.is_authenticated() {
        let principal = session.principal().unwrap_or_default();
        assert!(
            USERS.iter().any(|u| principal == format!("User:{u}")),
            "authenticated as {principal}"
        );
    }
    requests
}

fn check_reply(reply: &[u8], request: &[u8], prefix: Option<frame::RequestPrefix>) {
    let prefix = prefix.expect("a reply answers a request with a readable header");
    assert!(reply.len() >= FRAME_PREFIX_BYTES + 4, "reply too short");
    let size = u32::from_be_bytes([reply[0], reply[1], reply[2], reply[3]]) as usize;
    assert_eq!(size, reply.len() - FRAME_PREFIX_BYTES, "reply size prefix");
    let correlation_id = i32::from_be_bytes([reply[4], reply[5], reply[6], reply[7]]);
    assert_eq!(
        correlation_id, prefix.correlation_id,
        "reply correlation id"
    );
    assert!(
        reply.len() <= request.len() + REPLY_OVERHEAD_BYTES_MAX,
        "a {}-byte reply to a {}-byte request",
        reply.len(),
        request.len()
    );
}

/// The SASL tokens alone. Byte 0: bits 0-1 pick the mechanism (`% 3`: PLAIN, SCRAM-SHA-256,
/// SCRAM-SHA-512); for SCRAM, bit 7 set makes the harness append the right client proof to the
/// client-final message (as a client that knows the password would), so mutations of the other
/// attributes reach the end of the exchange. The rest is the PLAIN token, or for SCRAM: bytes 1-2
/// the length of the client-first message (big-endian), the client-first message, then the
/// client-final message.
///
/// Invariants: a token that is not UTF-8 / not three NUL-separated fields is `Malformed`; PLAIN
/// authenticates only a test user with the test password; SCRAM never authenticates without the
/// harness's proof; the server-first message starts with the client's nonce and ends with the
/// salt and iterations, and is no longer than the client-first message plus a constant.
/// Returns 1 when the token authenticated, 0 otherwise.
pub fn sasl_tokens(data: &[u8]) -> usize {
    let Some((&switch, rest)) = data.split_first() else {
        return 0;
    };
    let authenticated = match switch & 0x03 {
        0 | 3 => plain_token(rest),
        1 => scram_exchange(ScramMechanism::Sha256, switch & 0x80 != 0, rest),
        _ => scram_exchange(ScramMechanism::Sha512, switch & 0x80 != 0, rest),
    };
    usize::from(authenticated)
}

fn plain_token(token: &[u8]) -> bool {
    let result = plain::authenticate(store(), token);
    let fields: Vec<&[u8]> = token.split(|b| *b == 0).collect();
    if fields.len() != 3 {
        assert!(
            matches!(result, Err(PlainError::Malformed(_))),
            "{result:?}"
        );
        return false;
    }
    let Ok(user) = result else {
        return false;
    };
    assert!(USERS.contains(&user.as_str()), "authenticated {user}");
    assert_eq!(fields[1], user.as_bytes());
    assert_eq!(fields[2], PASSWORD.as_bytes(), "a wrong password accepted");
    true
}

fn scram_exchange(mechanism: ScramMechanism, prove: bool, rest: &[u8]) -> bool {
    let (first, last) = match rest {
        [high, low, tail @ ..] => {
            let length = usize::from(u16::from_be_bytes([*high, *low])).min(tail.len());
            tail.split_at(length)
        }
        _ => (rest, &[][..]),
    };
    let state = match scram::client_first_with_nonce(mechanism, store(), first, &SERVER_NONCE) {
        Ok(state) => state,
        Err(e) => {
            if std::str::from_utf8(first).is_err() {
                assert!(matches!(e, ScramError::Malformed(_)), "{e:?}");
            }
            return false;
        }
    };
    let server_first = state.message();
    let server_nonce = BASE64.encode(SERVER_NONCE);
    assert!(server_first.starts_with("r="), "{server_first}");
    assert!(server_first.contains(&format!("{server_nonce},s=")));
    assert!(server_first.len() <= first.len() + REPLY_OVERHEAD_BYTES_MAX);
    let mut client_final = last.to_vec();
    if prove {
        let proof = client_proof(mechanism, first, server_first, last);
        client_final.extend_from_slice(format!(",p={}", BASE64.encode(proof)).as_bytes());
    }
    match scram::client_final(&state, &client_final) {
        Ok((user, server_final)) => {
            assert!(prove, "authenticated without the password");
            assert!(USERS.contains(&user.as_str()), "authenticated {user}");
            assert!(server_final.starts_with("v="));
            let text = std::str::from_utf8(last).expect("an accepted message is UTF-8");
            let nonce = text.split(',').nth(1).and_then(|a| a.strip_prefix("r="));
            assert!(nonce.is_some_and(|n| n.ends_with(&server_nonce)));
            true
        }
        Err(e) => {
            if std::str::from_utf8(&client_final).is_err() {
                assert!(matches!(e, ScramError::Malformed(_)), "{e:?}");
            }
            false
        }
    }
}

/// The client proof of RFC 5802 section 3 for `without_proof`, with the test password; the
/// client-first-bare is the client-first message after its GS2 header (its second comma).
fn client_proof(
    mechanism: ScramMechanism,
    client_first: &[u8],
    server_first: &str,
    without_proof: &[u8],
) -> Vec<u8> {
    let bare = client_first
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b',')
        .nth(1)
        .map_or(&[][..], |(at, _)| &client_first[at + 1..]);
    let mut auth_message = bare.to_vec();
    auth_message.push(b',');
    auth_message.extend_from_slice(server_first.as_bytes());
    auth_message.push(b',');
    auth_message.extend_from_slice(without_proof);
    let salted = mechanism.salted_password(PASSWORD.as_bytes(), b"salt", 1);
    let client_key = mechanism.hmac(&salted, b"Client Key");
    let stored_key = mechanism.hash(&client_key);
    let signature = mechanism.hmac(&stored_key, &auth_message);
    client_key
        .iter()
        .zip(&signature)
        .map(|(k, s)| k ^ s)
        .collect()
}

/// Where the test certificates are (`fuzz/certs/`, made with openssl; see README.md).
fn cert_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("certs")
        .join(name)
}

/// The broker's TLS server configurations for the test certificate: without and with client
/// certificates (mTLS, clients signed by the test CA).
fn server_configs() -> &'static [Arc<rustls::ServerConfig>; 2] {
    static CONFIGS: OnceLock<[Arc<rustls::ServerConfig>; 2]> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let files = |client_ca: Option<PathBuf>| TlsFiles {
            cert: cert_path("server.pem"),
            key: cert_path("server.key"),
            client_ca,
            policy: Default::default(),
        };
        let build = |files: TlsFiles| {
            tls::server_config(&files).unwrap_or_else(|e| panic!("fuzz/certs: {e}"))
        };
        [build(files(None)), build(files(Some(cert_path("ca.pem"))))]
    })
}

/// The first bytes a client sends to a TLS listener. Byte 0: bit 0 picks the configuration with
/// client certificates (mTLS); bits 1-7 times 16 are the size of the pieces the bytes arrive in
/// (0: all at once). The rest is fed to a rustls `ServerConnection` built from the broker's
/// configuration, `read_tls` then `process_new_packets` until an error or the end of the input,
/// with the server's answers drained after each step; a client certificate that reaches the
/// connection goes through the broker's subject reader, as `server::connection` does.
///
/// Invariants: no panic; no handshake completes (the bytes cannot hold the keys); no round
/// makes the server write more than `TLS_FLIGHT_BYTES_MAX`.
pub fn tls_accept(data: &[u8]) -> usize {
    let Some((&switch, rest)) = data.split_first() else {
        return 0;
    };
    let config = server_configs()[usize::from(switch & 1)].clone();
    let Ok(mut connection) = ServerConnection::new(config) else {
        return 0;
    };
    let piece_bytes = match usize::from(switch >> 1) * 16 {
        0 => rest.len().max(1),
        n => n,
    };
    let mut sent = 0usize;
    let mut answer = Vec::new();
    for piece in rest.chunks(piece_bytes) {
        let mut reader = piece;
        let mut failed = false;
        while !reader.is_empty() {
            match connection.read_tls(&mut reader) {
                Ok(0) | Err(_) => {
                    failed = true;
                    break;
                }
                Ok(n) => sent += n,
            }
            if connection.process_new_packets().is_err() {
                failed = true;
                break;
            }
        }
        answer.clear();
        while connection.wants_write() {
            match connection.write_tls(&mut answer) {
                Ok(0) | Err(_) => break,
                Ok(_) => assert!(
                    answer.len() <= TLS_FLIGHT_BYTES_MAX,
                    "server wrote {}",
                    answer.len()
                ),
            }
        }
        if let Some(certificate) = connection.peer_certificates().and_then(|c| c.first()) {
            let _ = principal::of_certificate(certificate);
        }
        if failed {
            break;
        }
    }
    assert!(
        connection.is_handshaking(),
        "a handshake completed from fuzz bytes"
    );
    sent
}

/// A client certificate's DER through the broker's subject reader (`principal::of_certificate`,
/// what turns an mTLS client into `User:CN=...`).
///
/// Invariants: no panic; a principal starts with `User:`, and its length is bounded by the
/// input's (at most 4 characters per DER byte: hex doubles a value with its header, a dotted OID
/// writes at most 4 characters per byte).
pub fn cert_subject(data: &[u8]) -> usize {
    match principal::of_certificate(data) {
        Ok(principal) => {
            assert!(principal.starts_with("User:"));
            assert!(
                principal.len() <= "User:".len() + 4 * data.len(),
                "a {}-character principal from {} bytes",
                principal.len(),
                data.len()
            );
            principal.len()
        }
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(dir: &str, name: &str) -> Vec<u8> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("in")
            .join(dir)
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn token_seeds_reach_the_end_of_each_exchange() {
        assert_eq!(sasl_tokens(&seed("sasl_tokens", "plain")), 1);
        assert_eq!(sasl_tokens(&seed("sasl_tokens", "scram_sha_256_proved")), 1);
        assert_eq!(sasl_tokens(&seed("sasl_tokens", "scram_sha_512_proved")), 1);
        assert_eq!(sasl_tokens(&seed("sasl_tokens", "scram_sha_512")), 0);
    }

    #[test]
    fn session_and_tls_seeds_run() {
        assert_eq!(sasl_session(&seed("sasl_session", "plain")), 3);
        assert!(tls_accept(&seed("tls_accept", "mtls_tls12_client_flights")) > 0);
        assert!(cert_subject(&seed("cert_subject", "client")) > 0);
    }
}
