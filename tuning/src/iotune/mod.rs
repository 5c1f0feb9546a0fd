//! `ringbroker tune iotune`: measures a data directory with O_DIRECT I/O and writes `io-properties.toml`.

mod properties;

pub use properties::{
    recommended_queue_depth, IoProperties, QueueDepthIops, IO_PROPERTIES_FILE_NAME,
};
