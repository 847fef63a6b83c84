//! `netlab bench`: a load generator for both I/O models, and the report `make bench` writes.
//!
//! **Scenarios.** `tcp-echo` (N connections in a closed loop), `udp-echo` (the same with
//! datagrams, loss counted), `idle` (hold N connections, read the server's memory, threads and fds),
//! `floor` (the CPU cost of one `read` + one `write` on loopback, the floor any server pays per
//! message), `minimal-server` (a hand-written minimal mio echo server, the floor for a real loop),
//! and `report` (turn a directory of `--json` results into `bench/REPORT.md` and SVG plots).
//!
//! **Fairness.** The load generator is one thread around its own `mio::Poll`: on a 2-core machine it
//! uses at most one core (it is not pinned, so a threaded server on both cores competes with it). Its
//! own CPU time is reported next to the server's; rows where it was busy for 90% of the window are
//! client-bound, and the report compares only server CPU per message there. Server CPU comes from `/proc/PID/stat` (every thread,
//! living or exited), so the load generator's cost never enters the server's CPU per message.
//!
//! **Bounded.** Every scenario stops by itself: connections, duration, drain time and the number of
//! latency samples kept are all bounded; loopback only.

mod chat;
mod connect;
mod floor;
mod idle;
mod latency;
mod meaning;
mod minimal;
mod proc;
mod report;
mod tcp_echo;
mod tftp;
mod udp_echo;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

/// Most connections one load-generator process opens: the hard open-file limit is 20,000 per
/// process here, and the generator needs a few descriptors of its own.
pub const MAX_CONNS: usize = 19_000;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// N TCP connections in a closed loop: msgs/s, MB/s, latency; every echoed byte checked.
    TcpEcho,
    /// N UDP sockets in a closed loop: msgs/s, latency, datagrams lost.
    UdpEcho,
    /// N chat members in one room, K of them sending at --rate: deliveries/s, end-to-end latency.
    Chat,
    /// Hold N idle TCP connections; read the server's RSS, threads and fds (needs --server-pid).
    Idle,
    /// M parallel TFTP downloads (`netlab tftp get`), back to back: total MB/s, every file checked.
    Tftp,
    /// CPU cost of one read + one write system call per message on a loopback pair (no server).
    Floor,
    /// Serve TCP echo from a minimal hand-written mio loop on --target (the floor for a real loop).
    MinimalServer,
    /// Write REPORT.md and SVG plots from the JSON lines in --results.
    Report,
}

/// Flags of `netlab bench`. A flag given twice takes its last value (scripts append overrides).
#[derive(Args, Debug, Clone)]
#[command(args_override_self = true)]
pub struct BenchArgs {
    /// Scenario to run.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// Server to load (loopback only); for minimal-server, the address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7007")]
    pub target: SocketAddr,
    /// Concurrent connections (or UDP sockets).
    #[arg(long, short = 'c', value_name = "N", default_value_t = 10)]
    pub conns: usize,
    /// Message size in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    pub size: usize,
    /// Messages in flight per connection (pipelining depth).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub depth: usize,
    /// How long to measure (after every connection is up).
    #[arg(long, short = 'd', value_name = "DURATION", default_value = "5s", value_parser = crate::cli::parse_duration)]
    pub duration: Duration,
    /// chat: members that send (the first K members).
    #[arg(long, value_name = "K", default_value_t = 10)]
    pub senders: usize,
    /// chat: lines per second each sender sends.
    #[arg(long, value_name = "LINES", default_value_t = 10.0)]
    pub rate: f64,
    /// tftp: the file to download, as the server names it.
    #[arg(long, value_name = "REMOTE")]
    pub file: Option<String>,
    /// tftp: the same file on this machine, to check every download against.
    #[arg(long, value_name = "LOCAL")]
    pub expect: Option<PathBuf>,
    /// tftp: block size to ask for.
    #[arg(long, default_value_t = 1468)]
    pub blksize: u32,
    /// tftp: window size to ask for (RFC 7440).
    #[arg(long, default_value_t = 1)]
    pub windowsize: u32,
    /// The server's process id: its CPU time, memory, threads and fds are read from /proc.
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Name of the server in results and reports (e.g. reactor, threaded, minimal).
    #[arg(long, default_value = "server")]
    pub label: String,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// report: the JSON-lines file of results to read.
    #[arg(long, value_name = "FILE", default_value = "bench/results.jsonl")]
    pub results: PathBuf,
    /// report: where to write the report (plots go beside it).
    #[arg(long, value_name = "FILE", default_value = "bench/REPORT.md")]
    pub out: PathBuf,
    /// report: the command that produced the results, quoted in every table.
    #[arg(long, default_value = "make bench")]
    pub command: String,
}

/// One scenario's result: the table at the end, or the `--json` object.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BenchResult {
    pub scenario: String,
    pub label: String,
    pub target: String,
    pub conns: usize,
    pub size: usize,
    pub depth: usize,
    /// Measured window, seconds.
    pub duration_s: f64,
    /// Messages completed in the window (echoed and checked).
    pub msgs: u64,
    pub msgs_per_s: f64,
    /// Payload megabytes (10^6) per second, one direction.
    pub mb_per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    /// Wrong bytes, unexpected closes, failed connects.
    pub errors: u64,
    /// Datagrams never answered (udp-echo).
    pub lost: u64,
    /// Connections established (tcp) or sockets open (udp).
    pub connected: usize,
    /// Server CPU seconds in the window, and per message in nanoseconds.
    pub server_cpu_s: Option<f64>,
    pub server_ns_per_msg: Option<f64>,
    /// Server memory (KiB), before connecting and while holding every connection.
    pub server_rss_before_kib: Option<u64>,
    pub server_rss_kib: Option<u64>,
    /// Server RSS growth per connection, bytes.
    pub rss_per_conn: Option<f64>,
    /// Machine-wide KernelStack+Slab growth per connection, bytes (both ends' sockets and stacks).
    pub kernel_per_conn: Option<f64>,
    pub server_threads: Option<u64>,
    pub server_fds: Option<u64>,
    /// Load-generator CPU seconds in the window.
    pub client_cpu_s: f64,
    /// The command line that produced this result.
    pub command: String,
}

