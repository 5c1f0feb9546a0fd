//! Test clusters: each node is a real `Quorum` on its own glommio executor thread with its own
//! data dir, talking to the others over 127.0.0.1. The test thread drives a node by sending it
//! closures that run on the node's executor, and polls conditions with a deadline.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::channel::mpsc as async_mpsc;
use futures::future::LocalBoxFuture;
use futures::StreamExt;

use crate::testing::TEST_IO_MEMORY_BYTES;
use crate::watch::within;
use crate::{Quorum, QuorumConfig, RpcHandler, StateMachine};

/// Cluster tests run one at a time: each starts several executors and measures elections, which
/// two shared cores and the locked-memory cap do not serve well in parallel.
static CLUSTER_TESTS: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    CLUSTER_TESTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Longest a test waits for any one condition before it fails.
pub const CONDITION_TIMEOUT: Duration = Duration::from_secs(20);

/// `propose_timeout` in tests: they check what commits, not how fast, and a machine busy with
/// other builds can stall an fdatasync for seconds.
pub const TEST_PROPOSE_TIMEOUT: Duration = CONDITION_TIMEOUT;

/// A state machine that records every applied entry; its snapshot is the whole record, so two
/// nodes agree exactly when their records are equal.
#[derive(Default)]
pub struct Recorder {
    pub applied: std::cell::RefCell<Vec<(u64, Vec<u8>)>>,
    /// The index of every snapshot restored (at start-up or installed from the leader).
    pub restored: std::cell::RefCell<Vec<u64>>,
}

impl StateMachine for Recorder {
    fn apply(&self, index: u64, data: &[u8]) {
        let mut applied = self.applied.borrow_mut();
        if let Some((last, _)) = applied.last() {
            assert!(index > *last, "apply at {index} after {last}");
        }
        applied.push((index, data.to_vec()));
    }

    fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (index, data) in self.applied.borrow().iter() {
            out.extend_from_slice(&index.to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(data);
        }
        out
    }

    fn restore(&self, index: u64, mut data: &[u8]) {
        let mut applied = Vec::new();
        while !data.is_empty() {
            let at = u64::from_le_bytes(data[..8].try_into().expect("index"));
            let len = u32::from_le_bytes(data[8..12].try_into().expect("len")) as usize;
            applied.push((at, data[12..12 + len].to_vec()));
            data = &data[12 + len..];
        }
        *self.applied.borrow_mut() = applied;
        self.restored.borrow_mut().push(index);
    }
}

type Job<S> = Box<dyn FnOnce(S) -> LocalBoxFuture<'static, ()> + Send>;

/// A glommio executor on its own thread holding a state `S` made there (a quorum, a client),
/// running the closures the test thread sends it, one after another.
pub struct Worker<S: Clone + 'static> {
    jobs: Option<async_mpsc::UnboundedSender<Job<S>>>,
    thread: Option<glommio::ExecutorJoinHandle<()>>,
}

