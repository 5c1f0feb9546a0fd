//! SCRAM credentials, kept as Kafka keeps them: salt, iteration count, stored key and server key
//! (RFC 5802 section 3). The password itself is never stored: it is hashed once, when the
//! credential is made.
//!
//! A store is built at start from `--add-scram` (Kafka's `kafka-storage format --add-scram`
//! syntax); the cluster's store is the metadata image's, which every shard reads
//! (`registry::CredentialRegistry`).

use std::collections::HashMap;
use std::fmt;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use super::mechanism::SaslMechanism;

/// Fewest PBKDF2 iterations Kafka accepts for a SCRAM credential (its `ScramMechanism`).
pub const MIN_ITERATIONS: u32 = 4096;
/// Most PBKDF2 iterations Kafka accepts: bounds the CPU one authentication costs.
pub const MAX_ITERATIONS: u32 = 16384;
/// Iterations of a credential made without an explicit count (Kafka's default).
pub const DEFAULT_ITERATIONS: u32 = 4096;
/// Length of a generated salt (Kafka's `ScramFormatter` uses a random string of this order).
pub const SALT_BYTES: usize = 32;

/// The SCRAM hash functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    pub fn sasl(self) -> SaslMechanism {
        match self {
            ScramMechanism::Sha256 => SaslMechanism::ScramSha256,
            ScramMechanism::Sha512 => SaslMechanism::ScramSha512,
        }
    }

    pub fn of(mechanism: SaslMechanism) -> Option<ScramMechanism> {
        match mechanism {
            SaslMechanism::ScramSha256 => Some(ScramMechanism::Sha256),
            SaslMechanism::ScramSha512 => Some(ScramMechanism::Sha512),
            SaslMechanism::Plain => None,
        }
    }

    /// Kafka's mechanism type in DescribeUserScramCredentials (1: SHA-256, 2: SHA-512).
    pub fn kafka_type(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    /// The mechanism of Kafka's type number (`ScramMechanism.fromType`).
    pub fn of_kafka_type(kafka_type: i8) -> Option<ScramMechanism> {
        ScramMechanism::ALL
            .into_iter()
            .find(|m| m.kafka_type() == kafka_type)
    }

    /// HMAC(key, data).
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
                    .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key)
                    .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    /// H(data).
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// Hi(password, salt, iterations): PBKDF2 with HMAC of this hash.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                let mut out = vec![0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out
            }
            ScramMechanism::Sha512 => {
                let mut out = vec![0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out
            }
        }
    }
}

/// One user's credential for one SCRAM mechanism.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub iterations: u32,
    /// H(ClientKey), where ClientKey = HMAC(SaltedPassword, "Client Key").
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
}

impl fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScramCredential {{ iterations: {} }}", self.iterations)
    }
}

impl ScramCredential {
    /// Derives the credential from a password (RFC 5802 section 3).
    pub fn from_password(
        mechanism: ScramMechanism,
        password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> ScramCredential {
        let salted = mechanism.salted_password(password, salt, iterations);
        ScramCredential::from_salted_password(mechanism, &salted, salt, iterations)
    }

    /// The credential of a salted password (AlterUserScramCredentials sends that, never the
    /// password).
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salted_password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> ScramCredential {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
        }
    }

    /// Whether `password` is the one this credential was made from (PLAIN uses this).
    pub fn matches_password(&self, mechanism: ScramMechanism, password: &[u8]) -> bool {
        let derived =
            ScramCredential::from_password(mechanism, password, &self.salt, self.iterations);
        constant_time_eq(&derived.stored_key, &self.stored_key)
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Fills `buf` from the system's secure random source.
pub fn fill_random(buf: &mut [u8]) -> Result<(), CredentialError> {
    crate::security::tls::crypto_provider()
        .secure_random
        .fill(buf)
        .map_err(|_| CredentialError::Random)
}

/// Why a credential cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("`{text}`: {reason} (expected MECHANISM=[name=USER,password=PASSWORD], e.g. SCRAM-SHA-512=[name=admin,password=admin-secret])")]
    Syntax { text: String, reason: String },
    #[error("iterations {0} is outside Kafka's range {MIN_ITERATIONS}..={MAX_ITERATIONS}")]
    Iterations(u32),
    #[error("the system's random source failed")]
    Random,
}

/// Every user's SCRAM credentials.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct CredentialStore {
    users: HashMap<(String, ScramMechanism), ScramCredential>,
}

