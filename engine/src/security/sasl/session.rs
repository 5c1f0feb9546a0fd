//! One connection's SASL exchange on a SASL_PLAINTEXT or SASL_SSL listener, as Kafka's
//! `SaslServerAuthenticator`: until the client is authenticated only ApiVersions, SaslHandshake
//! (v1) and SaslAuthenticate are served; any other request closes the connection. A refused
//! handshake or authentication is answered with Kafka's error code (UNSUPPORTED_SASL_MECHANISM
//! with the enabled list, SASL_AUTHENTICATION_FAILED, ILLEGAL_SASL_STATE), then the connection is
//! closed.
//!
//! The exchange runs in the connection's reader, in request order, before any handler: a client
//! sends each SASL request only after the previous answer, so this costs no pipelining.
//!
//! Re-authentication (KIP-368), as Kafka: with `connections.max.reauth.ms` above 0 a session lasts
//! that long (SaslAuthenticate v1+ tells the client, which re-authenticates before the end with a
//! SaslHandshake and SaslAuthenticate on the same connection); a request arriving after the end
//! closes the connection (`expired`). A re-authentication must keep the mechanism and the
//! principal, and may start at most once a second; a password changed or a user removed in the
//! meantime fails it, which closes the connection. With 0 sessions never expire and a SaslHandshake
//! after authentication is answered ILLEGAL_SASL_STATE (`refuse_out_of_state`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use ringbroker_protocol::api_versions::is_served;
use ringbroker_protocol::frame::{self, Request};

use super::credentials::ScramMechanism;
use super::mechanism::SaslMechanism;
use super::registry::CredentialRegistry;
use super::{plain, scram};
use crate::server::dispatch::{decode_body, respond, HandlerError, Outcome};

/// The first SaslHandshake version after which tokens travel in SaslAuthenticate requests.
pub const SASL_HANDSHAKE_FRAMED_VERSION: i16 = 1;

/// Kafka's shortest spacing of re-authentications on one connection (`KafkaChannel`'s
/// MIN_REAUTH_INTERVAL_ONE_SECOND_NANOS): a SaslHandshake sooner is answered ILLEGAL_SASL_STATE.
pub const MIN_REAUTHENTICATION_INTERVAL: Duration = Duration::from_secs(1);

/// What the connection does with a request while the client is not authenticated yet.
pub enum Gate {
    /// Serve it as usual (ApiVersions).
    Pass,
    /// Answer with these bytes (a whole response frame) and go on reading.
    Reply(Bytes),
    /// Answer with these bytes, then close the connection.
    ReplyAndClose(Bytes),
    /// Close the connection without an answer; the text says why (for the log).
    Close(String),
}

enum State {
    AwaitHandshake,
    AwaitToken(SaslMechanism),
    AwaitScramFinal(Box<scram::ServerFirst>),
    /// A re-authentication asked for another mechanism than the session's: the handshake is
    /// answered, the next SaslAuthenticate fails with this message (Kafka's REAUTH_BAD_MECHANISM).
    ReauthBadMechanism(String),
    Authenticated,
}

/// What the session was before a re-authentication began.
struct Reauthenticating {
    mechanism: SaslMechanism,
    principal: String,
}

/// One connection's SASL state.
pub struct SaslSession {
    mechanisms: Arc<[SaslMechanism]>,
    credentials: Arc<CredentialRegistry>,
    state: State,
    /// The client's address, for the log lines of refusals.
    peer: String,
    /// `User:name` once authenticated (kept through a re-authentication).
    principal: Option<String>,
    /// The mechanism of the last successful authentication.
    mechanism: Option<SaslMechanism>,
    /// The mechanism of the exchange in progress (from its handshake).
    negotiating: Option<SaslMechanism>,
    /// How long a session lasts (`connections.max.reauth.ms`); `None`: sessions never expire.
    session_lifetime: Option<Duration>,
    /// When the current session ends, with `session_lifetime`.
    expires_at: Option<Instant>,
    /// Set while a re-authentication runs.
    reauthenticating: Option<Reauthenticating>,
    /// When the last re-authentication began (for `MIN_REAUTHENTICATION_INTERVAL`).
    last_reauthentication_start: Option<Instant>,
    /// A re-authentication succeeded since `take_reauthenticated` was last called (for metrics).
    reauthenticated: bool,
}

