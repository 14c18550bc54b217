//! Real `nats-server` processes on loopback for the JetStream tests: one
//! node or a 3-node JetStream cluster, each node killable and restartable
//! with its own store directory, and optional per-practice users.
//!
//! *Why a real server*: the guarantees under test (publish acknowledged only
//! once stored and replicated, the duplicate window, durable consumers,
//! permissions) are the server's; a stand-in would prove nothing.

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `nats-server` binary, or `None` (with the reason printed) when it is
/// missing. Under `CI` a missing server fails the test instead.
pub fn nats_server_or_skip() -> Option<PathBuf> {
    for dir in std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
    {
        let candidate = dir.join("nats-server");
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    if std::env::var_os("CI").is_some() {
        panic!("nats-server is missing; .ci/install.d/80-nats.sh installs it");
    }
    eprintln!("SKIPPED: nats-server is not installed (apt-get install nats-server)");
    None
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// One user of the `authorization` block: who may publish and subscribe where.
#[derive(Debug, Clone)]
pub struct NatsUser {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
    /// Subjects it may publish to.
    pub publish: Vec<String>,
    /// Subjects it may subscribe to.
    pub subscribe: Vec<String>,
}

/// One `nats-server` node.
#[derive(Debug)]
pub struct NatsNode {
    binary: PathBuf,
    config: PathBuf,
    /// Client port on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
}

impl NatsNode {
    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the node and waits until it answers with its INFO line.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "node already running");
        let log = self.config.with_extension("log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("node log");
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut line = String::new();
                if BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("INFO") {
                    return;
                }
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let mut text = String::new();
                let _ = std::fs::File::open(self.config.with_extension("log"))
                    .and_then(|mut f| f.read_to_string(&mut text));
                panic!("nats-server exited ({status}): {text}");
            }
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the node with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether it runs.
    pub fn running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for NatsNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One node or a cluster, with its directory.
#[derive(Debug)]
pub struct NatsCluster {
    /// The nodes.
    pub nodes: Vec<NatsNode>,
    /// Holds configs, logs and JetStream stores.
    pub dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts `size` JetStream nodes (a cluster when `size > 1`), with
    /// `users` as the only accounts' users when given (no auth otherwise).
    pub fn start(binary: &Path, size: usize, users: &[NatsUser]) -> NatsCluster {
        NatsCluster::start_with(binary, size, users, "")
    }

    /// Like [`NatsCluster::start`], with `extra` appended to every node's
    /// configuration (a `tls { … }` block).
    pub fn start_with(binary: &Path, size: usize, users: &[NatsUser], extra: &str) -> NatsCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let client_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let cluster_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for i in 0..size {
            let store = dir.path().join(format!("n{i}-js"));
            let mut config = format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{}\n\
                 jetstream {{ store_dir: {:?}, max_memory_store: 64MB, max_file_store: 1GB }}\n",
                client_ports[i],
                store.display().to_string()
            );
            if size > 1 {
                let routes: Vec<String> = cluster_ports
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, p)| format!("nats-route://127.0.0.1:{p}"))
                    .collect();
                config.push_str(&format!(
                    "cluster {{ name: fleet, listen: 127.0.0.1:{}, routes: [{}] }}\n",
                    cluster_ports[i],
                    routes.join(", ")
                ));
            }
            if !users.is_empty() {
                config.push_str("authorization { users: [\n");
                for u in users {
                    let list = |v: &[String]| {
                        v.iter()
                            .map(|s| format!("{s:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    config.push_str(&format!(
                        "  {{ user: {:?}, password: {:?}, permissions: {{ publish: {{ allow: [{}] }}, subscribe: {{ allow: [{}] }} }} }}\n",
                        u.user,
                        u.password,
                        list(&u.publish),
                        list(&u.subscribe)
                    ));
                }
                config.push_str("] }\n");
            }
            config.push_str(extra);
            let path = dir.path().join(format!("n{i}.conf"));
            std::fs::write(&path, config).expect("write nats config");
            nodes.push(NatsNode {
                binary: binary.to_path_buf(),
                config: path,
                port: client_ports[i],
                child: None,
            });
        }
        for node in &mut nodes {
            node.start();
        }
        NatsCluster { nodes, dir }
    }

    /// Every node's URL.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(NatsNode::url).collect()
    }
}
