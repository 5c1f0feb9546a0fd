//! The ISR, kept by the leader through the controller (Kafka's AlterPartition): a follower that
//! has not caught up within `replica.lag.time.max.ms` leaves, one whose log end reached the high
//! watermark joins. The leader checks every half lag period (as Kafka's isr-expiration task) and
//! at once when a follower's fetch may let it join; one request per partition is in flight, and
//! the change takes effect when the controller's record comes back in the image.

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::cluster::forward;
use crate::cluster::rpc_api::AdminRequest;
use crate::shard::Shard;

/// Runs for the life of the shard.
pub fn spawn_checker(shard: Rc<Shard>) {
    glommio::spawn_local(async move {
        let max_lag = shard.config.cluster.replication.replica_lag_time_max;
        let period = (max_lag / 2).max(Duration::from_millis(50));
        let mut seen = shard.replication.isr_check.get();
        loop {
            let wake = shard.replication.isr_check.wait_until(move |v| v != seen);
            if let Some(value) = ringbroker_quorum::watch::within(period, wake).await {
                seen = value;
            }
            if shard.stop.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            check_all(&shard, max_lag);
        }
    })
    .detach();
}

/// Proposes the ISR changes every led partition needs.
fn check_all(shard: &Rc<Shard>, max_lag: Duration) {
    let now = Instant::now();
    let image = shard.image();
    let mut proposals = Vec::new();
    for (topic, partitions) in shard.replication.leaders.borrow_mut().iter_mut() {
        for (partition, led) in partitions.iter_mut() {
            if led.alter_in_flight {
                continue;
            }
            let Some(log) = shard.log(topic, *partition) else {
                continue;
            };
            // Only an eligible broker joins an ISR (Kafka's KIP-841: unfenced, its data directory
            // online; the controller would refuse it): a returning broker that caught up is added
            // once it has been let back in.
            let may_join = |id: i32| image.is_eligible(id);
            if let Some(new_isr) = led.wanted_isr(log.high_watermark(), max_lag, now, may_join) {
                led.alter_in_flight = true;
                proposals.push(AdminRequest::AlterPartition {
                    name: topic.clone(),
                    partition: *partition,
                    leader_id: led.node_id,
                    leader_epoch: led.leader_epoch,
                    partition_epoch: led.partition_epoch,
                    new_isr,
                });
            }
        }
    }
    for request in proposals {
        let shard = shard.clone();
        glommio::spawn_local(async move { propose(&shard, request).await }).detach();
    }
}

async fn propose(shard: &Rc<Shard>, request: AdminRequest) {
    let AdminRequest::AlterPartition {
        name,
        partition,
        leader_epoch,
        new_isr,
        ..
    } = &request
    else {
        return;
    };
    let (name, partition, leader_epoch, new_isr) =
        (name.clone(), *partition, *leader_epoch, new_isr.clone());
    tracing::info!(topic = %name, partition, isr = ?new_isr, "asking the controller to change the ISR");
    let reply = forward::admin(shard, request).await;
    let error = reply
        .outcomes
        .first()
        .filter(|o| o.error_code != 0)
        .map(|o| (o.error_code, o.message.clone()));
    if let Some((code, message)) = error {
        tracing::warn!(topic = %name, partition, error_code = code, ?message, "ISR change refused");
        // Let the next check try again (with the image's epochs by then).
        shard.replication.with_leader(&name, partition, |led| {
            if led.leader_epoch == leader_epoch {
                led.alter_in_flight = false;
            }
        });
    }
}
