//! netlab-chat: a multi-user, multi-room line chat that plain `nc` and `telnet` users join, as a
//! sans-IO state machine. The wire protocol is in this crate's `README.md`.
//!
//! **What it is.** Two layers:
//! - [`Chat`], the core: members, nicknames, rooms, commands, flood control, idle timeouts. It knows
//!   nothing of sockets: members are opaque [`MemberId`]s it hands out, bytes go in with
//!   [`Chat::receive`], and [`ChatOutput`]s come out ("deliver these bytes to member M", "close M").
//! - [`ChatService`], the core on the reactor: a [`netlab_core::Service`] with one TCP listener that
//!   maps each connection ([`netlab_core::SockId`]) to a member and back.
//!
//! **What it never does.** Open a socket, read a clock (`now` is passed in, and the time of day for
//! timestamps comes from the [`TimeOfDay`] the embedder supplies), buffer without bound (a line is
//! capped at [`ChatConfig::max_line`]; per-member output is capped by the embedder, which reports a
//! slow reader with [`LeaveReason::TooSlow`]), or relay control characters.
//!
//! **The life of one session.** `connect(now, peer)` returns the new member's id and queues the
//! greeting (`* welcome to netlab chat, 127.0.0.1:54321`) and a nickname prompt. Each line received
//! is then a nickname attempt until one is accepted; the member enters `#lobby` and the room sees
//! `* alice joined #lobby`. Plain lines go to everyone else in the room as `[HH:MM:SS] alice: text`;
//! lines starting with `/` are commands. The member leaves by `/quit` or `q!`, by idling, flooding,
//! or when its connection ends ([`Chat::disconnect`]); the room sees `* alice left #lobby (REASON)`.
//!
//! # Driving [`Chat`] directly (any I/O model)
//! ```
//! use std::time::{Duration, Instant};
//! use netlab_chat::{Chat, ChatConfig, ChatOutput, LeaveReason};
//!
//! fn session(now: Instant) {
//!     let mut chat = Chat::new(ChatConfig::default(), Box::new(|_now| (12, 0, 0)));
//!     let alice = chat.connect(now, "127.0.0.1:5000".parse().unwrap());
//!     chat.receive(now, alice, b"alice\r\n");
//!     let bob = chat.connect(now, "127.0.0.1:5001".parse().unwrap());
//!     chat.receive(now, bob, b"bob\nhello\n");
//!     // After EVERY call that takes `now`, drain the outputs and act on them in order:
//!     let mut to_alice = Vec::new();
//!     while let Some(out) = chat.poll_output() {
//!         match out {
//!             ChatOutput::Deliver { member, data } if member == alice => to_alice.extend_from_slice(&data),
//!             ChatOutput::Deliver { .. } => {} // write `data` to that member's socket
//!             ChatOutput::Close { member: _ } => {} // write what was delivered, then close
//!         }
//!     }
//!     assert!(to_alice.ends_with(b"* bob joined #lobby\r\n[12:00:00] bob: hello\r\n"));
//!     // Call handle_timeout(now) once `poll_timeout()` has passed (idle timeouts), and tell the
//!     // chat when a connection ends on its own:
//!     chat.disconnect(now + Duration::from_secs(1), bob, LeaveReason::Closed);
//! }
//! # let h = netlab_core::testkit::Harness::new(netlab_chat::ChatService::new(
//! #     "127.0.0.1:0".parse().unwrap(), ChatConfig::default(), Box::new(|_| (0, 0, 0))));
//! # session(h.now);
//! ```
//! Contract, for any embedder (the reactor's [`ChatService`], the threaded baseline):
//! - `Chat` is `Send` but not `Sync`: a multi-threaded embedder keeps it behind one `Mutex` and
//!   drains `poll_output` under the same lock, handing each `Deliver` to the member's writer.
//! - Outputs for one member come out in the order they must be written. A `Close` comes after the
//!   member's last `Deliver` and means "write what was delivered, then close".
//! - A member the chat closed (quit, idle, flooding, refused because full) is already gone: calling
//!   `receive`/`disconnect` with its id later is harmless and does nothing.
//! - The embedder caps each member's pending output (the reactor: `StreamLimits::close_above`) and
//!   reports a member over the cap with `disconnect(now, id, LeaveReason::TooSlow)`.
//! - `now` never goes backwards.

mod chat;
mod commands;
mod line;
mod rooms;
mod service;
mod text;
mod types;

use std::time::Duration;

pub use chat::Chat;
pub use line::{Frame, LineReader};
pub use rooms::{Room, Rooms};
pub use service::{ChatService, FULL, TAG_LISTEN};
pub use text::{MAX_NICK, MAX_ROOM, NameError, TimeOfDay, check_nick, check_room, strip_controls};
pub use types::{ChatOutput, ChatStats, ExternalCommand, LeaveReason, MemberId};

/// The room every member enters once its nickname is accepted.
pub const LOBBY: &str = "lobby";

/// Limits and rates; every field has a documented default (see `README.md`).
#[derive(Clone, Debug)]
pub struct ChatConfig {
    /// Longest line in bytes, not counting `\r\n`. Default 1,024: a long chat message fits, and a
    /// partial line never costs more than this.
    pub max_line: usize,
    /// Most members at once (connections past it get `! server full`). Default 10,000.
    pub max_users: usize,
    /// A member who sends no complete line for this long is disconnected. Default 10 minutes.
    pub idle_timeout: Duration,
    /// Cap on one member's pending output in bytes, enforced by the embedder; past it the member is
    /// disconnected as too slow. Default 256 KiB: about 2,000 typical lines of backlog.
    pub output_limit: usize,
    /// Flood control: lines per second a member may send on average. Default 5.
    pub flood_rate: f32,
    /// Flood control: lines a member may send at once (the bucket size). Default 20: pasting a
    /// short block of text works.
    pub flood_burst: u32,
    /// Flood control: a member whose lines are refused this many times in a row is disconnected.
    /// Default 50.
    pub flood_kick: u32,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            max_line: 1024,
            max_users: 10_000,
            idle_timeout: Duration::from_secs(600),
            output_limit: 256 * 1024,
            flood_rate: 5.0,
            flood_burst: 20,
            flood_kick: 50,
        }
    }
}

#[cfg(test)]
mod tests;
