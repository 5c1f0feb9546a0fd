//! Kafka principals of clients: `User:ANONYMOUS` on PLAINTEXT and SSL without client certificates,
//! `User:<subject>` for a TLS client certificate (the subject as an RFC 2253 string, as Kafka's
//! default `ssl.principal.mapping.rules` gives it: `User:CN=app1,OU=eng,O=Acme\, Inc.,C=US`), and
//! `User:<name>` after SASL.
//!
//! The subject is read from the certificate's DER with a small reader of the few structures on the
//! way to it (Certificate, TBSCertificate, Name); rustls has already verified the certificate.

use std::fmt::Write;

/// The principal of a client that has not authenticated.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// Why a certificate's subject could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read the certificate subject: {0}")]
pub struct SubjectError(&'static str);

/// The principal of a client certificate (DER): `User:` and its subject in RFC 2253 form.
pub fn of_certificate(der: &[u8]) -> Result<String, SubjectError> {
    Ok(format!("User:{}", subject_rfc2253(der)?))
}

/// The subject of a certificate (DER) as RFC 2253 writes it: RDNs last first, `,` between
/// them, `+` inside a multi-valued RDN, special characters escaped.
pub fn subject_rfc2253(der: &[u8]) -> Result<String, SubjectError> {
    let (certificate, _) = element(der, SEQUENCE)?;
    let (mut tbs, _) = element(certificate, SEQUENCE)?;
    // [0] EXPLICIT version, optional.
    if tbs.first() == Some(&0xA0) {
        tbs = element(tbs, 0xA0)?.1;
    }
    let mut rest = tbs;
    // serialNumber, signature, issuer, validity: skipped.
    for tag in [INTEGER, SEQUENCE, SEQUENCE, SEQUENCE] {
        rest = element(rest, tag)?.1;
    }
    let (mut name, _) = element(rest, SEQUENCE)?;
    let mut rdns = Vec::new();
    while !name.is_empty() {
        let (mut set, after) = element(name, SET)?;
        name = after;
        let mut values = Vec::new();
        while !set.is_empty() {
            let (attribute, after) = element(set, SEQUENCE)?;
            set = after;
            let (oid, value) = element(attribute, OID)?;
            let value_tag = *value.first().ok_or(SubjectError("empty attribute value"))?;
            let (value_bytes, _) = element(value, value_tag)?;
            values.push(format!(
                "{}={}",
                attribute_name(oid),
                attribute_value(value_tag, value_bytes, value)
            ));
        }
        rdns.push(values.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
/// Text string types a name attribute may use: UTF8String, PrintableString, T61String,
/// IA5String, BMPString is decoded apart.
const TEXT_TAGS: [u8; 4] = [0x0C, 0x13, 0x14, 0x16];
const BMP_STRING: u8 = 0x1E;

/// Reads one DER element of `tag` at the start of `input`: (its contents, what follows).
fn element(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), SubjectError> {
    let (&found, rest) = input.split_first().ok_or(SubjectError("truncated"))?;
    if found != tag {
        return Err(SubjectError("unexpected element"));
    }
    let (&first, mut rest) = rest.split_first().ok_or(SubjectError("truncated length"))?;
    let length = if first < 0x80 {
        usize::from(first)
    } else {
        let bytes = usize::from(first & 0x7F);
        if bytes == 0 || bytes > 4 || rest.len() < bytes {
            return Err(SubjectError("bad length"));
        }
        let length = rest[..bytes]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        rest = &rest[bytes..];
        length
    };
    if rest.len() < length {
        return Err(SubjectError("element longer than the certificate"));
    }
    Ok((&rest[..length], &rest[length..]))
}

/// RFC 2253's keyword for an attribute type, or its dotted OID.
fn attribute_name(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 0x03] => "CN".into(),
        [0x55, 0x04, 0x06] => "C".into(),
        [0x55, 0x04, 0x07] => "L".into(),
        [0x55, 0x04, 0x08] => "ST".into(),
        [0x55, 0x04, 0x09] => "STREET".into(),
        [0x55, 0x04, 0x0A] => "O".into(),
        [0x55, 0x04, 0x0B] => "OU".into(),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xF2, 0x2C, 0x64, 0x01, 0x19] => "DC".into(),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xF2, 0x2C, 0x64, 0x01, 0x01] => "UID".into(),
        _ => dotted(oid),
    }
}

