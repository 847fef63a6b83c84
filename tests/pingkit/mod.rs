//! Helpers for the `netlab ping` tests: run the binary with a time limit, check permissions (skip
//! where raw sockets or namespaces are not permitted, fail under `CI=true`), and network namespaces
//! that are always removed.
#![allow(dead_code)]

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub fn netlab_bin() -> &'static str {
    env!("CARGO_BIN_EXE_netlab")
}

/// What a finished run printed.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// Wait for `child` at most `limit`; kill it past that (and fail the test).
pub fn finish(mut child: Child, limit: Duration) -> Run {
    let start = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status.code();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child.stdout.take().map(|mut o| o.read_to_string(&mut stdout));
    child.stderr.take().map(|mut e| e.read_to_string(&mut stderr));
    Run { code, stdout, stderr, elapsed: start.elapsed() }
}

/// Start `program args...` with piped output (and quiet logs).
pub fn spawn(program: &str, args: &[&str]) -> Child {
    Command::new(program)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// `netlab ping ARGS...`, at most `limit`.
pub fn ping(args: &[&str], limit: Duration) -> Run {
    let mut full = vec!["ping"];
    full.extend_from_slice(args);
    finish(spawn(netlab_bin(), &full), limit)
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skip (return false) when `what` is not permitted here; under `CI=true` that is a failure.
pub fn permitted(ok: bool, what: &str) -> bool {
    if !ok {
        assert!(!in_ci(), "CI=true but {what} is not available");
        eprintln!("skipping: {what} is not available here");
    }
    ok
}

/// Whether this process may open a raw ICMP socket (what `netlab ping` falls back to).
pub fn raw_sockets() -> bool {
    // SAFETY: socket(2) and close(2) on a descriptor we own.
    let ok = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP);
        if fd >= 0 {
            libc::close(fd);
        }
        fd >= 0
    };
    permitted(ok, "a raw ICMP socket (root or CAP_NET_RAW)")
}

/// Whether a program is installed.
pub fn have(program: &str, what: &str) -> bool {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    permitted(ok, what)
}

/// A network namespace with only `lo` (up), removed on drop, even when the test fails.
pub struct Netns {
    pub name: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Netns {
    /// A fresh namespace with a name no parallel test or run uses; `None` (skip) if not permitted.
    pub fn new() -> Option<Netns> {
        if !have("ip", "iproute2 (ip netns)") || !have("nft", "nftables") {
            return None;
        }
        let name = format!("nlping{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let ok = Command::new("ip").args(["netns", "add", &name]).status().is_ok_and(|s| s.success());
        if !permitted(ok, "ip netns add (root)") {
            return None;
        }
        let ns = Netns { name };
        ns.run(&["ip", "link", "set", "lo", "up"]);
        Some(ns)
    }

    /// Run a command inside the namespace; it must succeed.
    pub fn run(&self, cmd: &[&str]) {
        let status =
            Command::new("ip").args(["netns", "exec", &self.name]).args(cmd).status().expect("ip netns exec");
        assert!(status.success(), "{cmd:?} failed in {}", self.name);
    }

    /// Load an nftables ruleset (text) inside the namespace.
    pub fn nft(&self, rules: &str) {
        let path = std::env::temp_dir().join(format!("{}.nft", self.name));
        std::fs::write(&path, rules).expect("write rules");
        self.run(&["nft", "-f", path.to_str().expect("utf-8 path")]);
        let _ = std::fs::remove_file(path);
    }

    /// `netlab ping ARGS...` inside the namespace, at most `limit`.
    pub fn ping(&self, args: &[&str], limit: Duration) -> Run {
        self.ping_env(args, &[], limit)
    }

    /// Like [`Netns::ping`], with extra environment variables (e.g. `RUST_LOG`).
    pub fn ping_env(&self, args: &[&str], env: &[(&str, &str)], limit: Duration) -> Run {
        let mut full = vec!["netns", "exec", &self.name, "env"];
        let pairs: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        full.extend(pairs.iter().map(String::as_str));
        full.extend([netlab_bin(), "ping"]);
        full.extend_from_slice(args);
        finish(spawn("ip", &full), limit)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// A line's shape: every run of digits (with decimal points between) becomes `N`.
pub fn shape(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            while chars.peek().is_some_and(|c| c.is_ascii_digit() || *c == '.') {
                chars.next();
            }
            out.push('N');
        } else {
            out.push(c);
        }
    }
    out
}

/// Threads of process `pid`, from /proc.
pub fn threads(pid: u32) -> Option<usize> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|n| n.trim().parse().ok())
}
