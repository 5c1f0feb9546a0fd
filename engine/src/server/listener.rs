//! The shard's listening socket.
//!
//! - SO_REUSEPORT: every shard binds the same address and the kernel spreads connections.
//! - SO_REUSEADDR, as Kafka's acceptor sets it: a restarted broker binds over connections of its
//!   previous run still in TIME_WAIT, or over its previous listener while that one is closing.
//! - An explicit stop at shutdown: the listener is shut down before the logs close. A closed fd is
//!   not enough, because glommio's pending io_uring accept keeps the socket alive until the ring is
//!   torn down, after the process exits: until then the kernel kept handing new connections to a
//!   listener nobody served, and a broker restarted right away could fail to bind.

use std::net::{Shutdown, SocketAddr};
use std::os::fd::{FromRawFd, IntoRawFd};

use glommio::net::TcpListener;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Pending connections the kernel queues per shard before `accept` (glommio's own value).
pub const LISTEN_BACKLOG: i32 = 1024;

/// A shard's listener and the handle that stops it.
pub struct ShardListener {
    pub listener: TcpListener,
    pub stopper: ListenerStopper,
}

/// Stops a listener from another task: pending and later accepts fail, the port is released for
/// new binds, and no new connection is queued on it.
pub struct ListenerStopper {
    /// A duplicate descriptor of the listening socket (shutdown acts on the socket, not the fd).
    socket: Socket,
}

impl ListenerStopper {
    pub fn stop(&self) {
        // ENOTCONN would mean it is already stopped; either way nothing more can be done.
        if let Err(e) = self.socket.shutdown(Shutdown::Both) {
            tracing::debug!(error = %e, "listener shutdown");
        }
    }
}

/// Binds a listener on `addr` for the current shard. Must run on a glommio executor thread (the
/// listener registers with its reactor).
pub fn bind_shard_listener(addr: SocketAddr) -> std::io::Result<ShardListener> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&SockAddr::from(addr))?;
    socket.listen(LISTEN_BACKLOG)?;
    let stopper = ListenerStopper {
        socket: socket.try_clone()?,
    };
    // SAFETY: the descriptor is a bound, listening TCP socket whose ownership moves into the
    // glommio listener (into_raw_fd gives it up, so it is closed exactly once).
    let listener = unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) };
    Ok(ShardListener { listener, stopper })
}
