//! One connection's SASL exchange on a SASL_PLAINTEXT or SASL_SSL listener, as Kafka's
//! `SaslServerAuthenticator`: until the client is authenticated only ApiVersions, SaslHandshake
//! (v1) and SaslAuthenticate are served; any other request closes the connection. A refused
//! handshake or authentication is answered with Kafka's error code (UNSUPPORTED_SASL_MECHANISM
//! with the enabled list, SASL_AUTHENTICATION_FAILED, ILLEGAL_SASL_STATE), then the connection is
//! closed.
//!
//! The exchange runs in the connection's reader, in request order, before any handler: a client
//! sends each SASL request only after the previous answer, so this costs no pipelining. Sessions
//! do not expire (`session_lifetime_ms` 0), so clients never re-authenticate (KIP-368).

use std::sync::Arc;

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
    Authenticated,
}

/// One connection's SASL state.
pub struct SaslSession {
    mechanisms: Arc<[SaslMechanism]>,
    credentials: Arc<CredentialRegistry>,
    state: State,
    /// The client's address, for the log lines of refusals.
    peer: String,
    /// `User:name` once authenticated.
    principal: Option<String>,
}

impl SaslSession {
    pub fn new(
        mechanisms: Arc<[SaslMechanism]>,
        credentials: Arc<CredentialRegistry>,
        peer: String,
    ) -> Self {
        SaslSession {
            mechanisms,
            credentials,
            state: State::AwaitHandshake,
            peer,
            principal: None,
        }
    }

    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Authenticated)
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
                self.state = State::AwaitToken(mechanism);
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
                tracing::debug!(peer = %self.peer, principal = %format!("User:{user}"), "SASL authentication succeeded");
                self.principal = Some(format!("User:{user}"));
                self.state = State::Authenticated;
                let response = SaslAuthenticateResponse::default()
                    .with_auth_bytes(reply)
                    .with_session_lifetime_ms(0);
                Ok(Gate::Reply(encode(request, &response)?))
            }
            Err(message) => {
                tracing::warn!(peer = %self.peer, mechanism = mechanism_name, error = %message, "SASL authentication failed");
                let response = SaslAuthenticateResponse::default()
                    .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                    .with_error_message(Some(StrBytes::from_string(message)));
                Ok(Gate::ReplyAndClose(encode(request, &response)?))
            }
        }
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
/// SASL, or after the client authenticated (no re-authentication: sessions do not expire).
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
