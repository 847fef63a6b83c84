//! `netlab ping [OPTIONS] HOST...`: ICMP echo to one or many hosts, on the reactor.
//!
//! One target prints line for line like iputils `ping`; several targets print fping-style lines and
//! one summary line each. Names are resolved before the loop starts (never on it).
//!
//! Exit codes: 0 when every target answered (with `-w` and `-c`: answered `-c` times), 1 when some
//! did not, 2 for usage errors, unknown hosts and sockets that cannot be opened.

pub(crate) mod output;

use std::cell::RefCell;
use std::net::{IpAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use netlab_icmp::{PingConfig, PingService, Pinger};

use crate::reactor::{Reactor, ReactorConfig};
use output::{Front, Mode, Outcome};

/// Largest echo payload: an IPv4 datagram is at most 65535 bytes, less 20 (IP) and 8 (ICMP).
const MAX_PAYLOAD: usize = 65_507;
/// Most targets in one run: each costs a few hundred bytes and a line of output; this bounds both.
const MAX_TARGETS: usize = 65_536;
/// Shortest interval between probes to one target (iputils allows 2 ms to users, less to root).
const MIN_INTERVAL: Duration = Duration::from_millis(1);
/// How long sockets get to flush at exit (ICMP has nothing to flush).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(200);

#[derive(Args, Debug, Clone)]
#[command(
    after_help = "Exit status: 0 when every target answered (with -w and -c: COUNT times), 1 when some \
did not, 2 for usage errors, unknown hosts and ICMP sockets that cannot be opened.\n\
Needs a datagram ping socket (net.ipv4.ping_group_range) or a raw one (root, or setcap cap_net_raw+ep)."
)]
pub struct PingArgs {
    /// Stop after sending COUNT probes to each target (with -w: after COUNT replies).
    #[arg(short = 'c', value_name = "COUNT", allow_hyphen_values = true, value_parser = parse_count)]
    pub count: Option<u64>,
    /// Time between probes to the same target, in seconds (or 200ms, 2s...).
    #[arg(short = 'i', short_alias = 'p', value_name = "INTERVAL", default_value = "1", allow_hyphen_values = true,
          value_parser = parse_interval)]
    pub interval: Duration,
    /// Time to wait for each reply, in seconds.
    #[arg(short = 'W', value_name = "TIMEOUT", default_value = "10", allow_hyphen_values = true, value_parser = parse_positive)]
    pub timeout: Duration,
    /// Stop after DEADLINE seconds, however many probes were sent or answered.
    #[arg(short = 'w', value_name = "DEADLINE", allow_hyphen_values = true, value_parser = parse_positive)]
    pub deadline: Option<Duration>,
    /// Payload bytes per probe (8 bytes of ICMP header are added).
    #[arg(short = 's', value_name = "SIZE", default_value_t = 56, allow_hyphen_values = true, value_parser = parse_size)]
    pub size: usize,
    /// IP time to live (IPv6 hop limit) of the probes.
    #[arg(short = 't', value_name = "TTL", allow_hyphen_values = true, value_parser = parse_ttl)]
    pub ttl: Option<u8>,
    /// Quiet: only the header and the statistics (many targets: only the summary lines).
    #[arg(short = 'q')]
    pub quiet: bool,
    /// Prefix each line with the Unix time, as `[seconds.micros]`.
    #[arg(short = 'D')]
    pub timestamps: bool,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "v6")]
    pub v4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    pub v6: bool,
    /// Many targets: time between the first probes of consecutive targets.
    #[arg(long, value_name = "DURATION", default_value = "1ms", value_parser = crate::cli::parse_duration)]
    pub spacing: Duration,
    /// Hosts to ping: addresses or names (resolved once, before pinging starts).
    #[arg(value_name = "HOST", required = true)]
    pub hosts: Vec<String>,
}

fn parse_count(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("not a whole number".into()),
    }
}

fn parse_ttl(s: &str) -> Result<u8, String> {
    match s.parse::<u16>() {
        Ok(n @ 1..=255) => Ok(n as u8),
        _ => Err("must be a whole number from 1 to 255".into()),
    }
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = crate::cli::parse_duration(s)?;
    if d < MIN_INTERVAL {
        return Err(format!("must be at least {} ms", MIN_INTERVAL.as_millis()));
    }
    Ok(d)
}

