//! Shared helpers for integration tests: start the real `netlab` binary on ephemeral ports, learn
//! where it listens from its log, read its counters, stop it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Path of the binary under test.
pub fn netlab_bin() -> &'static str {
    env!("CARGO_BIN_EXE_netlab")
}

/// A running `netlab serve`.
pub struct Server {
    pub child: Child,
    /// `"echo/tcp"` → address, from the `listening echo/tcp ADDR` lines.
    pub addrs: HashMap<String, SocketAddr>,
    lines: Receiver<String>,
    /// Every stderr line seen so far.
    pub log: Vec<String>,
}

impl Server {
    /// Start `netlab serve` with every protocol off except those enabled in `args`, e.g.
    /// `Server::start(&["--echo", "127.0.0.1:0"])`. Waits until every enabled listener is logged.
    pub fn start(args: &[&str]) -> Server {
        Self::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(netlab_bin());
        cmd.arg("serve");
        for p in ["--echo", "--chat", "--tftp", "--celsius"] {
            cmd.args([p, "off"]);
        }
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        cmd.env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn netlab");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server { child, addrs: HashMap::new(), lines, log: Vec::new() };
        // The server logs one `listening NAME ADDR` line per listener, then `ready`.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let line = server
                .next_line(deadline)
                .unwrap_or_else(|| panic!("server did not start: {:?}", server.log));
            if let Some(rest) = line.split("listening ").nth(1) {
                let mut it = rest.split_whitespace();
                let (name, addr) = (it.next().unwrap(), it.next().unwrap());
                server.addrs.insert(name.to_string(), addr.parse().unwrap());
            } else if line.contains("ready: ") {
                break;
            }
        }
        server
    }

    /// The address a listener was bound to, e.g. `addr("echo/udp")`.
    pub fn addr(&self, name: &str) -> SocketAddr {
        *self.addrs.get(name).unwrap_or_else(|| panic!("no listener {name}: {:?}", self.addrs))
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The next stderr line, or None at the deadline or end of output.
    pub fn next_line(&mut self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                self.log.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Wait for a log line containing `needle`; returns it.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> Option<String> {
        if let Some(l) = self.log.iter().find(|l| l.contains(needle)) {
            return Some(l.clone());
        }
        let deadline = Instant::now() + timeout;
        while let Some(line) = self.next_line(deadline) {
            if line.contains(needle) {
                return Some(line);
            }
        }
        None
    }

    /// Ask for counters (SIGUSR1) and parse the `stats reactor` and `stats <service>` lines into
    /// `"reactor.live_sockets"`, `"echo.conns_now"`, ... → value.
    pub fn stats(&mut self) -> HashMap<String, u64> {
        let seen = self.log.len();
        signal(self.pid(), libc::SIGUSR1);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let done = self.log[seen..].iter().any(|l| l.contains("stats reactor (on SIGUSR1)"));
            if done {
                break;
            }
            self.next_line(deadline).expect("no stats line after SIGUSR1");
        }
        let mut map = HashMap::new();
        for line in &self.log[seen..] {
            let Some(rest) = line.split("stats ").nth(1) else { continue };
            let name = rest.split_whitespace().next().unwrap_or("");
            let Some(body) = rest.split("): ").nth(1) else { continue };
            for kv in body.split_whitespace() {
                if let Some((k, v)) = kv.split_once('=') {
                    if let Ok(v) = v.parse() {
                        map.insert(format!("{name}.{k}"), v);
                    }
                }
            }
        }
        map
    }

    /// Poll the counters until `pred` holds or `timeout` passes; returns the last counters.
    pub fn stats_until(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&HashMap<String, u64>) -> bool,
    ) -> HashMap<String, u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.stats();
            if pred(&s) || Instant::now() > deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Number of threads of the server process.
    pub fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid())).unwrap().count()
    }

    /// Send SIGTERM and wait for the exit status (panics after `timeout`).
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        signal(self.pid(), libc::SIGTERM);
        self.wait(timeout)
    }

    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Collect the rest of the log.
                while self.next_line(Instant::now() + Duration::from_millis(200)).is_some() {}
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("server did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Raise this test process's open-file limit to the hard limit.
pub fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
