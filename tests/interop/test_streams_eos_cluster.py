"""Issue 22: the Kafka Streams 4.4 exactly-once word count of test_streams_eos.py on a 3-broker cluster (test
hosts in network namespaces, every topic with replication factor 3 and min.insync.replicas 2: the input topic,
and the repartition and changelog topics Streams creates with the brokers' `default.replication.factor`).

Between input chunks the test kills (SIGKILL) one broker, then a broker and the Streams app together, then the app
(and so on in the long form), and restarts them. The broker killed is each node in turn, so the group coordinator, the transaction coordinators of the app's transactional
ids and partition leaders move between brokers during the run; before the next round every partition's ISR is
whole again (a fault heals before the next, as in the replication fault test). At the end the output topic read
with read_committed must hold exactly the true counts: no transaction committed twice or lost across a
coordinator or leader failover.

Short by default (CI); `STREAMS_EOS_LONG=1` and `STREAMS_EOS_SEED` work as in test_streams_eos.py."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import NewTopic

from cluster_helpers import Cluster, ClusterNode, reporting
from test_cluster import admin, metadata, wait_until
from test_replication import BINARY
from test_streams_eos import KILL_ROUNDS, LONG, run_word_count, streams_classpath  # noqa: F401 (a fixture)

REPLICATION_FACTOR = 3
MIN_INSYNC = 2
# Small segments: every node preallocates its segments, three nodes share the disk.
NODE_ARGS = ["--set", "segment_bytes=4MiB",
             "--default-replication-factor", str(REPLICATION_FACTOR),
             "--min-insync-replicas", str(MIN_INSYNC)]
# A restarted node must be back in every ISR within this long before the next fault.
ISR_WHOLE_TIMEOUT_S = 90

pytestmark = pytest.mark.skipif(not BINARY, reason="cluster tests start their own ringbroker nodes (RINGBROKER_BIN)")


class OneNodeAtATime:
    """What run_word_count kills and restarts as "the broker": the cluster's nodes in turn."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.kills = 0
        self.down: ClusterNode | None = None

    @property
    def bootstrap(self) -> str:
        return self.cluster.bootstrap

    def kill9(self) -> None:
        assert self.down is None, "one node down at a time"
        self.down = self.cluster.nodes[self.kills % len(self.cluster.nodes)]
        self.kills += 1
        print(f"  kill -9 node {self.down.node_id}")
        self.down.kill9()

    def start(self) -> None:
        assert self.down is not None
        self.down.start()
        self.down = None
        wait_until(self.isr_whole, ISR_WHOLE_TIMEOUT_S, "every partition's ISR whole again after a restart",
                   interval=0.5)

    def isr_whole(self):
        """True once every partition of every topic (the internal ones too) has all its replicas in sync."""
        md = metadata(self.cluster)
        short = [f"{t.topic}-{p.id}" for t in md.topics.values() for p in t.partitions.values()
                 if len(p.isrs) < len(p.replicas)]
        return not short or short[:5]


def create_replicated_source(bootstrap: str, name: str, partitions: int) -> None:
    client = admin(bootstrap)  # kept alive until the answer came
    futures = client.create_topics([NewTopic(name, num_partitions=partitions,
                                             replication_factor=REPLICATION_FACTOR,
                                             config={"min.insync.replicas": str(MIN_INSYNC)})])
    futures[name].result(timeout=30)


@pytest.mark.timeout(1200 if LONG else 600)
def test_streams_exactly_once_word_count_survives_broker_failovers(tmp_path, topic_name, streams_classpath):
    c = Cluster(BINARY, tmp_path, extra_args=NODE_ARGS)
    print(f"test hosts: {c.hosts.mode}")
    with reporting(c):
        c.start()
        # The app, this test's clients and the librdkafka threads they start all live in the hub.
        with c.hosts.in_hub():
            expected, counts, kills = run_word_count(OneNodeAtATime(c), streams_classpath, topic_name,
                                                     tmp_path / "app", "exactly_once_v2", KILL_ROUNDS,
                                                     create_source=create_replicated_source,
                                                     victims=["broker", "both", "app"])
        wrong = {w: (counts.get(w), n) for w, n in expected.items() if counts.get(w) != n}
        assert not wrong, (f"after kills {kills}: (counted, true) differ for {len(wrong)} words: "
                           f"{sorted(wrong.items())[:10]}")
        assert set(counts) == set(expected), f"unexpected words in the output: {set(counts) - set(expected)}"
