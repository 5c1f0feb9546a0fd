//! The controller listener's request path over real sockets: round trips, handler errors,
//! concurrent calls on one connection, malformed and oversized frames (which close only their
//! own connection), a client that backs off while the server is down and reconnects, and one
//! that replaces a connection gone silent.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use futures::io::{AsyncReadExt, AsyncWriteExt};

use super::harness::{free_port, serial, TestNode, Worker};
use crate::limits::MAX_FRAME_BYTES;
use crate::rpc::frame::{self, FrameKind};
use crate::{QuorumConfig, RpcClient, RpcClientConfig, RpcError, RpcHandler};

/// Sub-APIs of the test handler.
const API_REVERSE: u16 = 1;
const API_REFUSE: u16 = 2;
const API_SLOW_ECHO: u16 = 3;

struct TestHandler;

impl RpcHandler for TestHandler {
    fn handle(&self, api: u16, payload: Bytes) -> LocalBoxFuture<'static, Result<Bytes, String>> {
        Box::pin(async move {
            match api {
                API_REVERSE => Ok(payload.iter().rev().copied().collect::<Vec<u8>>().into()),
                API_REFUSE => Err(format!("api {api} refuses {} bytes", payload.len())),
                API_SLOW_ECHO => {
                    glommio::timer::sleep(Duration::from_millis(200)).await;
                    Ok(payload)
                }
                other => Err(format!("unknown api {other}")),
            }
        })
    }
}

fn test_handler() -> Rc<dyn RpcHandler> {
    Rc::new(TestHandler)
}

/// A single-voter quorum listening on `addr` with the test handler.
fn server_config(dir: &std::path::Path, addr: SocketAddr) -> QuorumConfig {
    let voters = BTreeMap::from([(1, addr)]);
    QuorumConfig::new(1, voters, Some(addr), dir.join("quorum"))
}

fn client_worker() -> Worker<Rc<RpcClient>> {
    Worker::start(
        || async { Ok(RpcClient::new(RpcClientConfig::default())) },
        |_| async {},
    )
    .expect("client executor")
}

const CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[test]
fn requests_round_trip_and_bad_frames_close_only_their_connection() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let _server = TestNode::start(server_config(dir.path(), addr), Some(test_handler));
    let client = client_worker();

    let (reversed, refused) = client.run(move |client| async move {
        (
            client.call(addr, API_REVERSE, b"abc", CALL_TIMEOUT).await,
            client.call(addr, API_REFUSE, b"xy", CALL_TIMEOUT).await,
        )
    });
    assert_eq!(reversed, Ok(Bytes::from_static(b"cba")));
    match refused {
        Err(RpcError::Remote { message, .. }) => assert_eq!(message, "api 2 refuses 2 bytes"),
        other => panic!("expected a remote error, got {other:?}"),
    }

    // Many calls in flight on the one connection, answered out of order (slow ones last).
    let answers = client.run(move |client| async move {
        let calls = (0..40u32).map(|i| {
            let client = client.clone();
            async move {
                let api = if i % 2 == 0 {
                    API_SLOW_ECHO
                } else {
                    API_REVERSE
                };
                let payload = i.to_le_bytes();
                let answer = client.call(addr, api, &payload, CALL_TIMEOUT).await;
                (i, api, answer)
            }
        });
        futures::future::join_all(calls).await
    });
    for (i, api, answer) in answers {
        let mut expected = i.to_le_bytes().to_vec();
        if api == API_REVERSE {
            expected.reverse();
        }
        assert_eq!(answer, Ok(Bytes::from(expected)), "call {i}");
    }

    // Garbage, an oversized length and a response frame (only servers send those) each close
    // their own connection; the client's connection keeps working.
    let garbage = {
        let mut bytes = 16u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0xAB; 16]);
        bytes
    };
    let oversized = ((MAX_FRAME_BYTES + 1) as u32).to_le_bytes().to_vec();
    let response = frame::encode(FrameKind::Response, 1, 1, b"?").expect("encode");
    for bad in [garbage, oversized, response] {
        let (closed, still) = client.run(move |client| async move {
            let mut raw = glommio::net::TcpStream::connect(addr)
                .await
                .expect("connect");
            raw.write_all(&bad).await.expect("write");
            let mut byte = [0u8; 1];
            // The server closes: EOF (or a reset), never an answer.
            let closed = matches!(raw.read(&mut byte).await, Ok(0) | Err(_));
            let still = client.call(addr, API_REVERSE, b"ok", CALL_TIMEOUT).await;
            (closed, still)
        });
        assert!(closed, "the bad connection was closed");
        assert_eq!(still, Ok(Bytes::from_static(b"ko")));
    }
}

#[test]
fn a_client_backs_off_while_the_server_is_down_and_reconnects() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let client = client_worker();

    // Nobody listens: refused at once, then the backoff answers without a new attempt.
    let (first, second) = client.run(move |client| async move {
        let first = client.call(addr, API_REVERSE, b"a", CALL_TIMEOUT).await;
        let second = client
            .call(addr, API_REVERSE, b"a", Duration::from_millis(20))
            .await;
        (first, second)
    });
    assert!(
        matches!(first, Err(RpcError::Unreachable { .. })),
        "{first:?}"
    );
    assert!(
        matches!(&second, Err(RpcError::Unreachable { reason, .. }) if reason.contains("next attempt")),
        "{second:?}"
    );

    // The server comes up: the next call waits out the backoff and connects.
    let mut server = TestNode::start(server_config(dir.path(), addr), Some(test_handler));
    let answer = client.run(move |client| async move {
        client.call(addr, API_REVERSE, b"up", CALL_TIMEOUT).await
    });
    assert_eq!(answer, Ok(Bytes::from_static(b"pu")));

    // A restart breaks the connection; the client notices and connects to the new server.
    server.stop();
    let _server = TestNode::start(server_config(dir.path(), addr), Some(test_handler));
    let answer = client.run(move |client| async move {
        let mut last = None;
        for _ in 0..20 {
            match client.call(addr, API_REVERSE, b"again", CALL_TIMEOUT).await {
                Ok(answer) => return Ok(answer),
                Err(error) => last = Some(error),
            }
            glommio::timer::sleep(Duration::from_millis(50)).await;
        }
        Err(last)
    });
    assert_eq!(answer, Ok(Bytes::from_static(b"niaga")));
}

#[test]
fn a_connection_silent_for_a_whole_call_timeout_is_replaced() {
    let _serial = serial();
    let client = client_worker();
    // A black hole, as a peer behind a cut network looks: it accepts, never reads, never answers.
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let addr = client.run(move |_| async move {
        let listener = glommio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local address");
        glommio::spawn_local(async move {
            let mut held = Vec::new();
            while let Ok(stream) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        })
        .detach();
        addr
    });
    let short = Duration::from_millis(300);
    let (first, second) = client.run(move |client| async move {
        (
            client.call(addr, API_REVERSE, b"x", short).await,
            client.call(addr, API_REVERSE, b"x", short).await,
        )
    });
    assert!(matches!(first, Err(RpcError::Timeout { .. })), "{first:?}");
    assert!(
        matches!(second, Err(RpcError::Timeout { .. })),
        "{second:?}"
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "the second call reused the silent connection instead of opening a new one"
    );
}