impl SaslSession {
    /// `session_lifetime`: Kafka's `connections.max.reauth.ms` (`None` or zero: never expires).
    pub fn new(
        mechanisms: Arc<[SaslMechanism]>,
        credentials: Arc<CredentialRegistry>,
        peer: String,
        session_lifetime: Option<Duration>,
    ) -> Self {
        SaslSession {
            mechanisms,
            credentials,
            state: State::AwaitHandshake,
            peer,
            principal: None,
            mechanism: None,
            negotiating: None,
            session_lifetime: session_lifetime.filter(|d| !d.is_zero()),
            expires_at: None,
            reauthenticating: None,
            last_reauthentication_start: None,
            reauthenticated: false,
        }
    }

    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Authenticated)
    }

    /// Whether the authenticated session ended at `now` without a re-authentication: Kafka closes
    /// the connection at its next request.
    pub fn expired(&self, now: Instant) -> bool {
        self.is_authenticated() && self.expires_at.is_some_and(|end| now >= end)
    }

    /// Starts a re-authentication for a SaslHandshake on an authenticated connection, if sessions
    /// expire and the last one began at least `MIN_REAUTHENTICATION_INTERVAL` ago; `false` leaves
    /// the session as it is (the handshake is then refused as out of state).
    pub fn begin_reauthentication(&mut self, now: Instant) -> bool {
        if !self.is_authenticated() || self.session_lifetime.is_none() {
            return false;
        }
        if self
            .last_reauthentication_start
            .is_some_and(|start| now.duration_since(start) < MIN_REAUTHENTICATION_INTERVAL)
        {
            return false;
        }
        let (Some(mechanism), Some(principal)) = (self.mechanism, self.principal.clone()) else {
            debug_assert!(
                false,
                "an authenticated session has a mechanism and a principal"
            );
            return false;
        };
        self.last_reauthentication_start = Some(now);
        self.reauthenticating = Some(Reauthenticating {
            mechanism,
            principal,
        });
        self.state = State::AwaitHandshake;
        true
    }

    /// Whether a re-authentication succeeded since the last call.
    pub fn take_reauthenticated(&mut self) -> bool {
        std::mem::take(&mut self.reauthenticated)
    }

    /// Kafka's principal of the authenticated client (`User:name`).
    pub fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }

    /// Decides what happens to `body` (one whole request frame without its size prefix) while the
    /// client is not authenticated.
    pub fn gate(&mut self, body: BytesMut) -> Gate {
        debug_assert!(
            !self.is_authenticated(),
            "only unauthenticated requests are gated"
        );
        let Ok(prefix) = frame::request_prefix(&body) else {
            return Gate::Close("bad request header before authentication".to_string());
        };
        let api = ApiKey::try_from(prefix.api_key).ok();
        if api == Some(ApiKey::ApiVersions) {
            return Gate::Pass;
        }
        if !matches!(api, Some(ApiKey::SaslHandshake | ApiKey::SaslAuthenticate)) {
            return Gate::Close(format!(
                "api key {} before SASL authentication finished",
                prefix.api_key
            ));
        }
        // The same version check as every other request (`server::connection::admit`).
        if !api.is_some_and(|api| is_served(api, prefix.api_version)) {
            return Gate::Close(format!(
                "unsupported version {} of api key {}",
                prefix.api_version, prefix.api_key
            ));
        }
        let request = match frame::decode_request(body.freeze()) {
            Ok(request) => request,
            Err(e) => return Gate::Close(format!("malformed SASL request header: {e}")),
        };
        if api == Some(ApiKey::SaslHandshake) && request.version() < SASL_HANDSHAKE_FRAMED_VERSION {
            return Gate::Close(
                "SaslHandshake v0 (unframed SASL tokens) is not served; clients use v1".to_string(),
            );
        }
        let result = match api {
            Some(ApiKey::SaslHandshake) => self.handshake(&request),
            _ => self.authenticate(&request),
        };
        match result {
            Ok(gate) => gate,
            Err(e) => Gate::Close(e.to_string()),
        }
    }

    fn handshake(&mut self, request: &Request) -> Result<Gate, HandlerError> {
        let body: SaslHandshakeRequest = decode_body(request)?;
        let enabled = self
            .mechanisms
            .iter()
            .map(|m| StrBytes::from_static_str(m.name()))
            .collect();
        let response = SaslHandshakeResponse::default().with_mechanisms(enabled);
        if !matches!(self.state, State::AwaitHandshake) {
            let response = response.with_error_code(ResponseError::IllegalSaslState.code());
            return Ok(Gate::ReplyAndClose(encode(request, &response)?));
        }
        let wanted = body.mechanism.parse::<SaslMechanism>().ok();
        match wanted.filter(|m| self.mechanisms.contains(m)) {
            Some(mechanism) => {
                self.state = match &self.reauthenticating {
                    Some(previous) if previous.mechanism != mechanism => {
                        State::ReauthBadMechanism(format!(
                            "SASL mechanism '{mechanism}' requested by client is not supported for \
                             re-authentication of mechanism '{}'",
                            previous.mechanism
                        ))
                    }
                    _ => State::AwaitToken(mechanism),
                };
                self.negotiating = Some(mechanism);
                Ok(Gate::Reply(encode(request, &response)?))
            }
            None => {
                let response =
                    response.with_error_code(ResponseError::UnsupportedSaslMechanism.code());
                // A warning: the logging layer rate-limits them, so a flood of refusals costs little.
                tracing::warn!(peer = %self.peer, mechanism = %body.mechanism.as_str(), "SASL handshake refused: mechanism not enabled");
                Ok(Gate::ReplyAndClose(encode(request, &response)?))
            }
        }
    }

    fn authenticate(&mut self, request: &Request) -> Result<Gate, HandlerError> {
        let body: SaslAuthenticateRequest = decode_body(request)?;
        let token = &body.auth_bytes;
        let state = std::mem::replace(&mut self.state, State::AwaitHandshake);
        let mechanism_name = match &state {
            State::AwaitToken(m) => m.name(),
            State::AwaitScramFinal(_) => "SCRAM",
            _ => "none",
        };
        let step = match state {
            State::ReauthBadMechanism(message) => Err(message),
            State::AwaitToken(SaslMechanism::Plain) => {
                plain::authenticate(&self.credentials.read(), token)
                    .map(|user| Step::Done(user, Bytes::new()))
                    .map_err(|e| e.to_string())
            }
            State::AwaitToken(mechanism) => match ScramMechanism::of(mechanism) {
                Some(scram_mechanism) => {
                    scram::client_first(scram_mechanism, &self.credentials.read(), token)
                        .map(|first| Step::Continue(Box::new(first)))
                        .map_err(|e| e.to_string())
                }
                None => Err(format!("{mechanism} is not a SCRAM mechanism")),
            },
            State::AwaitScramFinal(first) => scram::client_final(&first, token)
                .map(|(user, server_final)| Step::Done(user, Bytes::from(server_final)))
                .map_err(|e| e.to_string()),
            State::AwaitHandshake | State::Authenticated => {
                let response = SaslAuthenticateResponse::default()
                    .with_error_code(ResponseError::IllegalSaslState.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "SaslAuthenticate before a successful SaslHandshake",
                    )));
                return Ok(Gate::ReplyAndClose(encode(request, &response)?));
            }
        };
        match step {
            Ok(Step::Continue(first)) => {
                let reply = Bytes::copy_from_slice(first.message().as_bytes());
                self.state = State::AwaitScramFinal(first);
                let response = SaslAuthenticateResponse::default().with_auth_bytes(reply);
                Ok(Gate::Reply(encode(request, &response)?))
            }
            Ok(Step::Done(user, reply)) => {
                let principal = format!("User:{user}");
                if let Some(previous) = self.reauthenticating.take() {
                    if previous.principal != principal {
                        return self.fail(
                            request,
                            mechanism_name,
                            format!(
                                "Cannot change principals during re-authentication from {}: {principal}",
                                previous.principal
                            ),
                        );
                    }
                    self.reauthenticated = true;
                }
                tracing::debug!(peer = %self.peer, %principal, "SASL authentication succeeded");
                self.principal = Some(principal);
                debug_assert!(
                    self.negotiating.is_some(),
                    "a handshake chose the mechanism"
                );
                self.mechanism = self.negotiating.take();
                self.state = State::Authenticated;
                // A lifetime too long for the clock is a session that does not end.
                self.expires_at = self
                    .session_lifetime
                    .and_then(|lifetime| Instant::now().checked_add(lifetime));
                let lifetime_ms = self
                    .session_lifetime
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                let response = SaslAuthenticateResponse::default()
                    .with_auth_bytes(reply)
                    .with_session_lifetime_ms(lifetime_ms);
                Ok(Gate::Reply(encode(request, &response)?))
            }
            Err(message) => self.fail(request, mechanism_name, message),
        }
    }

    /// Answers SASL_AUTHENTICATION_FAILED with `message` and closes the connection.
    fn fail(
        &mut self,
        request: &Request,
        mechanism_name: &str,
        message: String,
    ) -> Result<Gate, HandlerError> {
        self.reauthenticating = None;
        let what = if self.mechanism.is_some() {
            "re-authentication"
        } else {
            "authentication"
        };
        tracing::warn!(peer = %self.peer, mechanism = mechanism_name, error = %message, "SASL {what} failed");
        let response = SaslAuthenticateResponse::default()
            .with_error_code(ResponseError::SaslAuthenticationFailed.code())
            .with_error_message(Some(StrBytes::from_string(message)));
        Ok(Gate::ReplyAndClose(encode(request, &response)?))
    }
}

