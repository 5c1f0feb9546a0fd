//! PLAIN (RFC 4616): the client sends `authzid NUL authcid NUL password` once. The password is
//! checked against the user's SCRAM credential (SHA-512 first, then SHA-256), so one credential
//! store serves both mechanisms; use PLAIN only over TLS (SASL_SSL).

use super::credentials::{CredentialStore, ScramMechanism};

/// Why a PLAIN token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlainError {
    #[error("malformed PLAIN token: {0}")]
    Malformed(&'static str),
    #[error("Authentication failed: Invalid username or password")]
    InvalidCredentials,
}

/// Checks a PLAIN token; returns the authenticated user.
pub fn authenticate(credentials: &CredentialStore, token: &[u8]) -> Result<String, PlainError> {
    let mut fields = token.split(|b| *b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(PlainError::Malformed(
            "expected authzid NUL user NUL password",
        ));
    };
    let user = std::str::from_utf8(user).map_err(|_| PlainError::Malformed("user is not UTF-8"))?;
    if user.is_empty() {
        return Err(PlainError::Malformed("empty user"));
    }
    if !authzid.is_empty() && authzid != user.as_bytes() {
        return Err(PlainError::Malformed(
            "authorization id differs from the user",
        ));
    }
    let accepted = [ScramMechanism::Sha512, ScramMechanism::Sha256]
        .into_iter()
        .find_map(|m| credentials.get(user, m).map(|c| (m, c)))
        .is_some_and(|(mechanism, credential)| credential.matches_password(mechanism, password));
    if accepted {
        Ok(user.to_string())
    } else {
        Err(PlainError::InvalidCredentials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_checks_the_password_against_the_scram_credential() {
        let mut store = CredentialStore::default();
        store
            .add_scram("SCRAM-SHA-256=[name=alice,password=alice-secret]")
            .unwrap();
        assert_eq!(
            authenticate(&store, b"\0alice\0alice-secret"),
            Ok("alice".to_string())
        );
        assert_eq!(
            authenticate(&store, b"alice\0alice\0alice-secret"),
            Ok("alice".to_string())
        );
        assert_eq!(
            authenticate(&store, b"\0alice\0wrong"),
            Err(PlainError::InvalidCredentials)
        );
        assert_eq!(
            authenticate(&store, b"\0bob\0alice-secret"),
            Err(PlainError::InvalidCredentials)
        );
        for bad in [
            &b"alice"[..],
            b"\0alice",
            b"\0\0pw",
            b"\0a\0b\0c",
            b"bob\0alice\0alice-secret",
        ] {
            assert!(
                matches!(authenticate(&store, bad), Err(PlainError::Malformed(_))),
                "{bad:?}"
            );
        }
    }
}
