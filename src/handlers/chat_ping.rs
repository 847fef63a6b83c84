//! `/ping HOST [COUNT]` in the chat: the [`ChatService`] plus short ICMP ping runs, as one service.
//!
//! Each `/ping` becomes a [`PingService`] with its own ICMP socket (a datagram ping socket, or a raw
//! one), whose results go back as `* ` notices to the user who asked, and to no one else. Inputs
//! for the sockets a run opened go to that run; everything else goes to the chat. Our `Open` tags
//! have the high bit set (the chat's are small), followed by the run's number.
//!
//! Bounded: at most [`MAX_COUNT`] probes per run, [`MAX_PER_USER`] runs per user and `max_total`
//! runs at once. Names are never resolved (that would block the one thread): IP literals and
//! `localhost` only. Targets must lie in the allowed networks (`--chat-ping-allow`, loopback by
//! default): anonymous chat users must not turn the server into a probe of other people's hosts.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use netlab_chat::{ChatService, ExternalCommand, MemberId};
use netlab_core::{Input, Output, Service};
use netlab_icmp::stats::ms3;
use netlab_icmp::{Event, PingConfig, PingService, Pinger};

use crate::ping::output::{fmt_g, rtt_ms, socket_failure};

/// Our `Open` tags: this bit set, then the run's number shifted past PingService's 2 bits.
const TAG_BIT: u64 = 1 << 63;
/// Probes per `/ping` when no count is given, and the most one may ask for.
const DEFAULT_COUNT: u64 = 4;
const MAX_COUNT: u64 = 10;
/// Runs one user may have at once: one is plenty to look, and it keeps a flood of /ping cheap.
const MAX_PER_USER: usize = 1;
/// Time between probes, and how long each waits for its reply.
const INTERVAL: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(2);

/// As `/help` lists it (the chat adds the `/`).
const USAGE: &str = "ping HOST [COUNT]";
const HELP: &str = "ping an IP address (or localhost); results come to you only";

/// One `/ping` in progress.
struct Run {
    member: MemberId,
    host: IpAddr,
    svc: PingService,
}

/// The chat with `/ping`. See the module docs.
pub struct ChatPing {
    chat: ChatService,
    runs: HashMap<u64, Run>,
    /// Outputs of the runs (their sockets' opens, sends and closes), in order, ahead of the chat's;
    /// and closes for sockets opened for runs that are already gone.
    out: VecDeque<Output>,
    next_run: u64,
    /// Mixed with the run number into each run's identifier and cookie.
    seed: u64,
    max_total: usize,
    /// Networks `/ping` may target.
    allow: Vec<Cidr>,
    /// Runs started (a counter).
    started: u64,
}

