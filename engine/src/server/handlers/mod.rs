//! One handler per Kafka API (the dispatcher in `server::dispatch` is a plain match over them).

pub mod alter_configs;
pub mod api_versions;
pub mod client_quotas;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod elect_leaders;
pub mod fetch;
pub mod find_coordinator;
pub mod groups;
pub mod groups_authorization;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod not_coordinator;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod transactions;
pub mod transactions_authorization;
pub mod write_txn_markers;
