//! The server side of SCRAM (RFC 5802, with SHA-256 and SHA-512 as RFC 7677 and Kafka's
//! KIP-84): two round trips, after which the client has proven it knows the password and the
//! broker has proven it holds the credential.
//!
//! Not supported, as in Kafka: channel binding (`p=` in the GS2 header). Kafka's delegation-token
//! extension (`tokenauth=true`) is refused: there are no delegation tokens here.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::credentials::{
    constant_time_eq, fill_random, CredentialStore, ScramCredential, ScramMechanism,
};

/// Bytes of the server's nonce part (before base64).
pub const SERVER_NONCE_BYTES: usize = 24;

/// Why an exchange failed; the text goes to the client in SaslAuthenticate's error message (it
/// says no more than Kafka's messages do: an unknown user and a wrong password read the same).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("Authentication failed during authentication due to invalid credentials with SASL mechanism {0}")]
    InvalidCredentials(&'static str),
    #[error("SCRAM channel binding is not supported")]
    ChannelBinding,
    #[error("SCRAM delegation tokens are not supported")]
    TokenAuth,
    #[error("the system's random source failed")]
    Random,
}

/// What the server remembers between the two round trips.
pub struct ServerFirst {
    mechanism: ScramMechanism,
    user: String,
    credential: ScramCredential,
    /// The GS2 header as the client sent it (the client-final `c=` attribute must encode it).
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl ServerFirst {
    /// The message to send back to the client.
    pub fn message(&self) -> &str {
        &self.server_first
    }
}

/// Handles the client-first message: returns the server-first state (its message goes to the
/// client), or why the client is refused.
pub fn client_first(
    mechanism: ScramMechanism,
    credentials: &CredentialStore,
    message: &[u8],
) -> Result<ServerFirst, ScramError> {
    let mut server_nonce = [0u8; SERVER_NONCE_BYTES];
    fill_random(&mut server_nonce).map_err(|_| ScramError::Random)?;
    client_first_with_nonce(mechanism, credentials, message, &server_nonce)
}

/// `client_first` with the server's nonce part given: the whole of the parsing and checking, and
/// nothing random, so a fuzz target (`fuzz/`, `sasl_tokens`) can replay an exchange exactly.
/// The broker calls it only through `client_first`, with a fresh random nonce.
pub fn client_first_with_nonce(
    mechanism: ScramMechanism,
    credentials: &CredentialStore,
    message: &[u8],
    server_nonce: &[u8; SERVER_NONCE_BYTES],
) -> Result<ServerFirst, ScramError> {
    let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    // gs2-header = gs2-cbind-flag "," [ authzid ] ","
    let (flag, rest) = text
        .split_once(',')
        .ok_or(ScramError::Malformed("no GS2 header"))?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err(ScramError::ChannelBinding),
        _ => return Err(ScramError::Malformed("bad GS2 channel binding flag")),
    }
    let (authzid, bare) = rest
        .split_once(',')
        .ok_or(ScramError::Malformed("no GS2 header"))?;
    let gs2_header = format!("{flag},{authzid},");
    let mut attributes = bare.split(',');
    let user = attributes
        .next()
        .and_then(|a| a.strip_prefix("n="))
        .ok_or(ScramError::Malformed("no user name"))
        .and_then(decode_sasl_name)?;
    let client_nonce = attributes
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic() && b != b','))
        .ok_or(ScramError::Malformed("no client nonce"))?;
    for extension in attributes {
        if extension.starts_with("tokenauth=true") {
            return Err(ScramError::TokenAuth);
        }
    }
    if let Some(authzid) = authzid.strip_prefix("a=") {
        if decode_sasl_name(authzid)? != user {
            return Err(ScramError::Malformed(
                "authorization id differs from the user",
            ));
        }
    }
    let credential = credentials
        .get(&user, mechanism)
        .cloned()
        .ok_or(ScramError::InvalidCredentials(mechanism.sasl().name()))?;
    let nonce = format!("{client_nonce}{}", BASE64.encode(server_nonce));
    let server_first = format!(
        "r={nonce},s={},i={}",
        BASE64.encode(&credential.salt),
        credential.iterations
    );
    Ok(ServerFirst {
        mechanism,
        user,
        credential,
        gs2_header,
        client_first_bare: bare.to_string(),
        server_first,
        nonce,
    })
}

