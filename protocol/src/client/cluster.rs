//! `Client`: bootstrap, the broker/connection table, and cached topic metadata for routing.

use super::connection::Connection;
use super::error::{check_code, ClientError, LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION};
use super::ClientConfig;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};
use std::collections::HashMap;
use std::time::Duration;

/// Metadata rounds while a topic has no leader yet (auto-creation, an election) before giving up.
const METADATA_RETRIES: usize = 20;
/// Pause between those rounds.
const METADATA_RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// Metadata rounds while a topic is unknown: a topic just created (or being auto-created) reaches the
/// broker's metadata cache a moment after CreateTopics returns (Kafka propagates it asynchronously).
const UNKNOWN_TOPIC_RETRIES: usize = 10;
/// First Metadata version with `allow_auto_topic_creation`.
const METADATA_AUTO_CREATE_FLAG_VERSION: i16 = 4;

/// A broker as Metadata lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerInfo {
    /// "host:port", with brackets around an IPv6 host.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One partition as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    /// Leader's node id, -1 if none.
    pub leader: i32,
    /// -1 when the broker does not track epochs.
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline_replicas: Vec<i32>,
    pub error_code: i16,
}

/// One topic as Metadata describes it; partitions sorted by number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub error_code: i16,
    pub is_internal: bool,
    pub partitions: Vec<PartitionInfo>,
}

/// A whole Metadata answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMetadata {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: Vec<BrokerInfo>,
    pub topics: Vec<TopicInfo>,
}

/// Which broker a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The bootstrap connection.
    Any,
    /// One broker by node id.
    Node(i32),
    /// The controller from the last Metadata, else any broker.
    Controller,
}

/// A blocking Kafka client: connections per broker and cached metadata.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    bootstrap: Option<Connection>,
    broker_addrs: HashMap<i32, String>,
    connections: HashMap<i32, Connection>,
    topics: HashMap<String, TopicInfo>,
    controller_id: i32,
    /// Group id → coordinator node id (see `groups`).
    pub(crate) coordinators: HashMap<String, i32>,
}

impl Client {
    /// Connects to the first bootstrap server that answers ApiVersions, then reads cluster metadata.
    pub fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        let mut client = Client {
            bootstrap: None,
            broker_addrs: HashMap::new(),
            connections: HashMap::new(),
            topics: HashMap::new(),
            controller_id: -1,
            coordinators: HashMap::new(),
            config,
        };
        client.reconnect_bootstrap()?;
        client.metadata(Some(&[]), false)?;
        Ok(client)
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Node id of the controller from the last Metadata (-1 if unknown).
    pub fn controller_id(&self) -> i32 {
        self.controller_id
    }

