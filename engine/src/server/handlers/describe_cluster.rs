//! DescribeCluster (API 60, KIP-700): the cluster id, the controller and the brokers, which Kafka 4's
//! AdminClient asks for in `describeCluster()` (Kafka Connect does, for the cluster id) when the broker
//! offers it, instead of a Metadata request. The brokers are the metadata image's (live ones, and
//! fenced ones when v2 asks), and the controller id is the one Metadata gives (see `metadata`).
//! Answered like Kafka's broker listener (`AuthHelper.computeDescribeClusterResponse`): only the
//! broker endpoint type is served, and with no authorizer every supported cluster operation is allowed.
//! Each broker is given at its endpoint for the listener the client came in on; brokers without
//! that listener are left out (Kafka's `getAliveBrokerNodes(listenerName)`).

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use ringbroker_protocol::frame::Request;

use crate::cluster::MetadataImage;
use crate::security::acl::types::{CLUSTER_NAME, OPERATIONS_NOT_REQUESTED};
use crate::security::acl::{Operation, ResourceType, Session};
use crate::server::dispatch::{decode_body, respond, HandlerError, Outcome};
use crate::shard::Shard;

/// `endpoint_type` (v1+) of a broker listener (KIP-919; 2 is a controller, 0 unknown).
const ENDPOINT_TYPE_BROKER: i8 = 1;

pub fn handle(
    shard: &Shard,
    request: &Request,
    listener: &crate::security::ClientListener,
    session: &Session,
) -> Result<Outcome, HandlerError> {
    let body: DescribeClusterRequest = decode_body(request)?;
    let controller_id = super::metadata::controller_id_for_clients(shard);
    let mut response = describe(
        &shard.image(),
        controller_id,
        request.version(),
        &body,
        listener.name(),
    );
    // Kafka: the operations this principal may do on the cluster, when it may describe it.
    if body.include_cluster_authorized_operations && session.enforcing() {
        response.cluster_authorized_operations =
            if session.allows(Operation::Describe, ResourceType::Cluster, CLUSTER_NAME) {
                session.authorized_operations(ResourceType::Cluster, CLUSTER_NAME)
            } else {
                0
            };
    }
    respond(request, &response)
}

/// The response to `body` at `version` for the cluster `image` describes, to a client of
/// `listener`.
fn describe(
    image: &MetadataImage,
    controller_id: i32,
    version: i16,
    body: &DescribeClusterRequest,
    listener: &str,
) -> DescribeClusterResponse {
    if body.endpoint_type != ENDPOINT_TYPE_BROKER {
        // v0 has no endpoint type field (it decodes as the broker default), so this is v1+;
        // Kafka answers INVALID_REQUEST to v0 and these two codes to later versions.
        let error = if version == 0 {
            ResponseError::InvalidRequest
        } else if body.endpoint_type == 2 {
            ResponseError::MismatchedEndpointType
        } else {
            ResponseError::UnsupportedEndpointType
        };
        return DescribeClusterResponse::default().with_error_code(error.code());
    }
    let operations = if body.include_cluster_authorized_operations {
        ResourceType::Cluster
            .supported_operations()
            .iter()
            .fold(0i32, |bits, op| bits | (1 << op.code()))
    } else {
        OPERATIONS_NOT_REQUESTED
    };
    let brokers = image
        .brokers
        .values()
        .filter(|b| body.include_fenced_brokers || (!b.fenced && !b.shutting_down))
        .filter_map(|b| {
            let endpoint = b.endpoint(listener)?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.node_id))
                    .with_host(StrBytes::from_string(endpoint.host.clone()))
                    .with_port(endpoint.port)
                    .with_rack(b.rack.clone().map(StrBytes::from_string))
                    .with_is_fenced(b.fenced || b.shutting_down),
            )
        })
        .collect();
    DescribeClusterResponse::default()
        .with_endpoint_type(ENDPOINT_TYPE_BROKER)
        .with_cluster_id(StrBytes::from_string(
            image.cluster_id.clone().unwrap_or_default(),
        ))
        .with_controller_id(BrokerId(controller_id))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(operations)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cluster::records::{BrokerEndpoint, BrokerRegistration, MetadataRecord};

    /// A cluster of broker 7 (live) and broker 8 (fenced).
    fn image() -> MetadataImage {
        let broker = |node_id: i32, host: &str| {
            MetadataRecord::Broker(BrokerRegistration {
                node_id,
                incarnation: [1; 16],
                epoch: 0,
                listeners: vec![BrokerEndpoint::plaintext(host, 9093)],
                rack: None,
                fenced: true,
                shutting_down: false,
            })
        };
        let mut image = MetadataImage::default();
        image.apply(1, &[MetadataRecord::ClusterId("test-cluster".into())]);
        image.apply(2, &[broker(7, "broker.example")]);
        image.apply(3, &[broker(8, "other.example")]);
        image.apply(
            4,
            &[MetadataRecord::BrokerState {
                node_id: 7,
                epoch: 2,
                fenced: false,
                shutting_down: false,
            }],
        );
        image
    }

    #[test]
    fn describes_this_broker_as_the_cluster_and_its_controller() {
        let response = describe(
            &image(),
            7,
            2,
            &DescribeClusterRequest::default(),
            PLAINTEXT,
        );
        assert_eq!(response.error_code, 0);
        assert_eq!(response.cluster_id.as_str(), "test-cluster");
        assert_eq!(response.controller_id, BrokerId(7));
        assert_eq!(response.endpoint_type, ENDPOINT_TYPE_BROKER);
        assert_eq!(response.brokers.len(), 1);
        let broker = &response.brokers[0];
        assert_eq!(broker.broker_id, BrokerId(7));
        assert_eq!(broker.host.as_str(), "broker.example");
        assert_eq!(broker.port, 9093);
        assert!(!broker.is_fenced);
        assert_eq!(response.cluster_authorized_operations, i32::MIN);
    }

    const PLAINTEXT: &str = "PLAINTEXT";

    #[test]
    fn brokers_without_the_clients_listener_are_left_out() {
        let request = DescribeClusterRequest::default().with_include_fenced_brokers(true);
        let plaintext = describe(&image(), 7, 2, &request, PLAINTEXT);
        assert_eq!(plaintext.brokers.len(), 2);
        let sasl = describe(&image(), 7, 2, &request, "SASL_SSL");
        assert_eq!(sasl.error_code, 0);
        assert!(sasl.brokers.is_empty(), "no broker has a SASL_SSL listener");
    }

    #[test]
    fn authorized_operations_only_when_asked() {
        let request =
            DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
        let response = describe(&image(), 7, 1, &request, PLAINTEXT);
        // CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
        assert_eq!(response.cluster_authorized_operations, 0b1_1111_1010_0000);
    }

    #[test]
    fn a_controller_endpoint_request_is_refused_like_kafka() {
        let request = DescribeClusterRequest::default().with_endpoint_type(2);
        let response = describe(&image(), 7, 1, &request, PLAINTEXT);
        assert_eq!(
            response.error_code,
            ResponseError::MismatchedEndpointType.code()
        );
        assert!(response.brokers.is_empty());
        let unknown = DescribeClusterRequest::default().with_endpoint_type(0);
        assert_eq!(
            describe(&image(), 7, 2, &unknown, PLAINTEXT).error_code,
            ResponseError::UnsupportedEndpointType.code()
        );
    }
}
