//! Kafka wire protocol pieces shared by the broker, the tools and the bench.

pub mod api_versions;
pub mod batch;
pub mod client;
pub mod frame;
pub mod records;
