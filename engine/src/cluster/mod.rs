//! The cluster: several brokers behind one Raft metadata quorum (issue 17), as Kafka's KRaft.
//!
//! - `config`: this node's roles, the quorum's voters, broker session settings.
//! - `records`: the metadata log's records and their flatbuffers form.
//! - `image`: the cluster as the committed log describes it (brokers, topics, partitions).
//! - `placement`: replicas and leaders of new partitions, spread over brokers and racks.
//! - `controller`: the active controller's decisions as pure functions of the image.
//! - `acl_control`: its decisions on ACLs (CreateAcls, DeleteAcls), as Kafka's AclControlManager.
//! - `scram_control`: its decisions on SCRAM credentials, as Kafka's ScramControlManager.
//! - `rpc_api`: the requests brokers send the active controller, and their flatbuffers form.
//! - `agent`: this node's member of the cluster on shard 0 (image, controller calls, decisions).
//! - `liveness_probe`: whether a broker's process is gone (its listeners refuse connections).
//! - `node`: starting and stopping it; `lifecycle`: registration, heartbeats, controlled shutdown.
//! - `publish`: the image reaching every shard, which opens or removes its partition logs.
//! - `forward`: admin requests from any shard to the active controller.
//! - `handed_scram`: which `--add-scram` credentials this data directory already handed over.
//! - `meta_properties`: which cluster and node a data directory belongs to.
//! - `migrate`: a pre-cluster `topics.json` (and a broker's own `acls.json` and SCRAM
//!   credentials) moved into the metadata log, and the `--add-scram` credentials handed to it.

pub mod acl_control;
pub mod agent;
pub mod config;
pub mod controller;
pub mod forward;
pub mod handed_scram;
pub mod image;
pub mod lifecycle;
pub mod liveness_probe;
pub mod meta_properties;
pub mod migrate;
pub mod node;
pub mod placement;
pub mod publish;
pub mod records;
pub mod rpc_api;
pub mod scram_control;

pub use config::{ClusterConfig, Roles};
pub use image::MetadataImage;