fn dotted(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for byte in oid {
        value = (value << 7) | u64::from(byte & 0x7F);
        if byte & 0x80 == 0 {
            arcs.push(value);
            value = 0;
        }
    }
    let mut out = String::new();
    if let Some((&first, rest)) = arcs.split_first() {
        let (a, b) = if first < 80 {
            (first / 40, first % 40)
        } else {
            (2, first - 80)
        };
        let _ = write!(out, "{a}.{b}");
        for arc in rest {
            let _ = write!(out, ".{arc}");
        }
    }
    out
}

/// A value as RFC 2253 writes it: text escaped, anything else `#` and the hex of its DER.
fn attribute_value(tag: u8, contents: &[u8], der: &[u8]) -> String {
    let text = if TEXT_TAGS.contains(&tag) {
        std::str::from_utf8(contents).ok().map(str::to_string)
    } else if tag == BMP_STRING && contents.chunks_exact(2).remainder().is_empty() {
        let units: Vec<u16> = contents
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16(&units).ok()
    } else {
        None
    };
    match text {
        Some(text) => escape(&text),
        None => {
            let mut hex = String::from("#");
            for byte in der {
                let _ = write!(hex, "{byte:02x}");
            }
            hex
        }
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let last = text.chars().count().saturating_sub(1);
    for (at, c) in text.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (at == 0 && (c == '#' || c == ' '))
            || (at == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;

    /// `openssl req -x509 -newkey ec ... -subj "/C=US/O=Acme, Inc./OU=eng+OU=ops/CN=app1"
    /// -multivalue-rdn`.
    const CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----
MIIB6TCCAZCgAwIBAgITLHeEZKhtxssfPILFItfnNNnsXDAKBggqhkjOPQQDAjBL
MQswCQYDVQQGEwJVUzETMBEGA1UECgwKQWNtZSwgSW5jLjEYMAoGA1UECwwDZW5n
MAoGA1UECwwDb3BzMQ0wCwYDVQQDDARhcHAxMB4XDTI2MTIwNzA1MjYxNFoXDTM2
MTIwNDA1MjYxNFowSzELMAkGA1UEBhMCVVMxEzARBgNVBAoMCkFjbWUsIEluYy4x
GDAKBgNVBAsMA2VuZzAKBgNVBAsMA29wczENMAsGA1UEAwwEYXBwMTBZMBMGByqG
SM49AgEGCCqGSM49AwEHA0IABAyRYYJHozE4UKu61Hsj/XRzFZVezNVod2BFM5ZW
uFdW2WLN7hh/u28KDQqVMqX9k2ImfTgfY9yxH/DobqkXhPKjUzBRMB0GA1UdDgQW
BBT/CTaBabFXhcyIw+J0WgBsEciGbTAfBgNVHSMEGDAWgBT/CTaBabFXhcyIw+J0
WgBsEciGbTAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIG3oiMlE
4r7dVWCbHCcJYxpLoqiXVK7KWxEvkAkjk09BAiA+HtQ8y4gQomL7xluHA2G6RKRQ
Hgb+8lnagu6ut/iJxw==
-----END CERTIFICATE-----
";

    #[test]
    fn the_subject_becomes_an_rfc2253_principal() {
        let der = CertificateDer::from_pem_slice(CERTIFICATE.as_bytes()).unwrap();
        assert_eq!(
            of_certificate(&der).unwrap(),
            "User:CN=app1,OU=eng+OU=ops,O=Acme\\, Inc.,C=US"
        );
    }

    #[test]
    fn truncated_or_foreign_input_is_an_error() {
        let der = CertificateDer::from_pem_slice(CERTIFICATE.as_bytes()).unwrap();
        for cut in [0, 1, 10, 100, 200] {
            assert!(subject_rfc2253(&der[..cut]).is_err(), "cut at {cut}");
        }
        assert!(subject_rfc2253(b"\x04\x02hi").is_err());
    }

    #[test]
    fn oids_and_escapes_follow_rfc2253() {
        assert_eq!(
            dotted(&[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x01]),
            "1.2.840.113549.1.9.1"
        );
        assert_eq!(escape(" #a,b+c "), "\\ #a\\,b\\+c\\ ");
        assert_eq!(escape("#x"), "\\#x");
    }
}
