"""Issue 22: transactions in a cluster. Three ringbroker nodes on network-namespace test hosts, a topic whose
partitions are led by different brokers (replication factor 3):

- one transaction writes to every partition: its commit or abort marker reaches each partition's leader
  (Kafka's WriteTxnMarkers between brokers), so a read_committed consumer sees exactly the committed
  transactions and a read_uncommitted one sees everything;
- a transactional id has one coordinator whatever broker a client bootstraps from (the leader of the id's
  `__transaction_state` partition): a second producer with the same id, bootstrapped from another broker, fences
  the first (PRODUCER_FENCED) and nothing of the zombie's open transaction becomes visible;
- `__transaction_state` is replicated (RF 3): kill -9 of the broker coordinating a transactional id (found with
  FindCoordinator, key type 1) in the middle of a transaction; the producer goes on against the new coordinator
  (the leader of the id's partition on another broker), read_committed sees exactly the committed transactions,
  each record once, a zombie with the old epoch is fenced by the new coordinator, and the killed broker rejoins
  with a copy of the state partition equal to the others'; the same failover under the Java client (4.4);
- transaction verification (KIP-890) across brokers: a partition's leader asks the coordinator on another broker
  (AddPartitionsToTxn v4 verify_only) before a transaction's first batch there, so a batch for a partition the
  producer never added is refused with INVALID_TXN_STATE, and one it added is taken.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, Producer, TopicPartition

import clients
import kafka_wire as kw
from cluster_helpers import segment_bytes
from test_cluster import metadata, wait_until
from test_java_client import java_classpath  # noqa: F401 (a fixture)
from test_transactions_wire import INVALID_TXN_STATE, Conn
from test_replication import (  # noqa: F401 (cluster: a fixture)
    BINARY,
    cluster,
    create_replicated,
    isr_sizes,
    leaders,
    offsets_partition,
)

# Kafka error codes a client retries on InitProducerId.
COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE = 14, 15

PARTITIONS = 3

pytestmark = pytest.mark.skipif(not BINARY, reason="cluster tests start their own ringbroker nodes (RINGBROKER_BIN)")


def transactional_producer(bootstrap: str, transactional_id: str) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
                     "transaction.timeout.ms": 60_000, **clients.COMMON})


def read_all(bootstrap: str, topic: str, isolation: str, expected: int,
             partitions: int = PARTITIONS) -> dict[int, list[bytes]]:
    """Every record of the topic as a consumer with `isolation` reads it, waiting for `expected` records."""
    c = clients.consumer(bootstrap, **{"isolation.level": isolation, "group.id": f"{topic}-{isolation}"})
    out: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        deadline = time.monotonic() + 90
        while sum(len(v) for v in out.values()) < expected and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is not None and not msg.error():
                out[msg.partition()].append(msg.value())
        # Anything beyond what is expected would be a visible aborted record: read a little longer.
        end = time.monotonic() + 2
        while time.monotonic() < end:
            msg = c.poll(0.2)
            if msg is not None and not msg.error():
                out[msg.partition()].append(msg.value())
    finally:
        c.close()
    return out


@pytest.mark.timeout(300)
def test_a_transaction_commits_on_every_brokers_partitions(cluster, topic_name):
    create_replicated(cluster, topic_name, partitions=PARTITIONS, min_insync=2)
    wait_until(lambda: set(isr_sizes(cluster, topic_name).values()) == {3}, 60, "full ISRs")
    led_by = set(leaders(cluster, topic_name).values())
    print(f"partition leaders: {leaders(cluster, topic_name)}")
    assert len(led_by) > 1, "the placement put every leader on one broker"
    committed: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    everything: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    with cluster.hosts.in_hub():
        producer = transactional_producer(cluster.bootstrap, f"{topic_name}-tx")
        producer.init_transactions(60)
        for t in range(6):
            producer.begin_transaction()
            for p in range(PARTITIONS):
                for k in range(3):
                    value = f"t{t}-p{p}-{k}".encode()
                    producer.produce(topic_name, value=value, partition=p)
                    everything[p].append(value)
            producer.flush(30)
            if t % 3 == 2:
                producer.abort_transaction(60)
            else:
                producer.commit_transaction(60)
                for p in range(PARTITIONS):
                    committed[p].extend(v for v in everything[p][-3:])
        seen = read_all(cluster.bootstrap, topic_name, "read_committed", sum(len(v) for v in committed.values()))
        raw = read_all(cluster.bootstrap, topic_name, "read_uncommitted", sum(len(v) for v in everything.values()))
    assert seen == committed
    assert raw == everything


@pytest.mark.timeout(300)
def test_one_coordinator_per_transactional_id_fences_a_zombie_from_another_broker(cluster, topic_name):
    create_replicated(cluster, topic_name, partitions=PARTITIONS, min_insync=2)
    wait_until(lambda: set(isr_sizes(cluster, topic_name).values()) == {3}, 60, "full ISRs")
    transactional_id = f"{topic_name}-tx"
    first_node, other_node = cluster.nodes[0], cluster.nodes[2]
    with cluster.hosts.in_hub():
        zombie = transactional_producer(first_node.bootstrap, transactional_id)
        zombie.init_transactions(60)
        zombie.begin_transaction()
        for p in range(PARTITIONS):
            zombie.produce(topic_name, value=f"zombie-{p}".encode(), partition=p)
        zombie.flush(30)
        # Same id from another broker: the same coordinator bumps the epoch and aborts the open transaction.
        successor = transactional_producer(other_node.bootstrap, transactional_id)
        successor.init_transactions(60)
        with pytest.raises(KafkaException) as fenced:
            zombie.commit_transaction(30)
        error = fenced.value.args[0]
        print(f"zombie's commit: {error}")
        assert error.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH), \
            error
        successor.begin_transaction()
        for p in range(PARTITIONS):
            successor.produce(topic_name, value=f"successor-{p}".encode(), partition=p)
        successor.commit_transaction(60)
        seen = read_all(cluster.bootstrap, topic_name, "read_committed", PARTITIONS)
    assert seen == {p: [f"successor-{p}".encode()] for p in range(PARTITIONS)}


@pytest.mark.timeout(300)
def test_a_leader_verifies_a_transaction_with_its_coordinator_on_another_broker(cluster, topic_name):
    create_replicated(cluster, topic_name, partitions=PARTITIONS, min_insync=2)
    wait_until(lambda: set(isr_sizes(cluster, topic_name).values()) == {3}, 60, "full ISRs")
    leader = leaders(cluster, topic_name)[0]
    with cluster.hosts.in_hub():
        # A transactional id coordinated by another broker than partition 0's leader.
        def coordinated_elsewhere():
            for i in range(200):
                txn_id = f"{topic_name}-v{i}"
                coordinator = find_transaction_coordinator(cluster.nodes[0].bootstrap, txn_id)
                if coordinator is None:
                    return None  # __transaction_state is being created
                if coordinator != leader:
                    return txn_id, coordinator
            return None
        txn_id, coordinator = wait_until(coordinated_elsewhere, 60, "an id coordinated by another broker")
        print(f"partition 0 led by {leader}, {txn_id} coordinated by {coordinator}")
        to_coordinator = Conn(cluster.node(coordinator).bootstrap)
        to_leader = Conn(cluster.node(leader).bootstrap)
        # The coordinator may still be loading its __transaction_state partition (COORDINATOR_LOAD_IN_PROGRESS,
        # or COORDINATOR_NOT_AVAILABLE while it is being led): clients retry those, so does this test.
        def initialised():
            got = to_coordinator.init_producer_id(txn_id, 60_000)
            return got if got[0] not in (COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE) else None
        error, pid, epoch = wait_until(initialised, 60, "InitProducerId past the coordinator's loading")
        assert error == 0
        assert to_leader.produce_transactional(txn_id, pid, epoch, topic_name, 0) == INVALID_TXN_STATE
        assert to_coordinator.add_partitions(2, txn_id, pid, epoch, topic_name) == 0
        assert to_leader.produce_transactional(txn_id, pid, epoch, topic_name, 0) == 0
        assert to_coordinator.end_txn(txn_id, pid, epoch, True) == 0
        seen = read_all(cluster.bootstrap, topic_name, "read_committed", 1)
    assert seen == {0: [b"txn"], 1: [], 2: []}


TXN_STATE_TOPIC = "__transaction_state"
FAILOVER_PARTITIONS = 6
FIND_COORDINATOR = 10
KEY_TYPE_GROUP, KEY_TYPE_TRANSACTION = 0, 1


def find_coordinator(bootstrap: str, key: str, key_type: int) -> int | None:
    """FindCoordinator v1 asked of `bootstrap` for a group (key type 0) or a transactional id (1): the coordinating
    broker's id, None while there is none (an error, or the broker asked is down)."""
    try:
        with kw.connect(bootstrap, timeout=5) as sock:
            sock.sendall(kw.request(FIND_COORDINATOR, 1, 1, kw.string(key) + kw.i8(key_type)))
            got = kw.read_response(sock)
    except OSError:
        return None
    if got is None:
        return None
    _, r = got
    r.i32()  # throttle time
    error_code = r.i16()
    r.string()  # error message
    node_id = r.i32()
    return node_id if error_code == 0 else None


