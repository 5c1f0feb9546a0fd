"""ApiVersions: the advertised ranges cover what real clients need (docs/COMPATIBILITY.md section 1), in both the
v0 and the flexible v3 encoding (response header v0 even for v3: no tag buffer after the correlation id)."""

from __future__ import annotations

import pytest

import kafka_wire as kw

# (api key, name, the smallest range real clients need: docs/COMPATIBILITY.md section 1). Issue 2's APIs must be
# advertised.
REQUIRED = [
    (18, "ApiVersions", 0, 3),
    (0, "Produce", 0, 7),
    (1, "Fetch", 4, 11),
    (2, "ListOffsets", 1, 4),
    (3, "Metadata", 0, 7),
    (19, "CreateTopics", 2, 4),
    (20, "DeleteTopics", 1, 3),
]
# APIs other issues add: when advertised, the range must cover the table's (librdkafka gates features on
# exact version overlaps: FindCoordinator v0 gates groups, InitProducerId v0 idempotence, JoinGroup v0 SASL).
IF_ADVERTISED = [
    (8, "OffsetCommit", 2, 7),
    (9, "OffsetFetch", 1, 5),
    (10, "FindCoordinator", 0, 2),
    (11, "JoinGroup", 0, 5),
    (12, "Heartbeat", 0, 3),
    (13, "LeaveGroup", 0, 3),
    (14, "SyncGroup", 0, 3),
    (15, "DescribeGroups", 0, 4),
    (16, "ListGroups", 0, 2),
    (22, "InitProducerId", 0, 1),
    (32, "DescribeConfigs", 1, 2),
    (42, "DeleteGroups", 0, 1),
    (47, "OffsetDelete", 0, 0),
]


def fetch_api_versions(bootstrap: str, version: int) -> kw.ApiVersions:
    with kw.connect(bootstrap) as sock:
        sock.sendall(kw.api_versions_v0(11) if version == 0 else kw.api_versions_v3(11, version))
        got = kw.read_response(sock)
        assert got is not None, f"broker closed the connection on ApiVersions v{version}"
        correlation_id, reader = got
        assert correlation_id == 11
        result = kw.parse_api_versions(reader, version)
        assert result.error_code == 0, f"ApiVersions v{version}: error_code {result.error_code}"
        return result


@pytest.fixture(scope="module")
def advertised(module_broker) -> dict[int, tuple[int, int]]:
    return fetch_api_versions(module_broker.bootstrap, 3).ranges


def test_v0_and_v3_advertise_the_same_ranges(module_broker):
    v0 = fetch_api_versions(module_broker.bootstrap, 0).ranges
    v3 = fetch_api_versions(module_broker.bootstrap, 3).ranges
    assert v0 == v3
    for key, (lo, hi) in v3.items():
        assert 0 <= lo <= hi, f"api {key}: bad range {lo}-{hi}"


@pytest.mark.parametrize("key,name,lo,hi", REQUIRED, ids=[r[1] for r in REQUIRED])
def test_required_api_is_advertised_with_the_needed_range(advertised, key, name, lo, hi):
    assert key in advertised, f"{name} ({key}) is not advertised"
    got_lo, got_hi = advertised[key]
    assert got_lo <= lo and got_hi >= hi, f"{name}: advertised {got_lo}-{got_hi}, clients need {lo}-{hi}"


@pytest.mark.parametrize("key,name,lo,hi", IF_ADVERTISED, ids=[r[1] for r in IF_ADVERTISED])
def test_optional_api_when_advertised_has_the_needed_range(advertised, key, name, lo, hi):
    if key not in advertised:
        pytest.skip(f"{name} not advertised (yet)")
    got_lo, got_hi = advertised[key]
    assert got_lo <= lo and got_hi >= hi, f"{name}: advertised {got_lo}-{got_hi}, clients need {lo}-{hi}"
