//! The front-end of `netlab ping`: wraps the [`PingService`] and prints its events as iputils `ping`
//! (one target) or fping (many targets) does.

use std::cell::RefCell;
use std::io::Write;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use netlab_core::{Input, Output, Service};
use netlab_icmp::stats::ms3;
use netlab_icmp::{Damage, Event, PingService, SocketFailure, Stats};

use super::{Host, PingArgs};

/// How the results are printed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// iputils `ping`, line for line.
    Single,
    /// fping-style lines and summaries.
    Many,
}

/// What `run` needs once the loop is over.
#[derive(Default, Debug)]
pub struct Outcome {
    /// Every target answered.
    pub all_answered: bool,
    /// The run could not start (one line for stderr).
    pub fatal: Option<String>,
}

/// The ping service plus its printer, as one [`Service`] for the reactor.
pub struct Front {
    svc: PingService,
    hosts: Vec<Host>,
    args: PingArgs,
    mode: Mode,
    outcome: Rc<RefCell<Outcome>>,
    /// The header was printed (once the sockets are open, so a socket error prints only itself).
    headed: bool,
    /// The statistics were printed (at the end of the run, or on SIGINT).
    reported: bool,
}

impl Front {
    pub fn new(
        svc: PingService,
        hosts: Vec<Host>,
        args: PingArgs,
        mode: Mode,
        outcome: Rc<RefCell<Outcome>>,
    ) -> Self {
        Front { svc, hosts, args, mode, outcome, headed: false, reported: false }
    }

    /// `PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.` (one target only).
    fn header(&self) -> Option<String> {
        if self.mode != Mode::Single {
            return None;
        }
        let h = &self.hosts[0];
        let s = self.args.size;
        let line = match h.addr {
            IpAddr::V4(ip) => format!("PING {} ({ip}) {s}({}) bytes of data.", h.name, s + 28),
            IpAddr::V6(ip) if h.name == ip.to_string() => format!("PING {}({ip}) {s} data bytes", h.name),
            IpAddr::V6(ip) => format!("PING {}({} ({ip})) {s} data bytes", h.name, h.name),
        };
        Some(line)
    }

    /// `127.0.0.1` or `localhost (127.0.0.1)`: how iputils names a target that was given by name.
    fn who(&self, target: usize) -> String {
        let h = &self.hosts[self.target_host(target)];
        if h.name == h.addr.to_string() { h.name.clone() } else { format!("{} ({})", h.name, h.addr) }
    }

    /// The host entry of pinger target `t` (the pinger drops repeated addresses).
    fn target_host(&self, t: usize) -> usize {
        let addr = self.svc.pinger().targets()[t].addr;
        self.hosts.iter().position(|h| h.addr == addr).unwrap_or(0)
    }

    fn stamp(&self) -> String {
        if !self.args.timestamps {
            return String::new();
        }
        let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        format!("[{}.{:06}] ", t.as_secs(), t.subsec_micros())
    }

    /// Print what happened since the last call; print the statistics once the run is over.
    fn report(&mut self, now: Instant) {
        let mut lines = Vec::new();
        if !self.headed && self.svc.pinger().span().0.is_some() {
            self.headed = true;
            lines.extend(self.header());
        }
        while let Some(ev) = self.svc.poll_event() {
            if let Some(line) = self.format_event(&ev) {
                lines.push(line);
            }
        }
        if self.svc.is_done() && !self.reported {
            self.reported = true;
            self.finish(&mut lines);
        }
        if lines.is_empty() {
            return;
        }
        let mut out = std::io::stdout().lock();
        let written = lines.iter().try_for_each(|l| writeln!(out, "{l}")).and_then(|()| out.flush());
        if written.is_err() && !self.svc.is_done() {
            // Nobody reads our output any more (`| head`): end the run, quietly.
            self.svc.handle_shutdown(now);
            self.reported = true;
            self.finish(&mut Vec::new());
        }
    }