def find_transaction_coordinator(bootstrap: str, transactional_id: str) -> int | None:
    """The coordinator of a transactional id (FindCoordinator key type 1), None while there is none."""
    return find_coordinator(bootstrap, transactional_id, KEY_TYPE_TRANSACTION)


def state_replicas(c, partition: int, via) -> tuple[int, list[int], list[int]]:
    md = metadata(c, via=via, topic=TXN_STATE_TOPIC)
    p = md.topics[TXN_STATE_TOPIC].partitions[partition]
    return p.leader, list(p.replicas), list(p.isrs)


def txn_values(t: int) -> list[bytes]:
    """The records transaction `t` writes: two per partition."""
    return [f"t{t}-p{p}-{k}".encode() for p in range(FAILOVER_PARTITIONS) for k in range(2)]


def assert_exactly_committed(seen: dict[int, list[bytes]], committed, aborted, ambiguous) -> None:
    """read_committed saw exactly the committed transactions (by number), each record once; an ambiguous one all or
    nothing; no record of an aborted one."""
    flat = [v for p in sorted(seen) for v in seen[p]]
    assert len(flat) == len(set(flat)), "a record was read twice"
    got = set(flat)
    for t in committed:
        assert set(txn_values(t)) <= got, f"committed transaction {t} is not (all) visible"
    for t in aborted:
        assert not set(txn_values(t)) & got, f"aborted transaction {t} is visible"
    for t in ambiguous:
        assert set(txn_values(t)) <= got or not set(txn_values(t)) & got, f"transaction {t} is partly visible"
    allowed = set().union(*(txn_values(t) for t in [*committed, *ambiguous]))
    assert got <= allowed, sorted(got - allowed)[:5]


