//! ApiVersions: the versions we serve (see `server::api_versions`).

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;
use ringbroker_protocol::frame::Request;

use crate::server::dispatch::{respond, HandlerError, Outcome};
use ringbroker_protocol::api_versions::SUPPORTED_APIS;

pub fn handle(request: &Request) -> Result<Outcome, HandlerError> {
    // The request body (client software name/version) is informational; a body we cannot read
    // is no reason to refuse the handshake.
    let api_keys = SUPPORTED_APIS
        .iter()
        .map(|(api, min, max)| {
            ApiVersion::default()
                .with_api_key(*api as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect();
    let response = ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(api_keys);
    respond(request, &response)
}