enum Step {
    /// SCRAM's first round trip is done; the server-first message goes back.
    Continue(Box<scram::ServerFirst>),
    /// Authenticated as this user; the bytes go back (SCRAM's server-final, empty for PLAIN).
    Done(String, Bytes),
}

fn encode<T: kafka_protocol::protocol::Encodable>(
    request: &Request,
    body: &T,
) -> Result<Bytes, HandlerError> {
    frame::encode_response(
        request.api_key,
        request.version(),
        request.correlation_id(),
        body,
    )
    .map(BytesMut::freeze)
    .map_err(|e| HandlerError::Encode {
        api: request.api_key,
        version: request.version(),
        reason: e.to_string(),
    })
}

/// The answer to SaslHandshake or SaslAuthenticate outside an exchange: on a listener without
/// SASL, or after the client authenticated when no re-authentication may begin (sessions never
/// expire, or the last one began less than `MIN_REAUTHENTICATION_INTERVAL` ago).
pub fn refuse_out_of_state(request: &Request) -> Result<Outcome, HandlerError> {
    let code = ResponseError::IllegalSaslState.code();
    if request.api_key == ApiKey::SaslHandshake {
        respond(
            request,
            &SaslHandshakeResponse::default().with_error_code(code),
        )
    } else {
        respond(
            request,
            &SaslAuthenticateResponse::default()
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_static_str(
                    "no SASL exchange on this connection (not a SASL listener, or already authenticated)",
                ))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::sasl::credentials::CredentialStore;
    use kafka_protocol::messages::RequestHeader;
    use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

    const LIFETIME: Duration = Duration::from_secs(60);

    fn session(lifetime: Option<Duration>) -> SaslSession {
        let mut store = CredentialStore::default();
        store
            .add_scram(
                "SCRAM-SHA-512=[name=alice,password=alice-pw];SCRAM-SHA-512=[name=bob,password=bob-pw]",
            )
            .unwrap();
        let registry = CredentialRegistry::new(CredentialStore::default());
        registry.install(&Arc::new(store));
        SaslSession::new(
            Arc::from(SaslMechanism::ALL.as_slice()),
            Arc::new(registry),
            "test".to_string(),
            lifetime,
        )
    }

    /// A request frame (without its size prefix), as the connection's reader hands it over.
    fn frame<T: Encodable + HeaderVersion>(api: ApiKey, version: i16, body: &T) -> BytesMut {
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .encode(&mut buf, T::header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        buf
    }

    fn handshake(mechanism: &str) -> BytesMut {
        let body = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_string(mechanism.to_string()));
        frame(ApiKey::SaslHandshake, 1, &body)
    }

    fn plain(user: &str, password: &str) -> BytesMut {
        let token = format!("\0{user}\0{password}");
        let body = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
        frame(ApiKey::SaslAuthenticate, 2, &body)
    }

    /// The SaslAuthenticate response in a gate's reply.
    fn authenticate_response(gate: Gate) -> (SaslAuthenticateResponse, bool) {
        let (reply, closes) = match gate {
            Gate::Reply(reply) => (reply, false),
            Gate::ReplyAndClose(reply) => (reply, true),
            Gate::Pass => panic!("passed"),
            Gate::Close(reason) => panic!("closed: {reason}"),
        };
        // Size prefix, correlation id, then (v2 is flexible) the header's tagged fields.
        let mut body = reply.slice(8..);
        assert_eq!(bytes::Buf::get_u8(&mut body), 0, "no header tags");
        (
            SaslAuthenticateResponse::decode(&mut body, 2).unwrap(),
            closes,
        )
    }

    fn log_in(
        session: &mut SaslSession,
        user: &str,
        password: &str,
    ) -> (SaslAuthenticateResponse, bool) {
        assert!(matches!(session.gate(handshake("PLAIN")), Gate::Reply(_)));
        authenticate_response(session.gate(plain(user, password)))
    }

    #[test]
    fn the_session_lifetime_is_told_and_the_session_expires() {
        let mut s = session(Some(LIFETIME));
        let (response, closes) = log_in(&mut s, "alice", "alice-pw");
        assert!(!closes);
        assert_eq!(response.error_code, 0);
        assert_eq!(response.session_lifetime_ms, LIFETIME.as_millis() as i64);
        let now = Instant::now();
        assert!(!s.expired(now));
        assert!(s.expired(now + LIFETIME));
    }

    #[test]
    fn without_a_lifetime_sessions_never_expire_and_cannot_be_renewed() {
        let mut s = session(None);
        let (response, _) = log_in(&mut s, "alice", "alice-pw");
        assert_eq!(response.session_lifetime_ms, 0);
        assert!(!s.expired(Instant::now() + Duration::from_secs(10 * 365 * 86_400)));
        assert!(!s.begin_reauthentication(Instant::now()));
        assert!(s.is_authenticated());
    }

    #[test]
    fn a_reauthentication_renews_the_session_with_the_same_principal() {
        let mut s = session(Some(LIFETIME));
        log_in(&mut s, "alice", "alice-pw");
        assert!(s.begin_reauthentication(Instant::now()));
        assert!(
            !s.is_authenticated(),
            "other requests wait for the re-authentication"
        );
        assert_eq!(s.principal(), Some("User:alice"));
        let (response, closes) = log_in(&mut s, "alice", "alice-pw");
        assert!(!closes);
        assert_eq!(response.error_code, 0);
        assert!(s.is_authenticated());
        assert!(s.take_reauthenticated());
        assert!(!s.take_reauthenticated());
        // At most one re-authentication a second.
        assert!(!s.begin_reauthentication(Instant::now()));
    }

    #[test]
    fn a_reauthentication_as_someone_else_fails_and_closes() {
        let mut s = session(Some(LIFETIME));
        log_in(&mut s, "alice", "alice-pw");
        assert!(s.begin_reauthentication(Instant::now()));
        let (response, closes) = log_in(&mut s, "bob", "bob-pw");
        assert!(closes);
        assert_eq!(
            response.error_code,
            ResponseError::SaslAuthenticationFailed.code()
        );
        let message = response.error_message.unwrap().to_string();
        assert!(message.contains("Cannot change principals"), "{message}");
        assert!(!s.is_authenticated());
    }

    #[test]
    fn a_reauthentication_with_a_wrong_password_fails_and_closes() {
        let mut s = session(Some(LIFETIME));
        log_in(&mut s, "alice", "alice-pw");
        assert!(s.begin_reauthentication(Instant::now()));
        let (response, closes) = log_in(&mut s, "alice", "changed");
        assert!(closes);
        assert_eq!(
            response.error_code,
            ResponseError::SaslAuthenticationFailed.code()
        );
        assert!(!s.take_reauthenticated());
    }

    #[test]
    fn a_reauthentication_with_another_mechanism_fails_at_its_token() {
        let mut s = session(Some(LIFETIME));
        log_in(&mut s, "alice", "alice-pw");
        assert!(s.begin_reauthentication(Instant::now()));
        // Kafka answers the handshake, then fails the exchange.
        assert!(matches!(s.gate(handshake("SCRAM-SHA-512")), Gate::Reply(_)));
        let (response, closes) = authenticate_response(s.gate(plain("alice", "alice-pw")));
        assert!(closes);
        assert_eq!(
            response.error_code,
            ResponseError::SaslAuthenticationFailed.code()
        );
        let message = response.error_message.unwrap().to_string();
        assert!(
            message.contains("re-authentication of mechanism 'PLAIN'"),
            "{message}"
        );
    }
}
