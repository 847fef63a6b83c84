//! netlab-tftp: TFTP (RFC 1350) with option negotiation (RFC 2347, 2348, 2349, 7440), sans-IO.
//!
//! **What it is.** The wire format ([`Packet`]: a checked parse of untrusted bytes, and an emit that
//! writes exactly the computed length), netascii conversion ([`netascii`]), option negotiation
//! ([`options`]), the per-transfer state machines ([`Sender`], [`Receiver`]) that the server and the
//! `netlab tftp` client share, and [`TftpService`], the server as a `netlab_core::Service`.
//!
//! **What it never does.** Open a socket, read the clock or touch the file system: sockets are the
//! reactor's, `now` is passed in, and files sit behind the [`FileSystem`] trait (the server's folder
//! in `src/handlers/tftp.rs`, memory in the tests).
//!
//! **The life of one transfer.** A request (RRQ or WRQ) arrives on the listening socket. The service
//! checks it, the caps and the file (opened before anything is sent, so no ERROR follows an OACK),
//! agrees the options, and asks for a socket of its own (`Output::Open`, port 0: the server's TID).
//! On `Input::Opened` the machine sends its first packet — OACK, DATA 1 or ACK 0 — and arms its
//! deadline in the service's timer heap. Each ACK (or DATA) moves the transfer on; each timeout
//! resends with a doubled timeout, up to a retry cap. When the machine finishes or fails, the
//! service logs one line, closes the socket (`Output::Close`) and forgets the transfer.

mod client;
pub mod files;
pub mod netascii;
pub mod options;
pub mod packet;
mod receiver;
mod service;
pub mod transfer;

pub use client::{Client, Transmit};
pub use files::{FileSystem, FsError, MemFs, MemRead, ReadFile, WriteFile};
pub use options::Negotiated;
pub use packet::{ErrorCode, Kind, Mode, Packet, ParseError};
pub use service::{Config, TftpService};
pub use transfer::{Receiver, Retry, Sender, Status};
