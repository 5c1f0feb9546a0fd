//! The client side of SASL, for the broker's own connections to other brokers (Kafka's
//! `sasl.mechanism.inter.broker.protocol`): PLAIN's one token (RFC 4616) and SCRAM's two round
//! trips (RFC 5802, RFC 7677), including the check of the server's signature, so a broker only
//! talks to a peer that holds its credential. The tokens travel in SaslAuthenticate requests
//! (`replication::client`); this module only makes and checks them.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::credentials::{constant_time_eq, fill_random, ScramMechanism, MAX_ITERATIONS};
use super::mechanism::SaslMechanism;

/// Bytes of the client's nonce part (before base64), as many as the server's.
pub const CLIENT_NONCE_BYTES: usize = super::scram::SERVER_NONCE_BYTES;

/// The broker's own SASL identity towards other brokers.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslLogin {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: String,
}

impl fmt::Debug for SaslLogin {
    // Never prints the password (the broker logs its configuration).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslLogin")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Why the server's SCRAM messages cannot be answered or do not prove the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramClientError {
    #[error("malformed SCRAM server message: {0}")]
    Malformed(&'static str),
    #[error("the server asks for {0} PBKDF2 iterations, more than Kafka's maximum 16384")]
    TooManyIterations(u32),
    #[error("the server's SCRAM signature is wrong: it does not hold this user's credential")]
    ServerSignature,
    #[error("the server refused: {0}")]
    Refused(String),
    #[error("the system's random source failed")]
    Random,
}

/// PLAIN's token: `NUL user NUL password` (no authorization id, as Kafka's clients send it).
pub fn plain_token(login: &SaslLogin) -> Vec<u8> {
    let mut token = Vec::with_capacity(2 + login.username.len() + login.password.len());
    token.push(0);
    token.extend_from_slice(login.username.as_bytes());
    token.push(0);
    token.extend_from_slice(login.password.as_bytes());
    token
}

/// A SCRAM exchange after the client-first message.
pub struct ScramClient {
    mechanism: ScramMechanism,
    password: String,
    client_first_bare: String,
    client_nonce: String,
}

/// What the client keeps after the client-final message: the signature the server must send.
pub struct ScramClientFinal {
    server_signature: Vec<u8>,
}

impl ScramClient {
    /// Starts an exchange; returns it and the client-first message.
    pub fn start(
        mechanism: ScramMechanism,
        login: &SaslLogin,
    ) -> Result<(ScramClient, Vec<u8>), ScramClientError> {
        let mut nonce = [0u8; CLIENT_NONCE_BYTES];
        fill_random(&mut nonce).map_err(|_| ScramClientError::Random)?;
        Ok(Self::start_with_nonce(
            mechanism,
            login,
            &BASE64.encode(nonce),
        ))
    }

    /// `start` with the nonce given (tests replay RFC exchanges with it).
    fn start_with_nonce(
        mechanism: ScramMechanism,
        login: &SaslLogin,
        client_nonce: &str,
    ) -> (ScramClient, Vec<u8>) {
        let client_first_bare = format!("n={},r={client_nonce}", encode_sasl_name(&login.username));
        let message = format!("n,,{client_first_bare}").into_bytes();
        let client = ScramClient {
            mechanism,
            password: login.password.clone(),
            client_first_bare,
            client_nonce: client_nonce.to_string(),
        };
        (client, message)
    }

    /// Answers the server-first message with the client-final one (the proof).
    pub fn answer(
        self,
        server_first: &[u8],
    ) -> Result<(ScramClientFinal, Vec<u8>), ScramClientError> {
        let malformed = ScramClientError::Malformed;
        let server_first = std::str::from_utf8(server_first).map_err(|_| malformed("not UTF-8"))?;
        if let Some(error) = server_first.strip_prefix("e=") {
            return Err(ScramClientError::Refused(error.to_string()));
        }
        let mut attributes = server_first.split(',');
        let nonce = attributes
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(malformed("no nonce"))?;
        // The server's nonce must extend ours: otherwise this is a replay of another exchange.
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(malformed("the nonce does not extend the client's"));
        }
        let salt = attributes
            .next()
            .and_then(|a| a.strip_prefix("s="))
            .and_then(|s| BASE64.decode(s).ok())
            .ok_or(malformed("no salt"))?;
        let iterations: u32 = attributes
            .next()
            .and_then(|a| a.strip_prefix("i="))
            .and_then(|i| i.parse().ok())
            .filter(|i| *i > 0)
            .ok_or(malformed("no iteration count"))?;
        // A peer must not make this broker spend unbounded CPU on one connection.
        if iterations > MAX_ITERATIONS {
            return Err(ScramClientError::TooManyIterations(iterations));
        }
        // `biws` is base64("n,,"): the GS2 header of `start`, without channel binding.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let (proof, server_signature) = proof_and_server_signature(
            self.mechanism,
            self.password.as_bytes(),
            &salt,
            iterations,
            auth_message.as_bytes(),
        );
        let message = format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes();
        Ok((ScramClientFinal { server_signature }, message))
    }
}

impl ScramClientFinal {
    /// Checks the server-final message: the server proved it holds the credential.
    pub fn verify(&self, server_final: &[u8]) -> Result<(), ScramClientError> {
        let text = std::str::from_utf8(server_final)
            .map_err(|_| ScramClientError::Malformed("not UTF-8"))?;
        if let Some(error) = text.strip_prefix("e=") {
            return Err(ScramClientError::Refused(error.to_string()));
        }
        let signature = text
            .split(',')
            .next()
            .and_then(|a| a.strip_prefix("v="))
            .and_then(|v| BASE64.decode(v).ok())
            .ok_or(ScramClientError::Malformed("no server signature"))?;
        if constant_time_eq(&signature, &self.server_signature) {
            Ok(())
        } else {
            Err(ScramClientError::ServerSignature)
        }
    }
}