class TxnApp:
    """A transactional producer as an application runs one: commits or aborts, and on a fatal error makes a new
    producer (init_transactions again), as librdkafka demands. Records which transactions committed, which
    aborted, and which ended ambiguously (a fatal error after the commit was asked: the coordinator may have
    committed it)."""

    def __init__(self, bootstrap: str, transactional_id: str, topic: str):
        self.bootstrap, self.transactional_id, self.topic = bootstrap, transactional_id, topic
        self.producer = self._new_producer()
        self.committed: dict[int, list[bytes]] = {}
        self.aborted: dict[int, list[bytes]] = {}
        self.ambiguous: dict[int, list[bytes]] = {}
        self.reinitialised = 0

    def _new_producer(self) -> Producer:
        p = transactional_producer(self.bootstrap, self.transactional_id)
        p.init_transactions(90)
        return p

    def write(self, t: int) -> list[bytes]:
        """Begins transaction `t` and writes two records to every partition (flushed: acknowledged)."""
        self.producer.begin_transaction()
        values = txn_values(t)
        for i, value in enumerate(values):
            self.producer.produce(self.topic, value=value, partition=i // 2)
        assert self.producer.flush(60) == 0, "records not acknowledged"
        return values

    def end(self, t: int, values: list[bytes], commit: bool) -> None:
        deadline = time.monotonic() + 120
        while True:
            try:
                if commit:
                    self.producer.commit_transaction(60)
                    self.committed[t] = values
                else:
                    self.producer.abort_transaction(60)
                    self.aborted[t] = values
                return
            except KafkaException as e:
                error = e.args[0]
                print(f"transaction {t} {'commit' if commit else 'abort'}: {error}")
                if error.txn_requires_abort():
                    self.producer.abort_transaction(60)
                    self.aborted[t] = values
                    return
                if error.fatal():
                    (self.ambiguous if commit else self.aborted)[t] = values
                    self.producer = self._new_producer()
                    self.reinitialised += 1
                    return
                assert error.retriable() and time.monotonic() < deadline, error

    def run(self, t: int, commit: bool) -> None:
        try:
            values = self.write(t)
        except KafkaException as e:
            error = e.args[0]
            print(f"transaction {t} write: {error}")
            if error.fatal():
                self.producer = self._new_producer()
                self.reinitialised += 1
            else:
                self.producer.abort_transaction(60)
            return
        self.end(t, values, commit)


@pytest.mark.timeout(600)
def test_the_transaction_coordinator_fails_over_with_its_state_partition(cluster, topic_name):
    create_replicated(cluster, topic_name, partitions=FAILOVER_PARTITIONS, min_insync=2)
    wait_until(lambda: set(isr_sizes(cluster, topic_name).values()) == {3}, 60, "full ISRs")
    transactional_id = f"{topic_name}-tx"
    slot = offsets_partition(transactional_id)  # Kafka's placement, 50 partitions as __consumer_offsets
    with cluster.hosts.in_hub():
        app = TxnApp(cluster.bootstrap, transactional_id, topic_name)
        for t in range(4):
            app.run(t, commit=t % 3 != 2)
        first = wait_until(lambda: find_transaction_coordinator(cluster.nodes[0].bootstrap, transactional_id), 30,
                           "the transactional id's coordinator")
    md = metadata(cluster, topic=TXN_STATE_TOPIC)
    assert {len(p.replicas) for p in md.topics[TXN_STATE_TOPIC].partitions.values()} == {3}
    wait_until(lambda: len(state_replicas(cluster, slot, cluster.nodes[0])[2]) == 3, 60,
               "the id's state partition in sync")
    assert first == state_replicas(cluster, slot, cluster.nodes[0])[0], "the coordinator leads the id's partition"
    coordinator = cluster.node(first)
    survivor = next(n for n in cluster.nodes if n is not coordinator)
    print(f"transactional id {transactional_id}: state partition {slot}, coordinator node {first}")

    with cluster.hosts.in_hub():
        # In the middle of transaction 4 (its records acknowledged, not yet committed), its coordinator dies.
        values = app.write(4)
        coordinator.kill9()
        killed = time.monotonic()
        app.end(4, values, commit=True)
        print(f"transaction 4 ended {time.monotonic() - killed:.2f} s after kill -9 of node {first}")
        second = wait_until(
            lambda: (found := find_transaction_coordinator(survivor.bootstrap, transactional_id)) != first and found,
            60, "a new coordinator")
        print(f"new coordinator: node {second}, found {time.monotonic() - killed:.2f} s after the kill")
        for t in range(5, 10):
            app.run(t, commit=t % 3 != 2)
        # A zombie: this producer, its transaction open, is replaced by a new one with the same id; the new
        # coordinator bumps the epoch, aborts the zombie's transaction, and refuses the zombie's commit.
        zombie_values = app.write(10)
        successor = transactional_producer(survivor.bootstrap, transactional_id)
        successor.init_transactions(90)
        with pytest.raises(KafkaException) as fenced:
            app.producer.commit_transaction(30)
        error = fenced.value.args[0]
        print(f"zombie's commit: {error}")
        assert error.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH), \
            error
        app.aborted[10] = zombie_values
        app.producer = successor
        for t in range(11, 13):
            app.run(t, commit=True)
        print(f"committed {sorted(app.committed)}, aborted {sorted(app.aborted)}, ambiguous "
              f"{sorted(app.ambiguous)}, producer re-initialised {app.reinitialised} times")
        assert 4 in app.committed or 4 in app.ambiguous, "the transaction open at the kill was not committed"
        assert len(app.committed) >= 8, app.committed.keys()
        expected = sum(len(v) for v in app.committed.values())
        seen = read_all(cluster.bootstrap, topic_name, "read_committed", expected, partitions=FAILOVER_PARTITIONS)

    assert_exactly_committed(seen, app.committed, app.aborted, app.ambiguous)

    # The killed broker comes back: its copy of the state partition catches up (in the ISR, the same bytes).
    coordinator.start()
    wait_until(lambda: len(state_replicas(cluster, slot, survivor)[2]) == 3, 120,
               "the restarted broker back in the ISR of the id's state partition")
    wait_until(lambda: set(isr_sizes(cluster, topic_name, via=survivor).values()) == {3}, 120,
               "the restarted broker back in the data topic's ISRs")
    wait_until(lambda: len({segment_bytes(n.data_dir, TXN_STATE_TOPIC, slot) for n in cluster.nodes}) == 1, 60,
               "the three copies of the state partition equal")
    # And the restarted broker serves clients of the transactional id through the current coordinator.
    with cluster.hosts.in_hub():
        assert find_transaction_coordinator(coordinator.bootstrap, transactional_id) == \
            state_replicas(cluster, slot, survivor)[0]