impl fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut users: Vec<String> = self
            .users
            .keys()
            .map(|(user, m)| format!("{user}/{}", m.sasl()))
            .collect();
        users.sort();
        write!(f, "CredentialStore {{ {} }}", users.join(", "))
    }
}

impl CredentialStore {
    pub fn get(&self, user: &str, mechanism: ScramMechanism) -> Option<&ScramCredential> {
        self.users.get(&(user.to_string(), mechanism))
    }

    pub fn insert(&mut self, user: &str, mechanism: ScramMechanism, credential: ScramCredential) {
        self.users.insert((user.to_string(), mechanism), credential);
    }

    pub fn remove(&mut self, user: &str, mechanism: ScramMechanism) {
        self.users.remove(&(user.to_string(), mechanism));
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// How many (user, mechanism) credentials there are.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Every credential: (user, mechanism, credential), in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, ScramMechanism, &ScramCredential)> {
        self.users
            .iter()
            .map(|((user, mechanism), credential)| (user.as_str(), *mechanism, credential))
    }

    /// Every credential ordered by user, then Kafka's mechanism type (a snapshot is written the
    /// same way on every node).
    pub fn sorted_entries(&self) -> Vec<(&str, ScramMechanism, &ScramCredential)> {
        let mut entries: Vec<_> = self.entries().collect();
        entries.sort_by_key(|(user, mechanism, _)| (*user, mechanism.kafka_type()));
        entries
    }

    /// Adds the credentials of an `--add-scram` value: one or more
    /// `SCRAM-SHA-512=[name=admin,password=admin-secret]` entries (optionally with
    /// `iterations=N` and `salt=BASE64`), separated by spaces or `;`.
    pub fn add_scram(&mut self, text: &str) -> Result<(), CredentialError> {
        // All or nothing: a bad entry adds none of them.
        let parsed = split_entries(text)?
            .into_iter()
            .map(parse_entry)
            .collect::<Result<Vec<_>, _>>()?;
        for (mechanism, user, credential) in parsed {
            self.insert(&user, mechanism, credential);
        }
        Ok(())
    }
}

/// Splits `A=[...] B=[...]` into its entries (a `]` ends one).
fn split_entries(text: &str) -> Result<Vec<&str>, CredentialError> {
    let mut entries = Vec::new();
    let mut rest = text.trim_matches(|c: char| c.is_whitespace() || c == ';' || c == ',');
    while !rest.is_empty() {
        let end = rest.find(']').ok_or_else(|| CredentialError::Syntax {
            text: text.to_string(),
            reason: "no closing `]`".to_string(),
        })?;
        entries.push(&rest[..=end]);
        rest =
            rest[end + 1..].trim_start_matches(|c: char| c.is_whitespace() || c == ';' || c == ',');
    }
    Ok(entries)
}

