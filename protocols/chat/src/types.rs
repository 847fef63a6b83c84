//! The chat's public vocabulary: member ids, leave reasons, outputs, external commands, counters.

use std::fmt;

use bytes::Bytes;

/// Names one member of the chat: opaque, never reused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct MemberId(pub(crate) u64);

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "member {}", self.0)
    }
}

/// Why a member left; shown to the room as `* nick left #room (REASON)`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum LeaveReason {
    /// `/quit [REASON]` or `q!`.
    Quit(Option<String>),
    /// The connection ended (EOF, reset, error, server shutdown).
    Closed,
    /// No line for the idle timeout.
    Timeout,
    /// The member's pending output went over the cap: it does not read.
    TooSlow,
    /// The member kept sending past the flood limit.
    Flooding,
}

impl fmt::Display for LeaveReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeaveReason::Quit(None) => f.write_str("quit"),
            LeaveReason::Quit(Some(r)) => write!(f, "quit: {r}"),
            LeaveReason::Closed => f.write_str("closed"),
            LeaveReason::Timeout => f.write_str("timeout"),
            LeaveReason::TooSlow => f.write_str("too slow"),
            LeaveReason::Flooding => f.write_str("flooding"),
        }
    }
}

/// What the chat asks of its embedder, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatOutput {
    /// Send these bytes (whole `\r\n`-terminated lines) to a member. A broadcast shares one `Bytes`.
    Deliver {
        /// The recipient.
        member: MemberId,
        /// The lines.
        data: Bytes,
    },
    /// Close the member's connection after writing what was delivered to it. The member is already
    /// gone from the chat; nothing more will be delivered to it.
    Close {
        /// The member.
        member: MemberId,
    },
}

/// A command registered with [`add_external_command`](crate::Chat::add_external_command), typed by
/// a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalCommand {
    /// Who typed it.
    pub member: MemberId,
    /// The command's registered name (without `/`).
    pub name: &'static str,
    /// The rest of the line, trimmed, control characters removed.
    pub args: String,
}

/// Counters for logs and tests.
#[derive(Default, Debug, Clone, Copy)]
pub struct ChatStats {
    /// Messages relayed to a room (`/me` included).
    pub messages: u64,
    /// Private messages.
    pub private: u64,
    /// Lines refused for being too long.
    pub too_long: u64,
    /// Lines refused for invalid UTF-8.
    pub bad_utf8: u64,
    /// Lines refused by the flood limit.
    pub flood_refused: u64,
    /// Members disconnected for flooding.
    pub kicked_flooding: u64,
    /// Members disconnected for idling.
    pub kicked_idle: u64,
    /// Members disconnected for reading too slowly.
    pub kicked_slow: u64,
    /// Connections refused because the chat was full.
    pub refused_full: u64,
}