/// An IP network, `ADDRESS/PREFIX` (a bare address is a single host).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = addr.parse().map_err(|_| format!("'{s}': expected ADDRESS[/PREFIX]"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            "" => max,
            p => p.parse().ok().filter(|p| *p <= max).ok_or(format!("'{s}': prefix must be 0 to {max}"))?,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl ChatPing {
    /// Wrap `chat`, adding `/ping` with at most `max_total` runs at once (0: no `/ping`).
    /// `/ping` targets must lie in one of the `allow` networks.
    pub fn wrap(mut chat: ChatService, max_total: usize, allow: Vec<Cidr>) -> Box<dyn Service> {
        if max_total == 0 {
            return Box::new(chat);
        }
        chat.add_external_command("ping", USAGE, HELP);
        let seed = crate::ping::seeds().1;
        Box::new(ChatPing {
            chat,
            runs: HashMap::new(),
            out: VecDeque::new(),
            next_run: 0,
            seed,
            max_total,
            allow,
            started: 0,
        })
    }

    fn run_for_tag(&mut self, tag: u64) -> Option<&mut Run> {
        self.runs.get_mut(&((tag & !TAG_BIT) >> 2))
    }

    fn run_for_sock(&mut self, sock: netlab_core::SockId) -> Option<&mut Run> {
        self.runs.values_mut().find(|r| r.svc.owns_sock(sock))
    }

    /// Start the `/ping` commands typed since the last call.
    fn take_commands(&mut self) {
        while let Some(cmd) = self.chat.poll_command() {
            if let Err(msg) = self.start(&cmd) {
                self.chat.notify(cmd.member, &format!("/ping: {msg}"));
            }
        }
    }

    fn start(&mut self, cmd: &ExternalCommand) -> Result<(), String> {
        let (host, count) = parse_args(&cmd.args)?;
        if !self.allow.iter().any(|net| net.contains(host)) {
            let nets: Vec<String> = self.allow.iter().map(Cidr::to_string).collect();
            return Err(format!("{host} is not in the networks this server pings ({})", nets.join(", ")));
        }
        if self.runs.values().filter(|r| r.member == cmd.member).count() >= MAX_PER_USER {
            return Err("you already have a ping running; wait for it to finish".into());
        }
        if self.runs.len() >= self.max_total {
            return Err(format!("{} pings are running already; try again in a few seconds", self.runs.len()));
        }
        let id = self.next_run;
        self.next_run += 1;
        self.started += 1;
        let mix = splitmix(self.seed ^ id);
        let config = PingConfig {
            count: Some(count),
            interval: INTERVAL,
            spacing: Duration::ZERO,
            timeout: TIMEOUT,
            deadline: None,
            payload_len: 56,
            ident: (mix >> 48) as u16,
            cookie: splitmix(mix),
        };
        let svc = PingService::new(Pinger::new(config, &[host]), None, TAG_BIT | (id << 2));
        self.chat.notify(cmd.member, &format!("PING {host}: {count} probes, 56 data bytes"));
        self.runs.insert(id, Run { member: cmd.member, host, svc });
        Ok(())
    }

    /// Tell each user what their run did; close and forget finished runs and those whose user left.
    fn report(&mut self, now: Instant) {
        let mut finished = Vec::new();
        for (&id, run) in &mut self.runs {
            // Move the run's outputs here, so poll_output never scans the runs.
            self.out.extend(std::iter::from_fn(|| run.svc.poll_output()));
            let mut gone = false;
            while let Some(ev) = run.svc.poll_event() {
                gone |= !self.chat.notify(run.member, &event_line(run.host, &ev));
            }
            if run.svc.is_done() || gone {
                if !gone {
                    let text = match run.svc.failure() {
                        Some(f) => format!("/ping: {}", socket_failure(&f)),
                        None => summary(run),
                    };
                    self.chat.notify(run.member, &text);
                }
                run.svc.close(now);
                self.out.extend(std::iter::from_fn(|| run.svc.poll_output()));
                finished.push(id);
            }
        }
        for id in finished {
            self.runs.remove(&id);
        }
    }
}

/// `HOST [COUNT]`: an IP literal or `localhost`, and 1..=MAX_COUNT.
fn parse_args(args: &str) -> Result<(IpAddr, u64), String> {
    let mut words = args.split_whitespace();
    let host = words.next().ok_or(format!("usage: /{USAGE}"))?;
    let host = match host {
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        h => h.parse().map_err(|_| {
            format!("'{h}' is not an IP address (names are not resolved here: DNS would block the server)")
        })?,
    };
    let broadcast = matches!(host, IpAddr::V4(ip) if ip.is_broadcast());
    if host.is_multicast() || host.is_unspecified() || broadcast {
        // One /ping must not make a whole network answer (or the server itself, in disguise).
        return Err(format!("{host} is not a unicast address"));
    }
    let count = match words.next() {
        None => DEFAULT_COUNT,
        Some(c) => match c.parse::<u64>() {
            Ok(n @ 1..=MAX_COUNT) => n,
            _ => return Err(format!("COUNT must be 1 to {MAX_COUNT}")),
        },
    };
    if words.next().is_some() {
        return Err(format!("usage: /{USAGE}"));
    }
    Ok((host, count))
}

fn event_line(host: IpAddr, ev: &Event) -> String {
    match ev {
        Event::Reply { seq, bytes, ttl, rtt, dup, .. } => {
            let ttl = ttl.map(|t| format!(" ttl={t}")).unwrap_or_default();
            let dup = if *dup { " (DUP!)" } else { "" };
            format!("{bytes} bytes from {host}: icmp_seq={seq}{ttl} time={}{dup}", rtt_ms(*rtt))
        }
        Event::Damaged { seq, bytes, damage, .. } => {
            format!("{bytes} bytes from {host}: icmp_seq={seq} damaged ({damage:?})")
        }
        Event::Error { seq, from, kind, .. } => format!("From {from} icmp_seq={seq} {}", kind.describe()),
        Event::Timeout { seq, .. } => format!("no reply from {host} for icmp_seq={seq}"),
        Event::SendFailed { seq, error, .. } => format!("icmp_seq={seq}: send failed: {error}"),
    }
}

