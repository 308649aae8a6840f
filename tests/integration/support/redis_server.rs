//! A real `redis-server` (Debian's package, installed by `tests/clients/install.sh`) for tests,
//! on a free loopback port with no persistence (`--save '' --appendonly no`) in a scratch
//! directory under `target/`.
//!
//! [`shared`] starts one per test process, on first use; tests keep apart through key prefixes.
//! [`RedisServer::start`] starts a dedicated one (a password, a renamed command, a restart),
//! stopped when dropped. Every server gets `PR_SET_PDEATHSIG`, so none outlives the test
//! process, even when it is killed.
//!
//! Used by the library's unit tests (`src/store`) and by the integration tests.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A running `redis-server`.
pub struct RedisServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
    dir: PathBuf,
    args: Vec<String>,
}

impl RedisServer {
    /// Starts a server on a free port with `extra` arguments (e.g. `["--requirepass", "pw"]`),
    /// and waits until it accepts connections.
    pub fn start(extra: &[&str]) -> RedisServer {
        RedisServer::start_on(free_port(), extra)
    }

    /// Starts a server on `port` (e.g. one a process under test already tries to reach).
    pub fn start_on(port: u16, extra: &[&str]) -> RedisServer {
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let dir =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("target/test-redis/{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the Redis scratch directory");
        let child = spawn(port, &dir, &args);
        let server = RedisServer { port, child, dir, args };
        server.wait_until_up();
        server
    }

    fn wait_until_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(reply) = self.raw("PING") {
                // Up: PONG, or NOAUTH when it wants a password.
                if reply.starts_with("+PONG") || reply.starts_with("-NOAUTH") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
        panic!("redis-server on port {} never answered PING:\n{log}", self.port);
    }

    /// Sends one inline command and returns the first reply chunk (`None`: not reachable).
    pub fn raw(&self, command: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(format!("{command}\r\n").as_bytes()).ok()?;
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Stops the server (SIGKILL: as abrupt as a crash).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port with the same arguments (the data is gone).
    pub fn restart(&mut self) {
        self.stop();
        self.child = spawn(self.port, &self.dir, &self.args);
        self.wait_until_up();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free TCP port on loopback for a server a test starts, below the kernel's ephemeral range.
/// A port from that range (what binding port 0 gives) can be taken by any outgoing connection
/// between this call and the server's own bind, and the load tests open thousands of them: a
/// replica failed to start with "Address already in use". Each process walks the range from its
/// own offset, so parallel test processes rarely try the same ports.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let start = low.saturating_sub(12_000).max(1024);
    let span = low - start;
    let offset = std::process::id().wrapping_mul(7919);
    for _ in 0..span {
        let port = (start + offset.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port below {low}");
}

fn spawn(port: u16, dir: &std::path::Path, args: &[String]) -> Child {
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(dir.join("redis.log"))
        .expect("open the Redis log");
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ])
    .arg("--dir")
    .arg(dir)
    .args(args)
    .stdin(Stdio::null())
    .stdout(log)
    .stderr(Stdio::null());
    // SAFETY: prctl only sets a flag of the child process; nothing else runs between fork and
    // exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn().unwrap_or_else(|e| {
        panic!("cannot start redis-server ({e}): install it with tests/clients/install.sh or `apt-get install redis-server`")
    })
}

/// The test process's shared server, started on first use. It is owned by a thread that lives
/// as long as the process (the death signal follows the thread that started the child).
pub fn shared() -> &'static SharedRedis {
    static SHARED: OnceLock<SharedRedis> = OnceLock::new();
    SHARED.get_or_init(|| {
        remove_stale_dirs();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("redis-server".into())
            .spawn(move || {
                let server = RedisServer::start(&[]);
                tx.send(server.port).expect("the test waits for the port");
                loop {
                    std::thread::park();
                }
            })
            .expect("spawn the redis-server owner thread");
        SharedRedis {
            port: rx.recv().expect("redis-server started"),
        }
    })
}

/// Removes the scratch directories of test processes that are gone (`<pid>-<port>`).
fn remove_stale_dirs() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-redis");
    for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name.split('-').next().unwrap_or_default();
        if !std::path::Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The shared server's address.
pub struct SharedRedis {
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl SharedRedis {
    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

/// A key prefix no other test uses (`test-<n>-<random>:`).
pub fn unique_prefix(test: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{test}-{}-{nanos:x}:", N.fetch_add(1, Ordering::Relaxed))
}