    fn format_event(&self, ev: &Event) -> Option<String> {
        let stamp = self.stamp();
        match (self.mode, ev) {
            (_, Event::SendFailed { error, .. }) => {
                eprintln!("netlab ping: sendmsg: {error}");
                None
            }
            (Mode::Single, _) if self.args.quiet => None,
            (Mode::Many, _) if self.args.quiet => None,
            (Mode::Single, Event::Reply { target, seq, bytes, ttl, rtt, dup }) => {
                let ttl = ttl.map(|t| format!(" ttl={t}")).unwrap_or_default();
                let dup = if *dup { " (DUP!)" } else { "" };
                let who = self.who(*target);
                Some(format!(
                    "{stamp}{bytes} bytes from {who}: icmp_seq={seq}{ttl} time={}{dup}",
                    rtt_ms(*rtt)
                ))
            }
            (Mode::Single, Event::Damaged { target, seq, bytes, damage }) => {
                let who = self.who(*target);
                let head = format!("{stamp}{bytes} bytes from {who}: icmp_seq={seq}");
                Some(match damage {
                    Damage::BadChecksum => format!("{head} (BAD CHECKSUM!)"),
                    Damage::WrongLength { .. } => format!("{head} (truncated)"),
                    Damage::WrongData { offset, expected, got } => format!(
                        "{head}\nwrong data byte #{offset} should be 0x{expected:x} but was 0x{got:x}"
                    ),
                })
            }
            (Mode::Single, Event::Error { seq, from, kind, .. }) => {
                Some(format!("{stamp}From {from} icmp_seq={seq} {}", kind.describe()))
            }
            (Mode::Single, Event::Timeout { .. }) => None,
            (Mode::Many, ev) => Some(format!("{stamp}{}", self.format_many(ev))),
        }
    }

    /// fping-style event lines.
    fn format_many(&self, ev: &Event) -> String {
        let host = |t: &usize| self.hosts[self.target_host(*t)].name.clone();
        match ev {
            Event::Reply { target, seq, bytes, rtt, dup: false, .. } => {
                let s = &self.svc.pinger().targets()[*target].stats;
                let avg = s.rtt().map(|r| ms3(r.avg_us)).unwrap_or_default();
                let loss = loss_int(s);
                format!(
                    "{} : [{seq}], {bytes} bytes, {} ms ({avg} avg, {loss}% loss)",
                    host(target),
                    ms3(us(*rtt))
                )
            }
            Event::Reply { target, seq, bytes, rtt, .. } => {
                format!("{} : duplicate for [{seq}], {bytes} bytes, {} ms", host(target), ms3(us(*rtt)))
            }
            Event::Damaged { target, seq, damage, .. } => {
                format!("{} : [{seq}], damaged reply ({damage:?})", host(target))
            }
            Event::Error { target, seq, from, kind } => {
                format!("{} : [{seq}], {} from {from}", host(target), kind.describe())
            }
            Event::Timeout { target, seq } => format!("{} : [{seq}], timed out", host(target)),
            Event::SendFailed { target, seq, error } => {
                format!("{} : [{seq}], send failed: {error}", host(target))
            }
        }
    }

    /// The statistics block (one target) or the summary lines (many), and the exit status.
    fn finish(&mut self, lines: &mut Vec<String>) {
        if let Some(f) = self.svc.failure() {
            self.outcome.borrow_mut().fatal = Some(socket_failure(&f));
            return;
        }
        let p = self.svc.pinger();
        let (start, end) = p.span();
        let elapsed = start.zip(end).map(|(s, e)| e - s).unwrap_or_default();
        let count = self.args.count.filter(|_| self.args.deadline.is_some()).unwrap_or(1);
        let answered = p.targets().iter().all(|t| t.stats.received >= count);
        self.outcome.borrow_mut().all_answered = answered;
        match self.mode {
            Mode::Single => single_stats(&self.hosts[0].name, &p.targets()[0].stats, elapsed, lines),
            Mode::Many => {
                let width = self.hosts.iter().map(|h| h.name.len()).max().unwrap_or(0);
                let mut seen = std::collections::HashSet::new();
                for h in self.hosts.iter().filter(|h| seen.insert(h.addr)) {
                    let Some(t) = p.target_index(h.addr) else { continue };
                    lines.push(many_summary(&h.name, width, &p.targets()[t].stats));
                }
            }
        }
    }
}

