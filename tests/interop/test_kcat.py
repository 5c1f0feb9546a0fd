"""Issue 2: kcat round-trips 100,000 lines byte-identical, and `kcat -L` (text and JSON) lists the broker,
topics and partitions."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess

import pytest

import clients

LINES = 100_000

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed (apt-get install kcat)")


def kcat(*args: str, input: bytes | None = None, timeout: float = 120) -> bytes:
    proc = subprocess.run(["kcat", *args], input=input, capture_output=True, timeout=timeout)
    assert proc.returncode == 0, f"kcat {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode()[-2000:]}"
    return proc.stdout


def make_lines(n: int) -> bytes:
    rng = random.Random(42)
    alphabet = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 \t{}[]\":,é漢🙂"
    lines = []
    for i in range(n):
        filler = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120)))
        lines.append(f"{i:06d} {filler}")
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("broker", [1, 2], indirect=True, ids=["shards1", "shards2"])
def test_kcat_round_trip_100k_lines(broker, topic_name):
    clients.create_topic(broker.bootstrap, topic_name, 1)
    data = make_lines(LINES)
    kcat("-P", "-b", broker.bootstrap, "-t", topic_name, input=data)
    out = kcat("-C", "-b", broker.bootstrap, "-t", topic_name, "-e", "-o", "beginning", "-q")
    assert len(out) == len(data), f"consumed {len(out)} bytes, produced {len(data)}"
    assert out == data, "kcat round trip is not byte-identical"


def test_kcat_metadata_listing(broker, topic_name):
    clients.create_topic(broker.bootstrap, topic_name, 3)
    host, port = broker.bootstrap.rsplit(":", 1)

    text = kcat("-L", "-b", broker.bootstrap).decode()
    assert re.search(r"^\s*1 brokers:", text, re.M), text
    assert re.search(rf"broker (\d+) at {re.escape(host)}:{port}", text), text
    assert f'topic "{topic_name}" with 3 partitions:' in text, text
    for p in range(3):
        assert re.search(rf"partition {p}, leader \d+, replicas: \d+, isrs: \d+", text), text

    js = json.loads(kcat("-L", "-J", "-b", broker.bootstrap))
    assert [b["name"] for b in js["brokers"]] == [f"{host}:{port}"], js["brokers"]
    broker_id = js["brokers"][0]["id"]
    topics = {t["topic"]: t for t in js["topics"]}
    assert topic_name in topics, list(topics)
    parts = sorted(topics[topic_name]["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in parts] == [0, 1, 2]
    assert all(p["leader"] == broker_id for p in parts), parts
    assert "error" not in topics[topic_name], topics[topic_name]