impl<S: Clone + 'static> Worker<S> {
    /// Starts the thread, builds the state with `make` and waits for it; `finish` runs on the
    /// state when the worker stops.
    pub fn start<Make, MakeFuture, Finish, FinishFuture>(
        make: Make,
        finish: Finish,
    ) -> Result<Worker<S>, String>
    where
        Make: FnOnce() -> MakeFuture + Send + 'static,
        MakeFuture: Future<Output = Result<S, String>> + 'static,
        Finish: FnOnce(S) -> FinishFuture + Send + 'static,
        FinishFuture: Future<Output = ()> + 'static,
    {
        crate::testing::init_tracing();
        let (jobs, mut inbox) = async_mpsc::unbounded::<Job<S>>();
        let (started, started_rx) = mpsc::channel::<Result<(), String>>();
        let thread = glommio::LocalExecutorBuilder::default()
            .io_memory(TEST_IO_MEMORY_BYTES)
            .spawn(move || async move {
                let state = match make().await {
                    Ok(state) => state,
                    Err(error) => {
                        let _ = started.send(Err(error));
                        return;
                    }
                };
                let _ = started.send(Ok(()));
                while let Some(job) = inbox.next().await {
                    job(state.clone()).await;
                }
                finish(state).await;
            })
            .map_err(|error| error.to_string())?;
        let mut worker = Worker {
            jobs: Some(jobs),
            thread: Some(thread),
        };
        match started_rx.recv_timeout(CONDITION_TIMEOUT) {
            Ok(Ok(())) => Ok(worker),
            Ok(Err(error)) => {
                worker.stop();
                Err(error)
            }
            Err(error) => Err(format!("not started in time: {error}")),
        }
    }

    /// Runs `body` on the worker's executor and returns its result.
    pub fn run<R, F, Fut>(&self, body: F) -> R
    where
        R: Send + 'static,
        F: FnOnce(S) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        let (reply, result) = mpsc::channel();
        let job: Job<S> = Box::new(move |state| {
            Box::pin(async move {
                let _ = reply.send(body(state).await);
            })
        });
        self.jobs
            .as_ref()
            .expect("worker running")
            .unbounded_send(job)
            .expect("worker thread alive");
        result
            .recv_timeout(Duration::from_secs(60))
            .expect("the worker answered")
    }

    /// Ends the job loop (running `finish`) and joins the thread.
    pub fn stop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            thread.join().expect("worker thread ended cleanly");
        }
    }
}

impl<S: Clone + 'static> Drop for Worker<S> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.stop();
        }
    }
}

/// Makes the node's RPC handler on its own thread (handlers are not `Send`).
pub type HandlerFactory = fn() -> Rc<dyn RpcHandler>;

/// One running quorum member (with a [`Recorder`] as its state machine) on its own thread.
pub struct TestNode {
    worker: Worker<(Rc<Quorum>, Rc<Recorder>)>,
}

impl TestNode {
    /// Starts a node and waits until `Quorum::start` returned.
    pub fn start(config: QuorumConfig, handler: Option<HandlerFactory>) -> TestNode {
        Self::try_start(config, handler)
            .unwrap_or_else(|error| panic!("quorum did not start: {error}"))
    }

    pub fn try_start(
        config: QuorumConfig,
        handler: Option<HandlerFactory>,
    ) -> Result<TestNode, String> {
        let worker = Worker::start(
            move || async move {
                let recorder = Rc::new(Recorder::default());
                let rpc = handler.map(|make| make());
                let quorum = Quorum::start(config, recorder.clone(), rpc)
                    .await
                    .map_err(|error| error.to_string())?;
                Ok((quorum, recorder))
            },
            |(quorum, _)| async move {
                quorum.shutdown().await.expect("clean shutdown");
            },
        )?;
        Ok(TestNode { worker })
    }

    /// Runs `body` on the node's executor and returns its result.
    pub fn run<R, F, Fut>(&self, body: F) -> R
    where
        R: Send + 'static,
        F: FnOnce(Rc<Quorum>, Rc<Recorder>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        self.worker
            .run(move |(quorum, recorder)| body(quorum, recorder))
    }