/// The iputils statistics block.
fn single_stats(name: &str, s: &Stats, elapsed: Duration, lines: &mut Vec<String>) {
    lines.push(String::new());
    lines.push(format!("--- {name} ping statistics ---"));
    let mut l = format!("{} packets transmitted, {} received", s.sent, s.received);
    if s.dups > 0 {
        l += &format!(", +{} duplicates", s.dups);
    }
    if s.damaged > 0 {
        l += &format!(", +{} corrupted", s.damaged);
    }
    if s.errors > 0 {
        l += &format!(", +{} errors", s.errors);
    }
    if s.sent > 0 {
        let ms = (elapsed.as_nanos() + 500_000) / 1_000_000;
        l += &format!(", {}% packet loss, time {ms}ms", fmt_g(s.loss_percent()));
    }
    lines.push(l);
    if let (true, Some(r)) = (s.received > 0, s.rtt()) {
        lines.push(format!(
            "rtt min/avg/max/mdev = {}/{}/{}/{} ms",
            ms3(r.min_us),
            ms3(r.avg_us),
            ms3(r.max_us),
            ms3(r.mdev_us)
        ));
    } else {
        // iputils ends the block with a newline that, without an rtt line, stands alone.
        lines.push(String::new());
    }
}

/// `127.0.0.1 : xmt/rcv/%loss = 3/3/0%, min/avg/max = 0.026/0.032/0.042`
fn many_summary(name: &str, width: usize, s: &Stats) -> String {
    let mut l = format!("{name:<width$} : xmt/rcv/%loss = {}/{}/{}%", s.sent, s.received, loss_int(s));
    if let (true, Some(r)) = (s.received > 0, s.rtt()) {
        l += &format!(", min/avg/max = {}/{}/{}", ms3(r.min_us), ms3(r.avg_us), ms3(r.max_us));
    }
    for (n, what) in [(s.dups, "dup"), (s.damaged, "corrupted"), (s.errors, "errors")] {
        if n > 0 {
            l += &format!(", {what}={n}");
        }
    }
    l
}

fn loss_int(s: &Stats) -> u64 {
    s.loss_percent() as u64
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// iputils' `time=` field: three decimals below 1 ms, then two, one, none.
pub(crate) fn rtt_ms(d: Duration) -> String {
    let t = us(d);
    if t >= 100_000 - 50 {
        format!("{} ms", (t + 500) / 1000)
    } else if t >= 10_000 - 5 {
        format!("{}.{:01} ms", (t + 50) / 1000, ((t + 50) % 1000) / 100)
    } else if t >= 1000 {
        format!("{}.{:02} ms", (t + 5) / 1000, ((t + 5) % 1000) / 10)
    } else {
        format!("{}.{:03} ms", t / 1000, t % 1000)
    }
}

/// C's `%g` for a percentage: six significant digits, no trailing zeros.
pub(crate) fn fmt_g(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let digits = 6 - 1 - x.abs().log10().floor() as i32;
    let s = format!("{:.*}", digits.max(0) as usize, x);
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// The one line printed when no ICMP socket could be opened.
pub(crate) fn socket_failure(f: &SocketFailure) -> String {
    let family = if f.v6 { "ICMPv6" } else { "ICMP" };
    if f.not_permitted() {
        format!(
            "cannot open an {family} socket ({}): run as root, or `setcap cap_net_raw+ep` on this binary, \
             or widen net.ipv4.ping_group_range to include your group",
            f.error
        )
    } else {
        format!("cannot open an {family} socket: {}", f.error)
    }
}

impl Service for Front {
    fn name(&self) -> &'static str {
        "ping"
    }
    fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        self.svc.handle_input(now, input);
        self.report(now);
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.svc.handle_timeout(now);
        self.report(now);
    }
    fn poll_output(&mut self) -> Option<Output> {
        self.svc.poll_output()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.svc.poll_timeout()
    }
    fn handle_shutdown(&mut self, now: Instant) {
        self.svc.handle_shutdown(now);
        self.report(now);
    }
    fn is_done(&self) -> bool {
        self.svc.is_done()
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        self.svc.counters()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_iputils() {
        assert_eq!(fmt_g(0.0), "0");
        assert_eq!(fmt_g(100.0), "100");
        assert_eq!(fmt_g(100.0 / 3.0), "33.3333");
        assert_eq!(fmt_g(200.0 / 3.0), "66.6667");
        assert_eq!(fmt_g(50.0), "50");
        assert_eq!(fmt_g(0.1), "0.1");
        assert_eq!(rtt_ms(Duration::from_micros(47)), "0.047 ms");
        assert_eq!(rtt_ms(Duration::from_micros(1234)), "1.23 ms");
        assert_eq!(rtt_ms(Duration::from_micros(12_345)), "12.3 ms");
        assert_eq!(rtt_ms(Duration::from_micros(123_456)), "123 ms");
    }
}