/// Handles the client-final message: on a valid proof, returns the user and the server-final
/// message (the server's signature).
pub fn client_final(state: &ServerFirst, message: &[u8]) -> Result<(String, String), ScramError> {
    let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    let (without_proof, proof) = text
        .rsplit_once(",p=")
        .ok_or(ScramError::Malformed("no client proof"))?;
    let mut attributes = without_proof.split(',');
    let binding = attributes
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .ok_or(ScramError::Malformed("no channel binding"))?;
    if BASE64.decode(binding).ok().as_deref() != Some(state.gs2_header.as_bytes()) {
        return Err(ScramError::Malformed(
            "channel binding differs from the GS2 header",
        ));
    }
    let nonce = attributes
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(ScramError::Malformed("no nonce"))?;
    // Kafka's check (`endsWith`): librdkafka sends the client nonce once more in front of the
    // combined nonce, and Kafka accepts that.
    if !nonce.ends_with(&state.nonce) {
        return Err(ScramError::Malformed(
            "the nonce is not the one the server sent",
        ));
    }
    let proof = BASE64
        .decode(proof)
        .map_err(|_| ScramError::Malformed("the proof is not base64"))?;
    let mechanism = state.mechanism;
    let auth_message = format!(
        "{},{},{}",
        state.client_first_bare, state.server_first, without_proof
    );
    let client_signature = mechanism.hmac(&state.credential.stored_key, auth_message.as_bytes());
    if proof.len() != client_signature.len() {
        return Err(ScramError::InvalidCredentials(mechanism.sasl().name()));
    }
    let client_key: Vec<u8> = proof
        .iter()
        .zip(&client_signature)
        .map(|(p, s)| p ^ s)
        .collect();
    if !constant_time_eq(&mechanism.hash(&client_key), &state.credential.stored_key) {
        return Err(ScramError::InvalidCredentials(mechanism.sasl().name()));
    }
    let server_signature = mechanism.hmac(&state.credential.server_key, auth_message.as_bytes());
    Ok((
        state.user.clone(),
        format!("v={}", BASE64.encode(server_signature)),
    ))
}

