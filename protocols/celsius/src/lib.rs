//! netlab-celsius: the example protocol. A UDP service that converts Celsius to Fahrenheit, as in the
//! course's first UDP exercise; README's "Add a protocol" walks through it.
//!
//! **Wire format.** A request is one datagram holding a decimal number of degrees Celsius (ASCII,
//! surrounding white space ignored), e.g. `36.6`. The reply is one datagram, `36.6 C = 97.88 F\n`,
//! or `error: ...\n` for anything else.
//!
//! **What it never does.** Open a socket, read the clock, or answer a privileged source port (see
//! [`netlab_core::is_reflection_risk`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use netlab_core::{Bytes, Input, Output, Service, SockKind};

/// Longest request we parse; a temperature needs a few bytes, anything longer is refused.
const MAX_REQUEST: usize = 64;

/// The reply to one request.
pub fn convert(request: &[u8]) -> String {
    let parsed = std::str::from_utf8(request).ok().filter(|_| request.len() <= MAX_REQUEST);
    match parsed.map(str::trim).map(str::parse::<f64>) {
        Some(Ok(c)) if (-273.15..1e9).contains(&c) => {
            let f = ((c * 1.8 + 32.0) * 100.0).round() / 100.0;
            format!("{c} C = {f} F\n")
        }
        Some(Ok(_)) => "error: out of range (absolute zero is -273.15 C)\n".to_string(),
        _ => "error: send a temperature in degrees Celsius, e.g. 21.5\n".to_string(),
    }
}

/// The service: one UDP socket, one reply per request.
pub struct CelsiusService {
    /// Outputs waiting to be taken by the reactor.
    out: VecDeque<Output>,
}

impl CelsiusService {
    /// Serve on `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        let listen = Output::Listen { tag: 0, kind: SockKind::Udp, addr, limits: Default::default() };
        CelsiusService { out: VecDeque::from([listen]) }
    }
}

impl Service for CelsiusService {
    fn name(&self) -> &'static str {
        "celsius"
    }

    fn handle_input(&mut self, _now: Instant, input: Input<'_>) {
        if let Input::Datagram { sock, from, data, .. } = input {
            if !netlab_core::is_reflection_risk(from) {
                let reply = Bytes::from(convert(data));
                self.out.push_back(Output::SendTo { sock, to: from, data: reply });
            }
        }
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_and_refuses() {
        assert_eq!(convert(b"100"), "100 C = 212 F\n");
        assert_eq!(convert(b" 36.6\n"), "36.6 C = 97.88 F\n");
        assert_eq!(convert(b"-40"), "-40 C = -40 F\n");
        assert!(convert(b"-300").starts_with("error: out of range"));
        assert!(convert(b"warm").starts_with("error:"));
        assert!(convert(b"NaN").starts_with("error:"));
        assert!(convert(&[0xff, 0xfe]).starts_with("error:"));
        assert!(convert(&[b'1'; 100]).starts_with("error:"));
    }
}