fn summary(run: &Run) -> String {
    let s = &run.svc.pinger().targets()[0].stats;
    let mut text = format!(
        "--- {} ping statistics: {} transmitted, {} received, {}% packet loss",
        run.host,
        s.sent,
        s.received,
        fmt_g(s.loss_percent())
    );
    if let Some(r) = s.rtt().filter(|_| s.received > 0) {
        let (min, avg, max, mdev) = (ms3(r.min_us), ms3(r.avg_us), ms3(r.max_us), ms3(r.mdev_us));
        text += &format!(", rtt min/avg/max/mdev = {min}/{avg}/{max}/{mdev} ms");
    }
    text
}

/// SplitMix64: spreads one seed into well-mixed per-run values.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Service for ChatPing {
    fn name(&self) -> &'static str {
        self.chat.name()
    }

    fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        match input {
            Input::Opened { tag, result } if tag & TAG_BIT != 0 => match self.run_for_tag(tag) {
                Some(run) => run.svc.handle_input(now, Input::Opened { tag, result }),
                // The user's run ended before its socket opened.
                None => self.out.extend(result.ok().map(|o| Output::Close { sock: o.sock, flush: false })),
            },
            Input::Datagram { sock, from, data, meta } => {
                if let Some(run) = self.run_for_sock(sock) {
                    run.svc.handle_input(now, Input::Datagram { sock, from, data, meta });
                }
            }
            Input::SendFailed { sock, to, error } => {
                if let Some(run) = self.run_for_sock(sock) {
                    run.svc.handle_input(now, Input::SendFailed { sock, to, error });
                }
            }
            Input::Closed { sock, reason } => match self.run_for_sock(sock) {
                Some(run) => run.svc.handle_input(now, Input::Closed { sock, reason }),
                None => self.chat.handle_input(now, Input::Closed { sock, reason }),
            },
            other => self.chat.handle_input(now, other),
        }
        self.take_commands();
        self.report(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.chat.poll_timeout().is_some_and(|at| at <= now) {
            self.chat.handle_timeout(now);
        }
        for run in self.runs.values_mut() {
            if run.svc.poll_timeout().is_some_and(|at| at <= now) {
                run.svc.handle_timeout(now);
            }
        }
        self.take_commands();
        self.report(now);
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front().or_else(|| self.chat.poll_output())
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let runs = self.runs.values().filter_map(|r| r.svc.poll_timeout());
        runs.chain(self.chat.poll_timeout()).min()
    }

    fn handle_shutdown(&mut self, now: Instant) {
        for run in self.runs.values_mut() {
            run.svc.handle_shutdown(now);
        }
        self.chat.handle_shutdown(now);
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let mut c = self.chat.counters();
        c.push(("pings_now", self.runs.len() as u64));
        c.push(("pings_started", self.started));
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let lo: Cidr = "127.0.0.0/8".parse().unwrap();
        assert!(lo.contains("127.1.2.3".parse().unwrap()));
        assert!(lo.contains("::ffff:127.0.0.1".parse().unwrap()), "IPv4-mapped counts as IPv4");
        assert!(!lo.contains("10.1.2.3".parse().unwrap()));
        assert!(!lo.contains("::1".parse().unwrap()));
        let one: Cidr = "::1".parse().unwrap();
        assert!(one.contains("::1".parse().unwrap()) && !one.contains("::2".parse().unwrap()));
        let any: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains("192.0.2.1".parse().unwrap()));
        for bad in ["127.0.0.0/33", "::/129", "nonsense", "1.2.3.4/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn arguments() {
        assert_eq!(parse_args("127.0.0.1"), Ok(("127.0.0.1".parse().unwrap(), DEFAULT_COUNT)));
        assert_eq!(parse_args("localhost 2"), Ok(("127.0.0.1".parse().unwrap(), 2)));
        assert_eq!(parse_args(" ::1   10 "), Ok(("::1".parse().unwrap(), 10)));
        assert!(parse_args("").unwrap_err().contains("usage"));
        assert!(parse_args("example.com").unwrap_err().contains("not resolved"));
        assert!(parse_args("127.0.0.1 0").is_err());
        assert!(parse_args("127.0.0.1 11").is_err());
        assert!(parse_args("127.0.0.1 x").is_err());
        assert!(parse_args("127.0.0.1 2 3").is_err());
        for not_unicast in ["224.0.0.1", "255.255.255.255", "0.0.0.0", "ff02::1", "::"] {
            assert!(parse_args(not_unicast).unwrap_err().contains("not a unicast"), "{not_unicast}");
        }
    }
}