    /// Node ids of every broker from the last Metadata, sorted.
    pub fn broker_ids(&self) -> Vec<i32> {
        let mut ids: Vec<i32> = self.broker_addrs.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    fn reconnect_bootstrap(&mut self) -> Result<(), ClientError> {
        let mut last_error = String::from("no bootstrap server given");
        for server in &self.config.bootstrap_servers {
            match Connection::connect(server, &self.config) {
                Ok(connection) => {
                    self.bootstrap = Some(connection);
                    return Ok(());
                }
                Err(error) => last_error = error.to_string(),
            }
        }
        Err(ClientError::NoBrokerReachable {
            servers: self.config.bootstrap_servers.join(","),
            last_error,
        })
    }

    /// A usable connection to some broker (the bootstrap one, reopened if it broke).
    pub fn any_broker(&mut self) -> Result<&mut Connection, ClientError> {
        if !self.bootstrap.as_ref().is_some_and(Connection::is_usable) {
            self.reconnect_bootstrap()?;
        }
        self.bootstrap
            .as_mut()
            .ok_or_else(|| ClientError::NoBrokerReachable {
                servers: self.config.bootstrap_servers.join(","),
                last_error: "no connection".into(),
            })
    }

    /// A usable connection to broker `node_id`, opened on first use.
    pub fn broker(&mut self, node_id: i32) -> Result<&mut Connection, ClientError> {
        if !self
            .connections
            .get(&node_id)
            .is_some_and(Connection::is_usable)
        {
            self.connections.remove(&node_id);
            let addr = self
                .broker_addrs
                .get(&node_id)
                .cloned()
                .ok_or(ClientError::UnknownBroker(node_id))?;
            let connection = Connection::connect(&addr, &self.config)?;
            self.connections.insert(node_id, connection);
        }
        self.connections
            .get_mut(&node_id)
            .ok_or(ClientError::UnknownBroker(node_id))
    }

    /// Records a broker address learnt outside Metadata (FindCoordinator answers).
    pub(crate) fn learn_broker(&mut self, node_id: i32, addr: String) {
        if self.broker_addrs.get(&node_id) != Some(&addr) {
            self.connections.remove(&node_id);
            self.broker_addrs.insert(node_id, addr);
        }
    }

    /// Sends `request` to broker `node_id` at the negotiated version.
    pub fn send_to<R: Request>(
        &mut self,
        node_id: i32,
        request: &R,
    ) -> Result<(R::Response, i16), ClientError> {
        self.broker(node_id)?.send(request)
    }

    /// Sends `request` to any broker at the negotiated version.
    pub fn send_any<R: Request>(&mut self, request: &R) -> Result<(R::Response, i16), ClientError> {
        self.any_broker()?.send(request)
    }

    /// Sends `request` to the controller if known, else to any broker (brokers forward admin requests).
    pub fn send_to_controller<R: Request + Clone>(
        &mut self,
        request: &R,
    ) -> Result<(R::Response, i16), ClientError> {
        self.send_built(Target::Controller, |_| request.clone())
    }

    /// Builds the request for the version negotiated with `target` and sends it. For requests whose
    /// fields move between versions (kafka-protocol refuses to encode a field the version lacks).
    pub fn send_built<R: Request>(
        &mut self,
        target: Target,
        build: impl FnOnce(i16) -> R,
    ) -> Result<(R::Response, i16), ClientError> {
        let connection = match target {
            Target::Any => self.any_broker()?,
            Target::Node(node_id) => self.broker(node_id)?,
            Target::Controller if self.broker_addrs.contains_key(&self.controller_id) => {
                self.broker(self.controller_id)?
            }
            Target::Controller => self.any_broker()?,
        };
        let version = connection.version_for::<R>()?;
        let request = build(version);
        Ok((connection.send_version(&request, version)?, version))
    }

    /// Runs Metadata for `topics` (`None` = all topics; `Some(&[])` = brokers only) and refreshes the
    /// broker table and the topic cache. Per-topic errors are left in `TopicInfo::error_code`.
    pub fn metadata(
        &mut self,
        topics: Option<&[&str]>,
        allow_auto_create: bool,
    ) -> Result<ClusterMetadata, ClientError> {
        let (response, _) = self.send_built(Target::Any, |version| {
            MetadataRequest::default()
                .with_topics(topics.map(|names| {
                    names
                        .iter()
                        .map(|name| {
                            MetadataRequestTopic::default().with_name(Some(TopicName(
                                StrBytes::from_string((*name).to_owned()),
                            )))
                        })
                        .collect()
                }))
                // The flag exists from v4; older versions always auto-create (if the broker does).
                .with_allow_auto_topic_creation(
                    allow_auto_create || version < METADATA_AUTO_CREATE_FLAG_VERSION,
                )
        })?;
        let metadata = convert_metadata(response);
        check_code_top_level(&metadata)?;
        self.controller_id = metadata.controller_id;
        for broker in &metadata.brokers {
            self.learn_broker(broker.node_id, broker.addr());
        }
        for topic in &metadata.topics {
            if topic.error_code == 0 {
                self.topics.insert(topic.name.clone(), topic.clone());
            } else {
                self.topics.remove(&topic.name);
            }
        }
        Ok(metadata)
    }

    /// Metadata of one topic, waiting (bounded) while its partitions have no leader yet. Unknown topic
    /// is `ClientError::Kafka` with UNKNOWN_TOPIC_OR_PARTITION.
    pub fn topic(&mut self, name: &str, allow_auto_create: bool) -> Result<TopicInfo, ClientError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let metadata = self.metadata(Some(&[name]), allow_auto_create)?;
            let topic = metadata
                .topics
                .into_iter()
                .find(|topic| topic.name == name)
                .ok_or_else(|| ClientError::Kafka {
                    context: format!("Metadata for topic {name}"),
                    code: UNKNOWN_TOPIC_OR_PARTITION,
                    message: None,
                })?;
            let leaderless = topic.partitions.is_empty()
                || topic
                    .partitions
                    .iter()
                    .any(|partition| partition.leader < 0);
            let waiting =
                topic.error_code == LEADER_NOT_AVAILABLE || (topic.error_code == 0 && leaderless);
            let unknown = topic.error_code == UNKNOWN_TOPIC_OR_PARTITION;
            if (waiting && attempt < METADATA_RETRIES)
                || (unknown && attempt < UNKNOWN_TOPIC_RETRIES)
            {
                std::thread::sleep(METADATA_RETRY_BACKOFF);
                continue;
            }
            check_code(
                topic.error_code,
                || format!("Metadata for topic {name}"),
                None,
            )?;
            return Ok(topic);
        }
    }

    /// Cached metadata of `name`, fetched (without auto-creation) if not cached.
    pub fn cached_topic(&mut self, name: &str) -> Result<TopicInfo, ClientError> {
        match self.topics.get(name) {
            Some(topic) => Ok(topic.clone()),
            None => self.topic(name, false),
        }
    }

    /// Forgets cached metadata of `name` (after NOT_LEADER_OR_FOLLOWER and the like).
    pub fn invalidate_topic(&mut self, name: &str) {
        self.topics.remove(name);
    }

    /// Leader node of `topic`-`partition`, from cached metadata.
    pub fn leader_for(&mut self, topic: &str, partition: i32) -> Result<i32, ClientError> {
        let info = self.cached_topic(topic)?;
        let found = info
            .partitions
            .iter()
            .find(|candidate| candidate.partition == partition);
        match found {
            None => Err(ClientError::UnknownPartition {
                topic: topic.to_owned(),
                partition,
                partitions: info.partitions.len(),
            }),
            Some(found) if found.leader < 0 => Err(ClientError::NoLeader {
                topic: topic.to_owned(),
                partition,
            }),
            Some(found) => Ok(found.leader),
        }
    }

    /// Groups `(partition, item)` pairs of one topic by leader node.
    pub fn group_by_leader<T>(
        &mut self,
        topic: &str,
        items: Vec<(i32, T)>,
    ) -> Result<HashMap<i32, Vec<(i32, T)>>, ClientError> {
        let mut by_leader: HashMap<i32, Vec<(i32, T)>> = HashMap::new();
        for (partition, item) in items {
            let leader = self.leader_for(topic, partition)?;
            by_leader.entry(leader).or_default().push((partition, item));
        }
        Ok(by_leader)
    }
}