    /// Shuts the quorum down cleanly and joins its thread.
    pub fn stop(&mut self) {
        self.worker.stop();
    }
}

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// A set of voters on 127.0.0.1, their data dirs and the running nodes.
pub struct Cluster {
    pub configs: BTreeMap<u64, QuorumConfig>,
    pub nodes: BTreeMap<u64, TestNode>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Configures `size` voters (ids 1..=size) with `tweak` applied, and starts them all.
    pub fn start(size: u64, tweak: impl Fn(&mut QuorumConfig)) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let voters: BTreeMap<u64, SocketAddr> = (1..=size)
            .map(|id| (id, SocketAddr::from(([127, 0, 0, 1], free_port()))))
            .collect();
        let configs: BTreeMap<u64, QuorumConfig> = voters
            .iter()
            .map(|(id, addr)| {
                let data_dir: PathBuf = dir.path().join(format!("node-{id}"));
                let mut config = QuorumConfig::new(*id, voters.clone(), Some(*addr), data_dir);
                config.propose_timeout = TEST_PROPOSE_TIMEOUT;
                tweak(&mut config);
                (*id, config)
            })
            .collect();
        let mut cluster = Cluster {
            configs,
            nodes: BTreeMap::new(),
            _dir: dir,
        };
        for id in 1..=size {
            cluster.start_node(id);
        }
        cluster
    }

    pub fn start_node(&mut self, id: u64) {
        let node = TestNode::start(self.configs[&id].clone(), None);
        self.nodes.insert(id, node);
    }

    pub fn stop_node(&mut self, id: u64) {
        if let Some(mut node) = self.nodes.remove(&id) {
            node.stop();
        }
    }

    /// Starts stopping node `id` on another thread (so the caller can time what the others do
    /// meanwhile); the handle yields how long the clean shutdown took.
    pub fn stop_node_in_background(&mut self, id: u64) -> std::thread::JoinHandle<Duration> {
        let mut node = self.nodes.remove(&id).expect("a running node");
        std::thread::spawn(move || {
            let started = Instant::now();
            node.stop();
            started.elapsed()
        })
    }

    pub fn node(&self, id: u64) -> &TestNode {
        &self.nodes[&id]
    }

    /// (is_leader, leader, term) of every running node.
    pub fn views(&self) -> BTreeMap<u64, (bool, Option<u64>, u64)> {
        self.nodes
            .iter()
            .map(|(id, node)| {
                let view = node.run(|quorum, _| async move {
                    (quorum.is_leader(), quorum.leader(), quorum.term())
                });
                (*id, view)
            })
            .collect()
    }

    /// Waits until every running node names the same leader, which says it leads, in a term
    /// above `above_term`; returns (leader, term).
    pub fn wait_for_leader(&self, above_term: u64) -> (u64, u64) {
        wait_for("an agreed leader", || {
            let views = self.views();
            let (_, (_, first_leader, term)) = views.iter().next()?;
            let leader = (*first_leader)?;
            let agreed = views
                .values()
                .all(|(_, known, t)| *known == Some(leader) && *t == *term);
            let leads = views
                .get(&leader)
                .is_some_and(|(is_leader, _, _)| *is_leader);
            (agreed && leads && *term > above_term).then_some((leader, *term))
        })
    }

    /// Waits until node `id` applied at least `index`.
    pub fn wait_applied(&self, id: u64, index: u64) {
        let applied = self.node(id).run(move |quorum, _| async move {
            within(CONDITION_TIMEOUT, quorum.wait_applied(index)).await
        });
        assert!(
            matches!(applied, Some(Ok(()))),
            "node {id} did not apply {index} in time"
        );
    }

    pub fn records(&self, id: u64) -> Vec<(u64, Vec<u8>)> {
        self.node(id)
            .run(|_, recorder| async move { recorder.applied.borrow().clone() })
    }
}

/// Polls `check` every 5 ms until it returns `Some`, for at most [`CONDITION_TIMEOUT`].
pub fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + CONDITION_TIMEOUT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Proposes `count` entries `"{prefix}-{i}"` through `node`, `concurrency` at a time, and
/// returns their indexes in proposal order.
pub fn propose_many(
    node: &TestNode,
    prefix: &'static str,
    count: usize,
    concurrency: usize,
) -> Vec<u64> {
    node.run(move |quorum, _| async move {
        let mut indexes = Vec::with_capacity(count);
        let mut next = 0;
        while next < count {
            let end = (next + concurrency).min(count);
            let batch = (next..end).map(|i| {
                let quorum = quorum.clone();
                async move { quorum.propose(format!("{prefix}-{i}").into_bytes()).await }
            });
            for outcome in futures::future::join_all(batch).await {
                indexes.push(outcome.expect("proposal committed"));
            }
            next = end;
        }
        indexes
    })
}
