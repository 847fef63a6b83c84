//! Command-line interface: `netlab serve | ping | tftp | bench`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// netlab: a one-thread mio reactor serving TCP chat, TCP/UDP echo, TFTP and ICMP ping, with a
/// thread-per-connection baseline and a load generator to compare the two.
#[derive(Parser, Debug)]
#[command(name = "netlab", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve every enabled protocol from one thread (chat 7777/tcp, echo 7007/tcp+udp, tftp 6969/udp).
    Serve(crate::handlers::ServeArgs),
    /// Ping one or many hosts over ICMP, like iputils ping (one target) or fping (many).
    Ping(crate::ping::PingArgs),
    /// TFTP client: get or put a file.
    Tftp(crate::tftp_client::TftpArgs),
    /// Load generator: drive a netlab server (either model) and report throughput and latency.
    Bench(crate::bench::BenchArgs),
}

/// A listening address, or `off` to disable the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bind(pub Option<SocketAddr>);

impl FromStr for Bind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(Bind(None));
        }
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(Bind(Some(addr)));
        }
        // Names such as localhost:7007 resolve once, at start-up (never on the loop).
        match s.to_socket_addrs() {
            Ok(mut it) => it.next().map(|a| Bind(Some(a))).ok_or_else(|| format!("{s}: no address")),
            Err(_) => {
                Err(format!("expected ADDRESS:PORT (e.g. 127.0.0.1:7007, [::1]:69) or 'off', got '{s}'"))
            }
        }
    }
}

/// Parse a duration: `500ms`, `30s`, `5m`, `1h`, or a bare number of seconds (`1.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("invalid duration '{s}' (try 500ms, 30s, 5m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration unit in '{s}' (use ms, s, m or h)")),
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("duration out of range: '{s}'"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds() {
        assert_eq!("off".parse::<Bind>().unwrap(), Bind(None));
        assert_eq!("127.0.0.1:0".parse::<Bind>().unwrap(), Bind(Some("127.0.0.1:0".parse().unwrap())));
        assert_eq!("[::1]:69".parse::<Bind>().unwrap(), Bind(Some("[::1]:69".parse().unwrap())));
        assert!("nonsense".parse::<Bind>().is_err());
        assert!("127.0.0.1".parse::<Bind>().is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("3x").is_err());
    }
}