/// `netlab bench`.
/// True at most once per `period`: progress bars redraw at 10 Hz, not on every poll of the load
/// generator (which is the bottleneck of most rows).
pub(crate) struct Every {
    next: Instant,
    period: Duration,
}

impl Every {
    pub(crate) fn new(period: Duration) -> Self {
        Every { next: Instant::now(), period }
    }

    pub(crate) fn due(&mut self, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        self.next = now + self.period;
        true
    }
}

/// Lines per second one chat sender may be asked for: far past any flood limit, and an interval
/// (10 µs) that is still a real schedule.
const MAX_RATE: f64 = 100_000.0;

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    if args.scenario != Scenario::Report && !args.target.ip().is_loopback() {
        bail!("netlab bench drives loopback servers only (127.0.0.0/8 or ::1), not {}", args.target);
    }
    if args.conns == 0 || args.conns > MAX_CONNS {
        bail!("--conns must be 1..={MAX_CONNS} (one process holds at most 20,000 descriptors)");
    }
    if args.size == 0 || args.size > 1 << 20 {
        bail!("--size must be 1..=1048576 bytes");
    }
    if args.depth == 0 || args.depth > 1024 {
        bail!("--depth must be 1..=1024");
    }
    // NaN and infinity fail these comparisons too: a zero interval would queue lines forever.
    if !(args.rate > 0.0 && args.rate <= MAX_RATE) {
        bail!("--rate must be more than 0 and at most {MAX_RATE} lines/s per sender");
    }
    if args.duration.is_zero() {
        bail!("--duration must be more than 0");
    }
    let mut result = match args.scenario {
        Scenario::TcpEcho => tcp_echo::run(&args)?,
        Scenario::UdpEcho => udp_echo::run(&args)?,
        Scenario::Idle => idle::run(&args)?,
        Scenario::Chat => chat::run(&args)?,
        Scenario::Tftp => tftp::run(&args)?,
        Scenario::Floor => floor::run(&args)?,
        Scenario::MinimalServer => return minimal::serve(args.target),
        Scenario::Report => return report::write(&args),
    };
    result.command = std::env::args().collect::<Vec<_>>().join(" ");
    if args.json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        print_table(&result);
    }
    Ok(if result.errors == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

impl BenchResult {
    fn new(args: &BenchArgs, scenario: &str) -> Self {
        BenchResult {
            scenario: scenario.into(),
            label: args.label.clone(),
            target: args.target.to_string(),
            conns: args.conns,
            size: args.size,
            depth: args.depth,
            ..Default::default()
        }
    }

    /// Fill the server's CPU time over a window from two samples.
    fn server_cpu(&mut self, before: Option<proc::Sample>, after: Option<proc::Sample>) {
        if let (Some(b), Some(a)) = (before, after) {
            let cpu = a.cpu_s - b.cpu_s;
            self.server_cpu_s = Some(cpu);
            if self.msgs > 0 {
                self.server_ns_per_msg = Some(cpu * 1e9 / self.msgs as f64);
            }
            self.server_threads = Some(a.threads);
            self.server_fds = Some(a.fds);
            self.server_rss_kib = Some(a.rss_kib);
        }
    }
}

fn print_table(r: &BenchResult) {
    let opt = |v: Option<f64>, unit: &str| v.map(|v| format!("{v:.1}{unit}")).unwrap_or_else(|| "-".into());
    let rows: Vec<(&str, String)> = vec![
        ("scenario", format!("{} against {} ({})", r.scenario, r.target, r.label)),
        ("connections", format!("{} of {} up", r.connected, r.conns)),
        ("message", format!("{} bytes, depth {}", r.size, r.depth)),
        ("window", format!("{:.2} s", r.duration_s)),
        ("messages", format!("{} ({:.0}/s, {:.2} MB/s)", r.msgs, r.msgs_per_s, r.mb_per_s)),
        ("latency", format!("p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs", r.p50_us, r.p99_us, r.p999_us)),
        ("errors / lost", format!("{} / {}", r.errors, r.lost)),
        (
            "server cpu",
            format!("{} ({} per msg)", opt(r.server_cpu_s, " s"), opt(r.server_ns_per_msg, " ns")),
        ),
        (
            "server memory",
            format!(
                "{} KiB RSS ({} per conn), kernel {} per conn",
                r.server_rss_kib.map(|v| v.to_string()).unwrap_or("-".into()),
                opt(r.rss_per_conn, " B"),
                opt(r.kernel_per_conn, " B")
            ),
        ),
        (
            "server threads / fds",
            format!(
                "{} / {}",
                r.server_threads.map(|v| v.to_string()).unwrap_or("-".into()),
                r.server_fds.map(|v| v.to_string()).unwrap_or("-".into())
            ),
        ),
        ("load generator cpu", format!("{:.2} s", r.client_cpu_s)),
    ];
    for (k, v) in rows {
        println!("{k:>22}  {v}");
    }
}

/// A progress bar over a window of time (hidden when stderr is not a terminal).
fn progress(len: Duration, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len.as_millis() as u64);
    pb.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {elapsed}/{duration} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_prefix(what.to_string());
    pb
}
