//! Publishing the metadata image to this node's shards: after every change shard 0 sends the
//! image to each other shard (over the mesh, as the records that rebuild it) and installs it on
//! itself; installing reconciles the shard's partition logs with it (opens the partitions this
//! broker hosts that the shard owns, removes the logs of deleted topics). The agent's `published`
//! index moves once every shard has installed an image at least that new. The image's ACLs go to
//! the broker's authorizer and its SCRAM credentials to the broker's credential registry (one
//! copy of each shared by every shard) before that.

use std::rc::Rc;

use kafka_protocol::ResponseError;
use ringbroker_schema::{ImageUpdate, ImageUpdateArgs, Payload};

use super::agent::ClusterAgent;
use super::image::MetadataImage;
use super::meta_properties;
use super::records;
use crate::admin::{self, is_reserved_topic, AdminOutcome};
use crate::shard::Shard;
use crate::transactions::TRANSACTION_STATE_TOPIC;

/// Shard 0's publisher: waits for image changes and publishes each newest image.
pub async fn run_publisher(agent: Rc<ClusterAgent>, shard: Rc<Shard>) {
    let mut seen = 0;
    loop {
        seen = agent.changed.wait_until(move |c| c != seen).await;
        let image = Rc::new(agent.image());
        let index = image.applied_index;
        record_cluster_id(&shard, &image).await;
        shard.config.security.authorizer.store.install(&image.acls);
        shard
            .config
            .security
            .credentials
            .install(&image.scram_credentials);
        publish(&shard, &image).await;
        agent.published.set(agent.published.get().max(index));
    }
}

/// Writes the cluster id into the data directory once the log holds one; a data directory of
/// another cluster stops the broker (its partitions are not this cluster's).
async fn record_cluster_id(shard: &Shard, image: &MetadataImage) {
    let Some(cluster_id) = image.cluster_id.clone() else {
        return;
    };
    if meta_properties::read_cluster_id(&shard.config.data_dir).as_deref() == Some(&cluster_id) {
        return;
    }
    let data_dir = shard.config.data_dir.clone();
    let node_id = shard.config.node_id;
    let recorded = glommio::executor()
        .spawn_blocking(move || meta_properties::check_and_record(&data_dir, node_id, &cluster_id))
        .await;
    if let Err(error) = recorded {
        tracing::error!(%error, "stopping: this data directory cannot join the cluster");
        shard.request_stop(error.to_string());
    }
}

/// Sends `image` to every other shard, then installs it here.
async fn publish(shard: &Shard, image: &Rc<MetadataImage>) {
    let entry = records::encode(&image.to_records());
    for peer in (0..shard.count).filter(|p| *p != shard.id) {
        let reply = shard
            .mesh
            .call(peer, entry.len() + 64, |fbb| {
                let entry = fbb.create_vector(&entry);
                let update = ImageUpdate::create(
                    fbb,
                    &ImageUpdateArgs {
                        entry: Some(entry),
                        index: image.applied_index,
                    },
                );
                (Payload::ImageUpdate, update.as_union_value())
            })
            .await;
        if let Err(error) = reply {
            tracing::error!(peer, %error, "could not publish the metadata image to a shard");
        }
    }
    install(shard, image.clone()).await;
}

/// Serves an `ImageUpdate` from shard 0.
pub async fn serve_remote(shard: &Shard, update: ImageUpdate<'_>) -> AdminOutcome {
    let Some(entry) = update.entry() else {
        return AdminOutcome::error(
            ResponseError::InvalidRequest,
            "image update without records",
        );
    };
    match records::decode(entry.bytes()) {
        Ok(records) => {
            let image = MetadataImage::from_records(update.index(), &records);
            install(shard, Rc::new(image)).await;
            AdminOutcome::ok()
        }
        Err(error) => {
            tracing::error!(%error, "malformed metadata image from shard 0");
            AdminOutcome::error(ResponseError::UnknownServerError, error.to_string())
        }
    }
}

/// Installs `image` on this shard and brings its partition logs in line with it.
pub async fn install(shard: &Shard, image: Rc<MetadataImage>) {
    if image.applied_index < shard.image().applied_index {
        return; // an older image overtaken by a newer one
    }
    let previous = shard.image();
    shard.set_image(image.clone());
    remove_deleted_topics(shard, &previous, &image).await;
    open_hosted_partitions(shard, &image).await;
    // After opening: new logs get their topic's segment size too.
    crate::retention::apply_roll_sizes(shard);
    shard.note_installed(&image);
}

/// Removes this shard's logs of topics the image no longer has (or that were deleted and created
/// again: another topic id under the same name).
async fn remove_deleted_topics(shard: &Shard, previous: &MetadataImage, image: &MetadataImage) {
    for (name, meta) in &previous.topics.topics {
        let still = image.topics.get(name).is_some_and(|now| now.id == meta.id);
        if !still && !is_reserved_topic(name) {
            let outcome = admin::apply_partitions_command(shard, name, &[], true).await;
            if outcome.error_code != 0 {
                tracing::warn!(topic = %name, message = ?outcome.message, "removing a deleted topic's logs failed");
            }
        }
    }
}

/// Opens the logs of partitions this broker hosts and this shard owns.
async fn open_hosted_partitions(shard: &Shard, image: &MetadataImage) {
    for (name, partition) in image.partitions_hosted_by(shard.config.node_id) {
        if shard.owner_of(&name, partition) != shard.id || shard.log(&name, partition).is_some() {
            continue;
        }
        // The transaction state logs belong to the transaction coordinator, which opens them
        // lazily: a replica's copy must exist before its leader's records are fetched into it.
        if name == TRANSACTION_STATE_TOPIC {
            open_transaction_state_log(shard, partition).await;
            continue;
        }
        // The committed-offsets logs belong to the group coordinator, which opens all of its own.
        if is_reserved_topic(&name) {
            continue;
        }
        match admin::open_partition(shard, &name, partition).await {
            Ok(log) => shard.insert_log(&name, partition, log),
            Err(error) => {
                tracing::error!(topic = %name, partition, %error, "cannot open a partition this broker hosts")
            }
        }
    }
}

/// Opens this shard's copy of `__transaction_state` `partition`, a replica this broker hosts.
async fn open_transaction_state_log(shard: &Shard, partition: i32) {
    let Some(coordinator) = shard.transactions() else {
        return;
    };
    if let Err(error) = coordinator.open_state_log(partition).await {
        tracing::error!(topic = TRANSACTION_STATE_TOPIC, partition, %error, "cannot open a partition this broker hosts");
    }
}