/// Decodes a SCRAM `saslname` (`=2C` is `,` and `=3D` is `=`; any other `=` is an error).
fn decode_sasl_name(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad escape in a user name")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(ScramError::Malformed("empty user name"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client's side of the exchange, as RFC 5802 section 3 computes it.
    fn client_final_message(
        mechanism: ScramMechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
    ) -> (String, Vec<u8>) {
        client_final_with_nonce_prefix(mechanism, password, client_first_bare, server_first, "")
    }

    /// As `client_final_message`, with `prefix` sent in front of the nonce (librdkafka sends the
    /// client nonce there once more).
    fn client_final_with_nonce_prefix(
        mechanism: ScramMechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
        prefix: &str,
    ) -> (String, Vec<u8>) {
        let mut fields = server_first.split(',');
        let nonce = fields.next().unwrap().strip_prefix("r=").unwrap();
        let salt = BASE64
            .decode(fields.next().unwrap().strip_prefix("s=").unwrap())
            .unwrap();
        let iterations: u32 = fields
            .next()
            .unwrap()
            .strip_prefix("i=")
            .unwrap()
            .parse()
            .unwrap();
        let without_proof = format!("c={},r={prefix}{nonce}", BASE64.encode("n,,"));
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let (proof, server_signature) = super::super::client::proof_and_server_signature(
            mechanism,
            password.as_bytes(),
            &salt,
            iterations,
            auth_message.as_bytes(),
        );
        (
            format!("{without_proof},p={}", BASE64.encode(proof)),
            server_signature,
        )
    }

    fn store() -> CredentialStore {
        let mut store = CredentialStore::default();
        store
            .add_scram("SCRAM-SHA-512=[name=admin,password=admin-secret] SCRAM-SHA-256=[name=u=2Cx,password=pw]")
            .unwrap();
        store
    }

    #[test]
    fn a_client_with_the_password_authenticates_and_checks_the_server() {
        let store = store();
        for (mechanism, user, wire_user, password) in [
            (ScramMechanism::Sha512, "admin", "admin", "admin-secret"),
            (ScramMechanism::Sha256, "u=2Cx", "u=3D2Cx", "pw"),
        ] {
            let bare = format!("n={wire_user},r=fyko+d2lbbFgONRv9qkxdawL");
            let state = client_first(mechanism, &store, format!("n,,{bare}").as_bytes()).unwrap();
            assert!(state.message().starts_with("r=fyko+d2lbbFgONRv9qkxdawL"));
            let (message, server_signature) =
                client_final_message(mechanism, password, &bare, state.message());
            let (authenticated, server_final) = client_final(&state, message.as_bytes()).unwrap();
            assert_eq!(authenticated, user);
            assert_eq!(
                server_final,
                format!("v={}", BASE64.encode(server_signature))
            );
        }
    }

    #[test]
    fn rfc7677_example_exchange_verifies() {
        // RFC 7677 section 3: user "user", password "pencil".
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let state = ServerFirst {
            mechanism: ScramMechanism::Sha256,
            user: "user".to_string(),
            credential: ScramCredential::from_password(
                ScramMechanism::Sha256,
                b"pencil",
                &salt,
                4096,
            ),
            gs2_header: "n,,".to_string(),
            client_first_bare: "n=user,r=rOprNGfwEbeRWgbNEkqO".to_string(),
            server_first: format!("r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
            nonce: nonce.to_string(),
        };
        let client_final_message =
            format!("c=biws,r={nonce},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        let (user, server_final) = client_final(&state, client_final_message.as_bytes()).unwrap();
        assert_eq!(user, "user");
        assert_eq!(
            server_final,
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn a_wrong_password_an_unknown_user_and_a_changed_nonce_fail() {
        let store = store();
        let mechanism = ScramMechanism::Sha512;
        let bare = "n=admin,r=abc";
        let state = client_first(mechanism, &store, format!("n,,{bare}").as_bytes()).unwrap();
        let (message, _) = client_final_message(mechanism, "wrong", bare, state.message());
        assert!(matches!(
            client_final(&state, message.as_bytes()),
            Err(ScramError::InvalidCredentials(_))
        ));
        let forged = format!("c=biws,r=abcOTHER,p={}", BASE64.encode([0u8; 64]));
        // librdkafka's form (the client nonce repeated in front) is accepted, as Kafka does.
        let (repeated, _) =
            client_final_with_nonce_prefix(mechanism, "admin-secret", bare, state.message(), "abc");
        assert!(client_final(&state, repeated.as_bytes()).is_ok());
        assert!(matches!(
            client_final(&state, forged.as_bytes()),
            Err(ScramError::Malformed(_))
        ));
        assert!(matches!(
            client_first(mechanism, &store, b"n,,n=nobody,r=abc"),
            Err(ScramError::InvalidCredentials(_))
        ));
        // The user exists for SHA-512 only.
        assert!(client_first(ScramMechanism::Sha256, &store, b"n,,n=admin,r=abc").is_err());
    }

    #[test]
    fn malformed_first_messages_are_refused() {
        let store = store();
        for bad in [
            &b""[..],
            b"n,,",
            b"x,,n=admin,r=abc",
            b"n,,r=abc",
            b"n,,n=admin",
            b"n,,n=adm=in,r=abc",
            b"n,a=other,n=admin,r=abc",
            b"\xff\xfe",
        ] {
            assert!(matches!(
                client_first(ScramMechanism::Sha512, &store, bad),
                Err(ScramError::Malformed(_))
            ));
        }
        assert_eq!(
            client_first(
                ScramMechanism::Sha512,
                &store,
                b"p=tls-unique,,n=admin,r=abc"
            )
            .err(),
            Some(ScramError::ChannelBinding)
        );
        assert_eq!(
            client_first(
                ScramMechanism::Sha512,
                &store,
                b"n,,n=admin,r=abc,tokenauth=true"
            )
            .err(),
            Some(ScramError::TokenAuth)
        );
    }
}