fn check_code_top_level(metadata: &ClusterMetadata) -> Result<(), ClientError> {
    if metadata.brokers.is_empty() {
        // A Metadata answer without brokers cannot route anything; Kafka always lists itself.
        return Err(ClientError::Protocol {
            addr: "bootstrap".into(),
            reason: "Metadata listed no brokers".into(),
        });
    }
    Ok(())
}

fn convert_metadata(response: MetadataResponse) -> ClusterMetadata {
    let brokers = response
        .brokers
        .into_iter()
        .map(|broker| BrokerInfo {
            node_id: broker.node_id.0,
            host: broker.host.to_string(),
            port: broker.port,
            rack: broker.rack.map(|rack| rack.to_string()),
        })
        .collect();
    let topics = response
        .topics
        .into_iter()
        .map(|topic| {
            let mut partitions: Vec<PartitionInfo> = topic
                .partitions
                .into_iter()
                .map(|partition| PartitionInfo {
                    partition: partition.partition_index,
                    leader: partition.leader_id.0,
                    leader_epoch: partition.leader_epoch,
                    replicas: partition.replica_nodes.into_iter().map(|id| id.0).collect(),
                    isr: partition.isr_nodes.into_iter().map(|id| id.0).collect(),
                    offline_replicas: partition
                        .offline_replicas
                        .into_iter()
                        .map(|id| id.0)
                        .collect(),
                    error_code: partition.error_code,
                })
                .collect();
            partitions.sort_by_key(|partition| partition.partition);
            TopicInfo {
                name: topic
                    .name
                    .map(|name| name.0.to_string())
                    .unwrap_or_default(),
                error_code: topic.error_code,
                is_internal: topic.is_internal,
                partitions,
            }
        })
        .collect();
    ClusterMetadata {
        cluster_id: response.cluster_id.map(|id| id.to_string()),
        controller_id: response.controller_id.0,
        brokers,
        topics,
    }
}