/// The client's proof for `auth_message` and the signature the server must answer with
/// (RFC 5802 section 3).
pub(crate) fn proof_and_server_signature(
    mechanism: ScramMechanism,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    auth_message: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let salted = mechanism.salted_password(password, salt, iterations);
    let client_key = mechanism.hmac(&salted, b"Client Key");
    let signature = mechanism.hmac(&mechanism.hash(&client_key), auth_message);
    let proof = client_key
        .iter()
        .zip(&signature)
        .map(|(k, s)| k ^ s)
        .collect();
    let server_key = mechanism.hmac(&salted, b"Server Key");
    (proof, mechanism.hmac(&server_key, auth_message))
}

/// Encodes a SCRAM `saslname` (`,` is `=2C` and `=` is `=3D`).
fn encode_sasl_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::sasl::credentials::{CredentialStore, ScramCredential};
    use crate::security::sasl::{plain, scram};

    fn login(mechanism: SaslMechanism, user: &str, password: &str) -> SaslLogin {
        SaslLogin {
            mechanism,
            username: user.into(),
            password: password.into(),
        }
    }

    fn store(user: &str, password: &str) -> CredentialStore {
        let mut store = CredentialStore::default();
        for mechanism in ScramMechanism::ALL {
            let credential =
                ScramCredential::from_password(mechanism, password.as_bytes(), b"salt", 4096);
            store.insert(user, mechanism, credential);
        }
        store
    }

    #[test]
    fn the_client_authenticates_against_the_brokers_server_side() {
        let store = store("bro,ker=1", "secret");
        for mechanism in ScramMechanism::ALL {
            let me = login(mechanism.sasl(), "bro,ker=1", "secret");
            let (client, first) = ScramClient::start(mechanism, &me).unwrap();
            let server = scram::client_first(mechanism, &store, &first).unwrap();
            let (client, last) = client.answer(server.message().as_bytes()).unwrap();
            let (user, server_final) = scram::client_final(&server, &last).unwrap();
            assert_eq!(user, "bro,ker=1");
            client.verify(server_final.as_bytes()).unwrap();
        }
    }

    #[test]
    fn a_wrong_password_fails_on_the_server_and_a_wrong_server_on_the_client() {
        let mechanism = ScramMechanism::Sha512;
        let store = store("broker", "secret");
        let wrong = login(mechanism.sasl(), "broker", "wrong");
        let (client, first) = ScramClient::start(mechanism, &wrong).unwrap();
        let server = scram::client_first(mechanism, &store, &first).unwrap();
        let (_, last) = client.answer(server.message().as_bytes()).unwrap();
        assert!(scram::client_final(&server, &last).is_err());

        // A server that does not hold the credential cannot make the right signature.
        let right = login(mechanism.sasl(), "broker", "secret");
        let (client, first) = ScramClient::start(mechanism, &right).unwrap();
        let server = scram::client_first(mechanism, &store, &first).unwrap();
        let (client, _) = client.answer(server.message().as_bytes()).unwrap();
        assert_eq!(
            client.verify(b"v=AAAA"),
            Err(ScramClientError::ServerSignature)
        );
        assert!(matches!(
            client.verify(b"e=invalid-proof"),
            Err(ScramClientError::Refused(_))
        ));
    }

    #[test]
    fn rfc7677_client_messages() {
        // RFC 7677 section 3: user, password, client nonce and the server's answers.
        let me = login(SaslMechanism::ScramSha256, "user", "pencil");
        let (client, first) =
            ScramClient::start_with_nonce(ScramMechanism::Sha256, &me, "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(first, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                            s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let (client, last) = client.answer(server_first.as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8(last).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        client
            .verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
    }

    #[test]
    fn bad_server_messages_are_refused() {
        let me = login(SaslMechanism::ScramSha256, "user", "pencil");
        let start = || ScramClient::start_with_nonce(ScramMechanism::Sha256, &me, "abc").0;
        for bad in [
            &b"r=xyz,s=AAAA,i=4096"[..],
            b"r=abc,s=AAAA,i=4096",
            b"r=abcd,s=!!,i=4096",
            b"r=abcd,s=AAAA,i=0",
            b"r=abcd,s=AAAA",
            b"\xff",
        ] {
            assert!(
                matches!(start().answer(bad), Err(ScramClientError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            start().answer(b"r=abcd,s=AAAA,i=100000").err(),
            Some(ScramClientError::TooManyIterations(100000))
        );
    }

    #[test]
    fn the_plain_token_is_accepted_by_the_brokers_server_side() {
        let store = store("broker", "secret");
        let me = login(SaslMechanism::Plain, "broker", "secret");
        assert_eq!(
            plain::authenticate(&store, &plain_token(&me)).as_deref(),
            Ok("broker")
        );
        let wrong = login(SaslMechanism::Plain, "broker", "nope");
        assert!(plain::authenticate(&store, &plain_token(&wrong)).is_err());
    }

    #[test]
    fn the_debug_form_hides_the_password() {
        let me = login(SaslMechanism::Plain, "broker", "hunter2");
        assert!(!format!("{me:?}").contains("hunter2"));
    }
}
