//! TCP chat (protocols/chat) on the reactor, with the server's local time for message timestamps.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, ensure};
use clap::Args;
use netlab_chat::{ChatConfig, ChatService, TimeOfDay};
use netlab_core::Service;

use crate::cli::{Bind, parse_duration};

/// The most a relayed line adds to its text: `[HH:MM:SS] (private) ` + a 32-character nickname +
/// `: ` + CRLF, rounded up.
const MAX_DECORATION: usize = 64;

#[derive(Args, Debug, Clone)]
pub struct ChatArgs {
    /// TCP chat: address to listen on, or `off`.
    #[arg(long, value_name = "ADDR|off", default_value = "127.0.0.1:7777")]
    pub chat: Bind,
    /// Most chat users at once; more get `! server full` and are closed.
    #[arg(long, value_name = "N", default_value_t = ChatConfig::default().max_users)]
    pub chat_max_users: usize,
    /// Disconnect a chat user who sends no complete line for this long.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub chat_idle_timeout: Duration,
    /// Longest chat line in bytes (without CRLF); longer lines are refused and discarded.
    #[arg(long, value_name = "BYTES", default_value_t = ChatConfig::default().max_line)]
    pub chat_max_line: usize,
    /// Most bytes waiting to be written to one chat user; past it the user is dropped as too slow.
    #[arg(long, value_name = "BYTES", default_value_t = ChatConfig::default().output_limit)]
    pub chat_output_limit: usize,
    /// Flood limit: lines per second a chat user may send on average.
    #[arg(long, value_name = "N", default_value_t = ChatConfig::default().flood_rate)]
    pub chat_flood_rate: f32,
    /// Flood limit: lines a chat user may send in one burst.
    #[arg(long, value_name = "N", default_value_t = ChatConfig::default().flood_burst)]
    pub chat_flood_burst: u32,
    /// Flood limit: disconnect a chat user after this many refused lines in a row.
    #[arg(long, value_name = "N", default_value_t = ChatConfig::default().flood_kick)]
    pub chat_flood_kick: u32,
    /// Most `/ping` runs at once, across all chat users (0 turns `/ping` off).
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub chat_ping_max: usize,
    /// Networks `/ping` may target, comma-separated (`0.0.0.0/0,::/0` for any). Loopback by
    /// default: anonymous chat users must not make the server probe other hosts.
    #[arg(long, value_name = "CIDR,...", value_delimiter = ',', default_value = "127.0.0.0/8,::1/128")]
    pub chat_ping_allow: Vec<super::chat_ping::Cidr>,
}

pub fn register(args: &ChatArgs, services: &mut Vec<Box<dyn Service>>) -> Result<()> {
    let Some(addr) = args.chat.0 else { return Ok(()) };
    let config = config(args)?;
    let chat = ChatService::new(addr, config, Box::new(LocalClock::new()));
    services.push(super::chat_ping::ChatPing::wrap(chat, args.chat_ping_max, args.chat_ping_allow.clone()));
    Ok(())
}

/// The chat's limits from the command line (shared with the threaded baseline).
pub fn config(args: &ChatArgs) -> Result<ChatConfig> {
    ensure!(args.chat_max_line >= 1, "--chat-max-line must be at least 1");
    ensure!(args.chat_max_users >= 1, "--chat-max-users must be at least 1");
    ensure!(!args.chat_idle_timeout.is_zero(), "--chat-idle-timeout must be more than 0");
    // One relayed line is the text plus a stamp, a nickname and CRLF: it must fit under the cap.
    ensure!(
        args.chat_output_limit >= args.chat_max_line.saturating_add(MAX_DECORATION),
        "--chat-output-limit must be at least --chat-max-line + {MAX_DECORATION}"
    );
    ensure!(args.chat_flood_rate > 0.0 && args.chat_flood_rate.is_finite(), "--chat-flood-rate must be > 0");
    ensure!(args.chat_flood_burst >= 1 && args.chat_flood_kick >= 1, "flood burst and kick must be >= 1");
    Ok(ChatConfig {
        max_line: args.chat_max_line,
        max_users: args.chat_max_users,
        idle_timeout: args.chat_idle_timeout,
        output_limit: args.chat_output_limit,
        flood_rate: args.chat_flood_rate,
        flood_burst: args.chat_flood_burst,
        flood_kick: args.chat_flood_kick,
    })
}

/// The server's local time of day, derived from the reactor's `now`: the wall clock is read once at
/// start-up, so the loop keeps its one clock read per turn; `localtime_r` runs once per second.
/// Public so the threaded baseline can stamp messages the same way.
pub struct LocalClock {
    /// The monotonic and wall-clock times at start-up.
    anchor: (Instant, SystemTime),
    /// The last second converted and its result.
    cached: Option<(i64, (u8, u8, u8))>,
}

impl Default for LocalClock {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalClock {
    pub fn new() -> Self {
        LocalClock { anchor: (Instant::now(), SystemTime::now()), cached: None }
    }
}

impl TimeOfDay for LocalClock {
    fn hms(&mut self, now: Instant) -> (u8, u8, u8) {
        let wall = self.anchor.1 + now.saturating_duration_since(self.anchor.0);
        let secs = wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        if let Some((s, hms)) = self.cached
            && s == secs
        {
            return hms;
        }
        let t = secs as libc::time_t;
        // SAFETY: localtime_r writes only into `tm`, which we own; a zeroed `tm` is a valid value.
        let hms = unsafe {
            let mut tm: libc::tm = std::mem::zeroed();
            if libc::localtime_r(&t, &mut tm).is_null() {
                ((secs / 3600 % 24) as u8, (secs / 60 % 60) as u8, (secs % 60) as u8)
            } else {
                (tm.tm_hour as u8, tm.tm_min as u8, tm.tm_sec as u8)
            }
        };
        self.cached = Some((secs, hms));
        hms
    }
}
