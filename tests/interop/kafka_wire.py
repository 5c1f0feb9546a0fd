"""Hand-built Kafka wire messages for the raw-socket tests (no client library in the way).

Byte layout reference (all integers big-endian, as the Kafka protocol defines them):

    frame            = size:INT32  payload[size]            size counts the payload only
    request header   v1 = api_key:INT16 api_version:INT16 correlation_id:INT32 client_id:STRING
                     v2 = v1 + tagged_fields:UVARINT(0)      (flexible requests; client_id stays INT16-sized)
    response header  v0 = correlation_id:INT32               (ApiVersions always uses v0, KIP-511)
    STRING           = len:INT16 bytes[len]                   len -1 = null (NULLABLE_STRING)
    BYTES            = len:INT32 bytes[len]                   len -1 = null
    ARRAY            = count:INT32 item[count]                count -1 = null
    COMPACT_*        = uvarint(len + 1) ...                   0 = null

Record batch v2 (what Produce v3+ carries and Fetch returns):

    offset  0  base_offset            INT64
            8  batch_length           INT32   bytes after this field
           12  partition_leader_epoch INT32
           16  magic                  INT8    = 2
           17  crc                    UINT32  CRC32C of bytes 21..end
           21  attributes             INT16   bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control
           23  last_offset_delta      INT32
           27  base_timestamp         INT64
           35  max_timestamp          INT64
           43  producer_id            INT64
           51  producer_epoch         INT16
           53  base_sequence          INT32
           57  record_count           INT32
           61  records...
    record = length:VARINT attributes:INT8 timestamp_delta:VARLONG offset_delta:VARINT
             key_len:VARINT key value_len:VARINT value header_count:VARINT headers...
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

API_PRODUCE = 0
API_FETCH = 1
API_LIST_OFFSETS = 2
API_METADATA = 3
API_API_VERSIONS = 18

ERROR_UNKNOWN_SERVER_ERROR = -1
ERROR_NONE = 0
ERROR_CORRUPT_MESSAGE = 2
ERROR_UNSUPPORTED_VERSION = 35
ERROR_INVALID_REQUEST = 42
ERROR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
ERROR_INVALID_RECORD = 87

# Record batch attribute bits: 0-2 the codec (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd), 4 transactional, 5 control.
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20

RECORD_BATCH_HEADER_BYTES = 61
CRC_START = 21  # the CRC covers attributes .. end of batch

CLIENT_ID = b"interop-raw"


# ---------------------------------------------------------------------------------------------- primitives
def i8(v: int) -> bytes:
    return struct.pack(">b", v)


def i16(v: int) -> bytes:
    return struct.pack(">h", v)


def i32(v: int) -> bytes:
    return struct.pack(">i", v)


def i64(v: int) -> bytes:
    return struct.pack(">q", v)


def string(s: str | bytes | None) -> bytes:
    if s is None:
        return i16(-1)
    b = s.encode() if isinstance(s, str) else s
    return i16(len(b)) + b


def bytes_field(b: bytes | None) -> bytes:
    if b is None:
        return i32(-1)
    return i32(len(b)) + b


def uvarint(v: int) -> bytes:
    assert v >= 0
    out = bytearray()
    while True:
        byte = v & 0x7F
        v >>= 7
        if v:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varint(v: int) -> bytes:
    """Zig-zag signed varint (records use these for lengths and deltas)."""
    return uvarint((v << 1) ^ (v >> 63))


def compact_string(s: str) -> bytes:
    b = s.encode()
    return uvarint(len(b) + 1) + b


def frame(payload: bytes) -> bytes:
    return i32(len(payload)) + payload


def request_header(api_key: int, version: int, correlation_id: int, flexible: bool = False) -> bytes:
    header = i16(api_key) + i16(version) + i32(correlation_id) + string(CLIENT_ID)
    if flexible:
        header += uvarint(0)  # empty tagged fields
    return header


def request(api_key: int, version: int, correlation_id: int, body: bytes, flexible: bool = False) -> bytes:
    return frame(request_header(api_key, version, correlation_id, flexible) + body)


# ---------------------------------------------------------------------------------------------- CRC32C
def _crc32c_table() -> list[int]:
    poly = 0x82F63B78  # Castagnoli, reflected
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# ---------------------------------------------------------------------------------------------- batches
def encode_record(offset_delta: int, key: bytes | None, value: bytes | None) -> bytes:
    body = i8(0) + varint(0) + varint(offset_delta)
    body += varint(-1) if key is None else varint(len(key)) + key
    body += varint(-1) if value is None else varint(len(value)) + value
    body += varint(0)  # no headers
    return varint(len(body)) + body


def raw_record(
    offset_delta: int,
    key: bytes | None,
    value: bytes | None,
    *,
    headers: list[tuple[bytes | None, bytes | None]] | None = None,
    header_count: int | None = None,
    length: int | None = None,
    key_length: int | None = None,
) -> bytes:
    """One record with every length under the caller's control: `header_count`, `length` (the record's own
    length prefix) and `key_length` replace the true values when given (the lies of the hostile-input tests); a
    None header key is written as length -1."""
    body = i8(0) + varint(0) + varint(offset_delta)
    if key_length is not None:
        body += varint(key_length) + (key or b"")
    else:
        body += varint(-1) if key is None else varint(len(key)) + key
    body += varint(-1) if value is None else varint(len(value)) + value
    headers = headers or []
    body += varint(len(headers) if header_count is None else header_count)
    for header_key, header_value in headers:
        body += varint(-1) if header_key is None else varint(len(header_key)) + header_key
        body += varint(-1) if header_value is None else varint(len(header_value)) + header_value
    return varint(len(body) if length is None else length) + body


def raw_batch(
    records: bytes,
    record_count: int,
    *,
    attributes: int = 0,
    last_offset_delta: int | None = None,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
) -> bytes:
    """A v2 record batch whose `records` section is `records` verbatim (compressed bytes, or lies), with a
    correct length and CRC32C: well formed at the batch level, so only the records can be wrong."""
    ts = int(time.time() * 1000)
    lod = record_count - 1 if last_offset_delta is None else last_offset_delta
    after_crc = (
        i16(attributes) + i32(lod) + i64(ts) + i64(ts) + i64(producer_id) + i16(producer_epoch)
        + i32(base_sequence) + i32(record_count) + records
    )
    after_length = i32(0) + i8(2) + struct.pack(">I", crc32c(after_crc)) + after_crc
    return i64(0) + i32(len(after_length)) + after_length


def record_batch(
    values: list[bytes],
    *,
    magic: int = 2,
    record_count: int | None = None,
    batch_length_delta: int = 0,
    corrupt_crc: bool = False,
    timestamp_ms: int | None = None,
) -> bytes:
    """A v2 record batch of uncompressed records with null keys.

    The keyword arguments produce the lies the malformed-input tests need: a different magic, a record count
    that does not match the records, a batch_length off by `batch_length_delta`, or a CRC that does not match.
    """
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    records = b"".join(encode_record(i, None, v) for i, v in enumerate(values))
    count = len(values) if record_count is None else record_count
    after_crc = (
        i16(0)  # attributes: no compression, create time
        + i32(len(values) - 1)  # last offset delta
        + i64(ts)  # base timestamp
        + i64(ts)  # max timestamp
        + i64(-1)  # producer id: none
        + i16(-1)  # producer epoch
        + i32(-1)  # base sequence
        + i32(count)
        + records
    )
    crc = crc32c(after_crc)
    if corrupt_crc:
        crc ^= 0xDEADBEEF
    after_length = i32(0) + i8(magic) + struct.pack(">I", crc) + after_crc  # leader epoch 0
    return i64(0) + i32(len(after_length) + batch_length_delta) + after_length


# ---------------------------------------------------------------------------------------------- requests
def api_versions_v0(correlation_id: int) -> bytes:
    return request(API_API_VERSIONS, 0, correlation_id, b"")


def api_versions_v3(correlation_id: int, version: int = 3) -> bytes:
    body = compact_string("interop-raw") + compact_string("0.1") + uvarint(0)
    return request(API_API_VERSIONS, version, correlation_id, body, flexible=True)


def produce_v7(correlation_id: int, topic: str, partitions: dict[int, bytes], acks: int = -1) -> bytes:
    """Produce v7: transactional_id NULLABLE_STRING, acks INT16, timeout_ms INT32,
    topics ARRAY(name STRING, partitions ARRAY(index INT32, records BYTES))."""
    return produce(correlation_id, topic, partitions, acks=acks, version=7)


def produce(
    correlation_id: int,
    topic: str,
    partitions: dict[int, bytes],
    *,
    acks: int = -1,
    version: int = 7,
    transactional_id: str | None = None,
) -> bytes:
    """Produce v3-8 (one request layout; v8 only adds response fields)."""
    assert 3 <= version <= 8
    body = string(transactional_id) + i16(acks) + i32(30_000) + i32(1) + string(topic) + i32(len(partitions))
    for index, records in partitions.items():
        body += i32(index) + bytes_field(records)
    return request(API_PRODUCE, version, correlation_id, body)


def fetch_v4(
    correlation_id: int,
    topic: str,
    partitions: dict[int, int],
    *,
    max_bytes: int = 50 << 20,
    partition_max_bytes: int = 1 << 20,
    max_wait_ms: int = 100,
) -> bytes:
    """Fetch v4: replica_id INT32, max_wait_ms INT32, min_bytes INT32, max_bytes INT32, isolation_level INT8,
    topics ARRAY(topic STRING, partitions ARRAY(partition INT32, fetch_offset INT64, partition_max_bytes INT32))."""
    body = i32(-1) + i32(max_wait_ms) + i32(1) + i32(max_bytes) + i8(0) + i32(1) + string(topic)
    body += i32(len(partitions))
    for index, offset in partitions.items():
        body += i32(index) + i64(offset) + i32(partition_max_bytes)
    return request(API_FETCH, 4, correlation_id, body)


def metadata_v1(correlation_id: int, topics: list[str] | None) -> bytes:
    """Metadata v1: topics ARRAY(name STRING), null (-1) = all topics."""
    if topics is None:
        body = i32(-1)
    else:
        body = i32(len(topics)) + b"".join(string(t) for t in topics)
    return request(API_METADATA, 1, correlation_id, body)


# ---------------------------------------------------------------------------------------------- responses
class Reader:
    """Cursor over a response payload."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        assert self.pos + n <= len(self.data), f"response truncated: need {n} at {self.pos}/{len(self.data)}"
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def i8(self) -> int:
        return struct.unpack(">b", self.take(1))[0]

    def i16(self) -> int:
        return struct.unpack(">h", self.take(2))[0]

    def i32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def i64(self) -> int:
        return struct.unpack(">q", self.take(8))[0]

    def uvarint(self) -> int:
        shift = result = 0
        while True:
            b = self.take(1)[0]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def string(self) -> str | None:
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def bytes_field(self) -> bytes | None:
        n = self.i32()
        return None if n < 0 else self.take(n)

    def skip_tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())

    def remaining(self) -> int:
        return len(self.data) - self.pos


