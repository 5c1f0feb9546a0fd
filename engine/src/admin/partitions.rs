//! CreatePartitions: growing a topic. The active controller places the new partitions (existing
//! ones keep their replicas, so their data and order are untouched) and commits them; the brokers
//! hosting them open their logs when the new image reaches them.

use super::{first_outcome, AdminOutcome};
use crate::cluster::forward;
use crate::cluster::rpc_api::AdminRequest;
use crate::shard::Shard;

/// Grows `name` to `count` partitions (from any shard).
pub async fn create_partitions(
    shard: &Shard,
    name: &str,
    count: i32,
    assignments: Vec<Vec<i32>>,
    validate_only: bool,
) -> AdminOutcome {
    let request = AdminRequest::CreatePartitions {
        name: name.to_string(),
        count,
        assignments,
        validate_only,
    };
    first_outcome(forward::admin(shard, request).await)
}