fn parse_entry(entry: &str) -> Result<(ScramMechanism, String, ScramCredential), CredentialError> {
    let syntax = |reason: &str| CredentialError::Syntax {
        text: entry.to_string(),
        reason: reason.to_string(),
    };
    let (name, body) = entry.split_once('=').ok_or_else(|| syntax("no `=`"))?;
    let mechanism = name
        .trim()
        .parse::<SaslMechanism>()
        .ok()
        .and_then(ScramMechanism::of)
        .ok_or_else(|| syntax("the mechanism must be SCRAM-SHA-256 or SCRAM-SHA-512"))?;
    let body = body
        .trim()
        .strip_prefix('[')
        .and_then(|b| b.strip_suffix(']'))
        .ok_or_else(|| syntax("the attributes must be in [...]"))?;
    let (mut user, mut password, mut iterations, mut salt) = (None, None, DEFAULT_ITERATIONS, None);
    for pair in body.split(',').filter(|p| !p.trim().is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| syntax("an attribute has no `=`"))?;
        let value = value.trim().trim_matches('"');
        match key.trim() {
            "name" => user = Some(value.to_string()),
            "password" => password = Some(value.to_string()),
            "iterations" => {
                iterations = value
                    .parse()
                    .map_err(|_| syntax("iterations is not a number"))?
            }
            "salt" => {
                salt = Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(value)
                        .map_err(|_| syntax("salt is not base64"))?,
                )
            }
            _ => {
                return Err(syntax(
                    "unknown attribute (name, password, iterations, salt)",
                ))
            }
        }
    }
    let user = user
        .filter(|u| !u.is_empty())
        .ok_or_else(|| syntax("no name"))?;
    let password = password.ok_or_else(|| syntax("no password"))?;
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        return Err(CredentialError::Iterations(iterations));
    }
    let salt = match salt {
        Some(salt) => salt,
        None => {
            let mut salt = vec![0u8; SALT_BYTES];
            fill_random(&mut salt)?;
            salt
        }
    };
    let credential =
        ScramCredential::from_password(mechanism, password.as_bytes(), &salt, iterations);
    Ok((mechanism, user, credential))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7677_test_vector_gives_the_stored_and_server_keys() {
        // RFC 7677 section 3: user "user", password "pencil", salt and 4096 iterations below.
        let salt = base64::engine::general_purpose::STANDARD
            .decode("W22ZaJ0SNY7soEsUEjb6gQ==")
            .unwrap();
        let credential =
            ScramCredential::from_password(ScramMechanism::Sha256, b"pencil", &salt, 4096);
        let salted = ScramMechanism::Sha256.salted_password(b"pencil", &salt, 4096);
        let client_key = ScramMechanism::Sha256.hmac(&salted, b"Client Key");
        assert_eq!(
            credential.stored_key,
            ScramMechanism::Sha256.hash(&client_key)
        );
        assert!(credential.matches_password(ScramMechanism::Sha256, b"pencil"));
        assert!(!credential.matches_password(ScramMechanism::Sha256, b"pencil2"));
    }

    #[test]
    fn add_scram_takes_kafkas_syntax() {
        let mut store = CredentialStore::default();
        store
            .add_scram("SCRAM-SHA-512=[name=admin,password=admin-secret] SCRAM-SHA-256=[name=alice,password=\"a,b\",iterations=8192]")
            .unwrap_err(); // a quoted comma is not supported: the error says where
        store
            .add_scram("SCRAM-SHA-512=[name=admin,password=admin-secret];SCRAM-SHA-256=[name=alice,password=\"al\",iterations=8192]")
            .unwrap();
        let admin = store.get("admin", ScramMechanism::Sha512).unwrap();
        assert_eq!(admin.iterations, DEFAULT_ITERATIONS);
        assert!(admin.matches_password(ScramMechanism::Sha512, b"admin-secret"));
        assert_eq!(
            store
                .get("alice", ScramMechanism::Sha256)
                .unwrap()
                .iterations,
            8192
        );
        assert!(store.get("admin", ScramMechanism::Sha256).is_none());
        assert!(!format!("{store:?}").contains("secret"));
    }

    #[test]
    fn add_scram_rejects_bad_values_with_a_reason() {
        let mut store = CredentialStore::default();
        for bad in [
            "PLAIN=[name=a,password=b]",
            "SCRAM-SHA-512=[password=b]",
            "SCRAM-SHA-512=[name=a]",
            "SCRAM-SHA-512=[name=a,password=b",
            "SCRAM-SHA-512=[name=a,password=b,colour=red]",
        ] {
            assert!(
                matches!(store.add_scram(bad), Err(CredentialError::Syntax { .. })),
                "{bad}"
            );
        }
        assert_eq!(
            store.add_scram("SCRAM-SHA-512=[name=a,password=b,iterations=10]"),
            Err(CredentialError::Iterations(10))
        );
        assert!(store.is_empty());
    }
}