@pytest.mark.timeout(600)
def test_the_java_producer_goes_on_against_the_new_coordinator(cluster, topic_name, java_classpath):
    """kafka-clients 4.4 (TransactionalFailover): the coordinator of its transactional id is killed while a
    transaction is open; the client finds the new coordinator and commits it, and goes on; read_committed sees
    exactly what it reports committed."""
    import re
    import subprocess

    from test_java_client import log_flags

    create_replicated(cluster, topic_name, partitions=FAILOVER_PARTITIONS, min_insync=2)
    wait_until(lambda: set(isr_sizes(cluster, topic_name).values()) == {3}, 60, "full ISRs")
    transactional_id = f"{topic_name}-java"
    transactions, kill_at = 9, 3
    cmd = cluster.hosts.hub_cmd([
        "java", "-Xmx512m", *log_flags(), "-cp", java_classpath, "ringbroker.interop.TransactionalFailover",
        cluster.bootstrap, topic_name, str(FAILOVER_PARTITIONS), transactional_id, str(transactions), str(kill_at),
    ])
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    killed = None
    try:
        assert proc.stdout is not None and proc.stdin is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            if line.startswith("OPEN ") and killed is None:
                with cluster.hosts.in_hub():
                    first = wait_until(
                        lambda: find_transaction_coordinator(cluster.nodes[0].bootstrap, transactional_id), 30,
                        "the transactional id's coordinator")
                killed = cluster.node(first)
                killed.kill9()
                print(f"killed node {first}, the coordinator of {transactional_id}")
                proc.stdin.write("go\n")
                proc.stdin.flush()
        rc = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "\n".join(lines)
    print(output[-3000:])
    assert killed is not None, f"the producer never opened transaction {kill_at}:\n{output[-3000:]}"
    result = next((line for line in lines if line.startswith("RESULT ")), None)
    assert result and rc == 0, f"exit {rc}:\n{output[-3000:]}"
    fields = dict(kv.split("=", 1) for kv in result.split()[1:])
    parsed = {k: [int(t) for t in v.split(",") if t] for k, v in fields.items() if k != "reinitialised"}
    assert kill_at in parsed["committed"] or kill_at in parsed["ambiguous"], result
    assert len(parsed["committed"]) >= 5, result
    survivor = next(n for n in cluster.nodes if n is not killed)
    with cluster.hosts.in_hub():
        second = find_transaction_coordinator(survivor.bootstrap, transactional_id)
        assert second is not None and second != killed.node_id
        expected = sum(len(txn_values(t)) for t in parsed["committed"])
        seen = read_all(survivor.bootstrap, topic_name, "read_committed", expected, partitions=FAILOVER_PARTITIONS)
    assert_exactly_committed(seen, parsed["committed"], parsed["aborted"], parsed["ambiguous"])