fn parse_positive(s: &str) -> Result<Duration, String> {
    let d = crate::cli::parse_duration(s)?;
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

fn parse_size(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n <= MAX_PAYLOAD => Ok(n),
        Ok(_) => Err(format!("must be at most {MAX_PAYLOAD}")),
        Err(_) => Err("not a number of bytes".into()),
    }
}

/// A target as the user named it and the address it resolved to.
#[derive(Clone, Debug)]
pub struct Host {
    /// As given on the command line.
    pub name: String,
    /// Where the probes go.
    pub addr: IpAddr,
}

/// Resolve every host before the loop starts; an unknown one is a usage error.
fn resolve(args: &PingArgs) -> Result<Vec<Host>> {
    if args.hosts.len() > MAX_TARGETS {
        bail!("too many targets ({}; at most {MAX_TARGETS})", args.hosts.len());
    }
    let family_ok = |ip: &IpAddr| (!args.v4 || ip.is_ipv4()) && (!args.v6 || ip.is_ipv6());
    let mut hosts = Vec::with_capacity(args.hosts.len());
    for name in &args.hosts {
        let addr = match name.parse::<IpAddr>() {
            Ok(ip) if family_ok(&ip) => ip,
            Ok(_) => bail!("{name}: address family does not match -{}", if args.v4 { 4 } else { 6 }),
            Err(_) => {
                let found = (name.as_str(), 0).to_socket_addrs().map_err(|_| unknown(name))?;
                let mut ips: Vec<IpAddr> = found.map(|a| a.ip()).filter(family_ok).collect();
                // Like iputils without -6: prefer IPv4 when a name has both.
                ips.sort_by_key(|ip| ip.is_ipv6());
                ips.first().copied().ok_or_else(|| unknown(name))?
            }
        };
        hosts.push(Host { name: name.clone(), addr });
    }
    Ok(hosts)
}

fn unknown(name: &str) -> anyhow::Error {
    anyhow::anyhow!("{name}: Name or service not known")
}

/// Seeds for the identifier and the payload cookie, from the kernel's random source.
pub(crate) fn seeds() -> (u16, u64) {
    let mut buf = [0u8; 10];
    // SAFETY: getrandom(2) writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n != buf.len() as isize {
        // Not fatal: the cookie only has to differ from other pingers' on this host.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let mix = t.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32);
        buf[..8].copy_from_slice(&mix.to_be_bytes());
        buf[8..].copy_from_slice(&(std::process::id() as u16).to_be_bytes());
    }
    let cookie = u64::from_be_bytes(buf[..8].try_into().expect("8 bytes"));
    (u16::from_be_bytes([buf[8], buf[9]]), cookie)
}

pub fn run(args: PingArgs) -> Result<ExitCode> {
    // Per-run logs would clutter ping's output; RUST_LOG still turns them on.
    if std::env::var_os("RUST_LOG").is_none() {
        log::set_max_level(log::LevelFilter::Error);
    }
    let hosts = resolve(&args)?;
    let (ident, cookie) = seeds();
    let config = PingConfig {
        count: args.count,
        interval: args.interval,
        spacing: args.spacing,
        timeout: args.timeout,
        deadline: args.deadline,
        payload_len: args.size,
        ident,
        cookie,
    };
    let addrs: Vec<IpAddr> = hosts.iter().map(|h| h.addr).collect();
    let pinger = Pinger::new(config, &addrs);
    let service = PingService::new(pinger, args.ttl, 0);
    let mode = if hosts.len() == 1 { Mode::Single } else { Mode::Many };
    let outcome = Rc::new(RefCell::new(Outcome::default()));
    let front = Front::new(service, hosts, args, mode, Rc::clone(&outcome));
    let mut reactor = Reactor::new(ReactorConfig { shutdown_timeout: SHUTDOWN_TIMEOUT })?;
    reactor.add(Box::new(front));
    reactor.run()?;
    let outcome = outcome.borrow();
    if let Some(msg) = &outcome.fatal {
        eprintln!("netlab ping: {msg}");
        return Ok(ExitCode::from(2));
    }
    Ok(if outcome.all_answered { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
