//! The cluster: several brokers behind one Raft metadata quorum (issue 17), as Kafka's KRaft.
//!
//! - `config`: this node's roles, the quorum's voters, broker session settings.
//! - `records`: the metadata log's records and their flatbuffers form.
//! - `image`: the cluster as the committed log describes it (brokers, topics, partitions).
//! - `placement`: replicas and leaders of new partitions, spread over brokers and racks.
//! - `controller`: the active controller's decisions as pure functions of the image.

pub mod config;
pub mod controller;
pub mod image;
pub mod placement;
pub mod records;

pub use config::{ClusterConfig, Roles};
pub use image::MetadataImage;
