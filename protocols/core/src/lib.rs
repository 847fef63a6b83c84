//! netlab-core: the contract between the reactor and the protocols.
//!
//! **What it is.** The [`Service`] trait every protocol implements, the [`Input`]s the reactor feeds it
//! and the [`Output`]s it drains from it, plus [`Timers`], the cancellable deadline heap that services
//! use for retransmits, ping timeouts and idle timeouts.
//!
//! **What it never does.** Nothing here opens a socket, reads the clock or draws randomness. `now` is
//! always passed in, so every protocol runs on virtual time in its tests.
//!
//! **The life of one session.** A service asks for a socket (`Output::Listen` or `Output::Open`); the
//! reactor answers `Input::Opened`. A TCP listener then produces `Input::Accepted` for each connection,
//! bytes arrive as `Input::Stream`, the end of the peer's data as `Input::Eof`; a UDP or ICMP socket
//! produces `Input::Datagram`. The service answers with `Output::Write`, `Output::SendTo` and
//! `Output::Close`. Whatever closes a socket, the service hears `Input::Closed` exactly once, after
//! which that [`SockId`] is dead and outputs naming it are ignored.

mod service;
pub mod testkit;
mod timer;

pub use bytes::Bytes;
pub use service::{
    CloseReason, Input, OpenError, Opened, Output, RecvMeta, Service, SockId, SockKind, StreamLimits,
};
pub use timer::{TimerId, Timers};

/// True for a UDP source port a request/response service must never answer: port 0, or a
/// privileged port where another "small service" (echo, chargen, daytime...) may listen. Answering
/// one would let a single forged datagram set two services bouncing replies at each other forever.
pub fn is_reflection_risk(from: std::net::SocketAddr) -> bool {
    from.port() < 1024
}