def recv_exact(sock: socket.socket, n: int) -> bytes | None:
    """n bytes, or None if the peer closed (or reset) the connection first."""
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def read_response(sock: socket.socket) -> tuple[int, Reader] | None:
    """(correlation_id, reader over the body) of the next response, or None if the connection closed."""
    size_bytes = recv_exact(sock, 4)
    if size_bytes is None:
        return None
    (size,) = struct.unpack(">i", size_bytes)
    assert 4 <= size <= 256 << 20, f"implausible response size {size}"
    payload = recv_exact(sock, size)
    assert payload is not None, "connection closed mid-response"
    reader = Reader(payload)
    return reader.i32(), reader


def connect(bootstrap: str, timeout: float = 10.0) -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def wait_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Reads until the peer closes; returns what arrived before the close. Fails if it stays open."""
    sock.settimeout(timeout)
    got = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return bytes(got)
        except socket.timeout:
            break
        if not chunk:
            return bytes(got)
        got += chunk
    raise AssertionError(f"broker kept the connection open for {timeout} s (received {len(got)} bytes)")


@dataclass
class ApiVersions:
    error_code: int
    ranges: dict[int, tuple[int, int]] = field(default_factory=dict)


def parse_api_versions(reader: Reader, version: int) -> ApiVersions:
    error_code = reader.i16()
    result = ApiVersions(error_code)
    if version >= 3:
        count = reader.uvarint() - 1
        for _ in range(count):
            key, lo, hi = reader.i16(), reader.i16(), reader.i16()
            reader.skip_tags()
            result.ranges[key] = (lo, hi)
    else:
        count = reader.i32()
        for _ in range(count):
            key, lo, hi = reader.i16(), reader.i16(), reader.i16()
            result.ranges[key] = (lo, hi)
    return result


@dataclass
class ProducePartition:
    index: int
    error_code: int
    base_offset: int
    # v8+: (batch_index, message) per record at fault, and the partition's error message.
    record_errors: list[tuple[int, str | None]] = field(default_factory=list)
    error_message: str | None = None


def parse_produce_v7(reader: Reader) -> dict[str, dict[int, ProducePartition]]:
    """responses ARRAY(name STRING, partitions ARRAY(index INT32, error_code INT16, base_offset INT64,
    log_append_time_ms INT64, log_start_offset INT64)), throttle_time_ms INT32."""
    return parse_produce(reader, 7)


def parse_produce(reader: Reader, version: int) -> dict[str, dict[int, ProducePartition]]:
    """v7 (above) plus, from v8, per partition record_errors ARRAY(batch_index INT32,
    batch_index_error_message NULLABLE_STRING) and error_message NULLABLE_STRING."""
    out: dict[str, dict[int, ProducePartition]] = {}
    for _ in range(reader.i32()):
        name = reader.string()
        parts = out.setdefault(name, {})
        for _ in range(reader.i32()):
            index, error_code, base_offset = reader.i32(), reader.i16(), reader.i64()
            reader.i64()
            reader.i64()
            partition = ProducePartition(index, error_code, base_offset)
            if version >= 8:
                for _ in range(reader.i32()):
                    partition.record_errors.append((reader.i32(), reader.string()))
                partition.error_message = reader.string()
            parts[index] = partition
    reader.i32()
    return out


@dataclass
class FetchPartition:
    index: int
    error_code: int
    high_watermark: int
    records: bytes | None


def parse_fetch_v4(reader: Reader) -> dict[str, dict[int, FetchPartition]]:
    """throttle_time_ms INT32, responses ARRAY(topic STRING, partitions ARRAY(partition INT32,
    error_code INT16, high_watermark INT64, last_stable_offset INT64,
    aborted_transactions ARRAY(producer_id INT64, first_offset INT64), records BYTES))."""
    reader.i32()
    out: dict[str, dict[int, FetchPartition]] = {}
    for _ in range(reader.i32()):
        topic = reader.string()
        parts = out.setdefault(topic, {})
        for _ in range(reader.i32()):
            index, error_code, hw = reader.i32(), reader.i16(), reader.i64()
            reader.i64()
            aborted = reader.i32()
            for _ in range(max(aborted, 0)):
                reader.take(16)
            records = reader.bytes_field()  # None = null (librdkafka rejects it: docs/COMPATIBILITY.md trap 11)
            parts[index] = FetchPartition(index, error_code, hw, records)
    return out


@dataclass
class Batch:
    base_offset: int
    magic: int
    crc_ok: bool
    record_count: int
    values: list[bytes]


def parse_batches(data: bytes) -> list[Batch]:
    """Whole v2 batches in a Fetch `records` field; a partial trailing batch (allowed by the protocol) is dropped."""
    batches = []
    pos = 0
    while pos + 12 <= len(data):
        base_offset, length = struct.unpack(">qi", data[pos : pos + 12])
        end = pos + 12 + length
        if end > len(data):
            break
        raw = data[pos:end]
        magic = raw[16]
        (crc,) = struct.unpack(">I", raw[17:21])
        (count,) = struct.unpack(">i", raw[57:61])
        attributes = struct.unpack(">h", raw[21:23])[0]
        values = []
        if attributes & 0x7 == 0:
            r = Reader(raw[RECORD_BATCH_HEADER_BYTES:])
            for _ in range(count):
                values.append(_read_record_value(r))
        batches.append(Batch(base_offset, magic, crc32c(raw[CRC_START:]) == crc, count, values))
        pos = end
    return batches


def _read_varint(r: Reader) -> int:
    v = r.uvarint()
    return (v >> 1) ^ -(v & 1)


def _read_record_value(r: Reader) -> bytes:
    _length = _read_varint(r)
    r.i8()
    _read_varint(r)  # timestamp delta
    _read_varint(r)  # offset delta
    key_len = _read_varint(r)
    if key_len > 0:
        r.take(key_len)
    value_len = _read_varint(r)
    value = r.take(value_len) if value_len >= 0 else b""
    for _ in range(_read_varint(r)):
        r.take(_read_varint(r))
        hv = _read_varint(r)
        if hv > 0:
            r.take(hv)
    return value
