//! A tiny fake reactor for testing services on virtual time, with no sockets at all.
//!
//! ```
//! use netlab_core::testkit::Harness;
//! # use netlab_core::{Service, Input, Output};
//! # struct Nop;
//! # impl Service for Nop {
//! #     fn name(&self) -> &'static str { "nop" }
//! #     fn handle_input(&mut self, _: std::time::Instant, _: Input<'_>) {}
//! #     fn handle_timeout(&mut self, _: std::time::Instant) {}
//! #     fn poll_output(&mut self) -> Option<Output> { None }
//! #     fn poll_timeout(&self) -> Option<std::time::Instant> { None }
//! # }
//! let mut h = Harness::new(Nop);
//! let outputs = h.start(); // answers every Listen/Open with a fresh socket id
//! assert!(outputs.is_empty());
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::{Input, Opened, Output, Service, SockId};

/// Drives one service: feeds inputs, drains outputs, moves virtual time.
pub struct Harness<S> {
    /// The service under test.
    pub svc: S,
    /// Virtual now.
    pub now: Instant,
    next_index: u32,
}

/// Take every pending output from a service.
pub fn drain(svc: &mut dyn Service) -> Vec<Output> {
    std::iter::from_fn(|| svc.poll_output()).collect()
}

impl<S: Service> Harness<S> {
    /// Wrap a service; virtual time starts at an arbitrary instant.
    pub fn new(svc: S) -> Self {
        Harness { svc, now: Instant::now(), next_index: 1 }
    }

    /// A fresh socket id, never handed out before by this harness.
    pub fn new_sock(&mut self) -> SockId {
        self.next_index += 1;
        SockId { index: self.next_index, generation: 0 }
    }

    /// Drain the service's start-up outputs, answering each `Listen`/`Open` with a fresh socket
    /// (bound to 127.0.0.1 with the asked port, or port 40000+index for port 0). Returns the other
    /// outputs, and the answers are fed back before returning.
    pub fn start(&mut self) -> Vec<Output> {
        let outs = drain(&mut self.svc);
        self.answer_opens(outs)
    }

    /// Feed an input, drain, and answer any `Listen`/`Open` it produced (see [`Harness::start`]).
    pub fn input(&mut self, input: Input<'_>) -> Vec<Output> {
        self.svc.handle_input(self.now, input);
        let outs = drain(&mut self.svc);
        self.answer_opens(outs)
    }

    /// Move virtual time forward by `d`, firing the service's timeout if it is due; returns outputs.
    pub fn advance(&mut self, d: Duration) -> Vec<Output> {
        self.now += d;
        let mut outs = Vec::new();
        if self.svc.poll_timeout().is_some_and(|t| t <= self.now) {
            self.svc.handle_timeout(self.now);
            outs = drain(&mut self.svc);
        }
        self.answer_opens(outs)
    }

    /// Jump to the service's next deadline (if any) and fire it.
    pub fn fire_next(&mut self) -> Option<Vec<Output>> {
        let at = self.svc.poll_timeout()?;
        if at > self.now {
            self.now = at;
        }
        self.svc.handle_timeout(self.now);
        let outs = drain(&mut self.svc);
        Some(self.answer_opens(outs))
    }

    fn answer_opens(&mut self, outs: Vec<Output>) -> Vec<Output> {
        let mut rest = Vec::new();
        let mut answers = Vec::new();
        for o in outs {
            match o {
                Output::Listen { tag, addr, .. } | Output::Open { tag, addr, .. } => {
                    let sock = self.new_sock();
                    let port =
                        if addr.port() == 0 { 40000 + (sock.index % 25_000) as u16 } else { addr.port() };
                    let ip = if addr.ip().is_unspecified() { Ipv4Addr::LOCALHOST.into() } else { addr.ip() };
                    answers.push((tag, Opened { sock, local: SocketAddr::new(ip, port) }));
                }
                other => rest.push(other),
            }
        }
        for (tag, opened) in answers {
            self.svc.handle_input(self.now, Input::Opened { tag, result: Ok(opened) });
            let more = drain(&mut self.svc);
            rest.extend(self.answer_opens(more));
        }
        rest
    }
}
