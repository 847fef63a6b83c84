//! The chat core: members, nicknames, rooms, flood control and idle timeouts, keyed by [`MemberId`].
//! Commands are in `commands.rs`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use netlab_core::{TimerId, Timers};

use crate::line::{Frame, LineReader};
use crate::rooms::Rooms;
use crate::text::{self, TimeOfDay};
use crate::types::{ChatOutput, ChatStats, ExternalCommand, LeaveReason, MemberId};
use crate::{ChatConfig, LOBBY};

/// Most external commands waiting for the embedder; past it a command is refused with `! busy`. The
/// embedder drains them after every input, so this only matters if it forgets.
const MAX_PENDING_COMMANDS: usize = 1024;

/// A command the embedder handles.
#[derive(Clone, Copy, Debug)]
pub(crate) struct External {
    pub name: &'static str,
    pub usage: &'static str,
    pub help: &'static str,
}

/// Token bucket for flood control.
#[derive(Debug)]
struct Bucket {
    /// Lines that may be sent right now (fractional while refilling).
    tokens: f32,
    /// When `tokens` was last brought up to date.
    at: Instant,
    /// Lines refused in a row; reset by an accepted line.
    strikes: u32,
}

/// One member.
#[derive(Debug)]
pub(crate) struct Member {
    /// Address and port of the peer, for the greeting and logs.
    pub peer: SocketAddr,
    /// `None` until a nickname is accepted.
    pub nick: Option<std::sync::Arc<str>>,
    /// Folded name of the member's room (`None` before the nickname is accepted).
    pub room: Option<Arc<str>>,
    /// Framing state; holds no buffer between lines.
    reader: LineReader,
    /// Flood control.
    bucket: Bucket,
    /// Idle timer.
    idle: TimerId,
}

/// The chat state machine. See the crate docs for the contract.
pub struct Chat {
    pub(crate) config: ChatConfig,
    clock: Box<dyn TimeOfDay>,
    pub(crate) members: HashMap<MemberId, Member>,
    /// Folded nickname → member.
    pub(crate) nicks: HashMap<Box<str>, MemberId>,
    pub(crate) rooms: Rooms,
    idle: Timers<MemberId>,
    out: VecDeque<ChatOutput>,
    commands: VecDeque<ExternalCommand>,
    pub(crate) external: Vec<External>,
    next_id: u64,
    pub(crate) stats: ChatStats,
    /// Shutting down: no more leave notices.
    quiet: bool,
}

impl Chat {
    /// An empty chat. `clock` gives the local time of day for message timestamps.
    pub fn new(config: ChatConfig, clock: Box<dyn TimeOfDay>) -> Self {
        Chat {
            config,
            clock,
            members: HashMap::new(),
            nicks: HashMap::new(),
            rooms: Rooms::default(),
            idle: Timers::new(),
            out: VecDeque::new(),
            commands: VecDeque::new(),
            external: Vec::new(),
            next_id: 0,
            stats: ChatStats::default(),
            quiet: false,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ChatConfig {
        &self.config
    }

    /// A new connection from `peer`: greets it and asks for a nickname. When the chat is full the
    /// outputs are `! server full` and a close, and the id names nobody.
    pub fn connect(&mut self, now: Instant, peer: SocketAddr) -> MemberId {
        // A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; show them as a.b.c.d.
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let id = MemberId(self.next_id);
        self.next_id += 1;
        if self.members.len() >= self.config.max_users {
            self.stats.refused_full += 1;
            self.deliver(id, Bytes::from_static(b"! server full\r\n"));
            self.out.push_back(ChatOutput::Close { member: id });
            return id;
        }
        let idle = self.idle.insert(now + self.config.idle_timeout, id);
        let bucket = Bucket { tokens: self.config.flood_burst as f32, at: now, strikes: 0 };
        let member = Member { peer, nick: None, room: None, reader: LineReader::default(), bucket, idle };
        self.members.insert(id, member);
        log::debug!("chat: {id} connected from {peer}");
        self.send(id, &format!("* welcome to netlab chat, {peer}"));
        self.ask_nick(id);
        id
    }

    /// Bytes from a member's connection, in any pieces. Unknown (gone) members are ignored.
    pub fn receive(&mut self, now: Instant, id: MemberId, mut data: &[u8]) {
        let max = self.config.max_line;
        while let Some(m) = self.members.get_mut(&id) {
            let Some(frame) = m.reader.next(&mut data, max) else { break };
            // Only complete lines count as activity: dribbling bytes keeps no one connected.
            self.idle.reschedule(m.idle, now + self.config.idle_timeout);
            if !self.take_token(now, id) {
                continue;
            }
            match frame {
                Frame::Line(line) => self.line(now, id, &line),
                Frame::TooLong => {
                    self.stats.too_long += 1;
                    self.send(id, &format!("! line too long (max {max} bytes): discarded"));
                }
            }
        }
    }

    /// The member's connection is gone (EOF, error, output limit): it leaves with `reason`. No
    /// `Close` output follows; unknown members are ignored.
    pub fn disconnect(&mut self, _now: Instant, id: MemberId, reason: LeaveReason) {
        if reason == LeaveReason::TooSlow && self.members.contains_key(&id) {
            self.stats.kicked_slow += 1;
        }
        self.remove(id, reason);
    }

    /// Fire idle timeouts due at `now`. Early or repeated calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((_, id)) = self.idle.pop_expired(now) {
            self.stats.kicked_idle += 1;
            let idle = self.config.idle_timeout;
            self.send(id, &format!("! idle for {idle:?}: disconnecting"));
            self.kick(id, LeaveReason::Timeout);
        }
    }

    /// When [`Chat::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.idle.next_deadline()
    }

    /// The next output. Drain to `None` after every call that takes `now`.
    pub fn poll_output(&mut self) -> Option<ChatOutput> {
        self.out.pop_front()
    }

    /// Let `/NAME args` lines reach the embedder (see [`Chat::poll_command`]) instead of "unknown
    /// command"; listed in `/help` as `/USAGE  HELP`. Names are matched without regard to case.
    pub fn add_external_command(&mut self, name: &'static str, usage: &'static str, help: &'static str) {
        self.external.push(External { name, usage, help });
    }

    /// The next external command typed by a user.
    pub fn poll_command(&mut self) -> Option<ExternalCommand> {
        self.commands.pop_front()
    }

    pub(crate) fn push_command(&mut self, cmd: ExternalCommand) {
        if self.commands.len() >= MAX_PENDING_COMMANDS {
            self.send(cmd.member, "! server busy, try again");
        } else {
            self.commands.push_back(cmd);
        }
    }

    /// Send a `* ` notice line to one member (control characters removed, `\r\n` added); false if
    /// the member is gone.
    pub fn notify(&mut self, id: MemberId, text: &str) -> bool {
        if !self.members.contains_key(&id) {
            return false;
        }
        self.send(id, &format!("* {}", text::strip_controls(text)));
        true
    }

    /// The server is shutting down: tell every member, and from now on let members leave without
    /// notices (each would go to everyone still connected: quadratic work for nothing).
    pub fn shutdown(&mut self) {
        self.announce("server shutting down");
        self.quiet = true;
    }

    /// Tell every member.
    pub fn announce(&mut self, text: &str) {
        let line = Bytes::from(format!("* {}\r\n", text::strip_controls(text)));
        let ids: Vec<MemberId> = self.members.keys().copied().collect();
        for id in ids {
            self.deliver(id, line.clone());
        }
    }

    /// The nickname of a member, once chosen.
    pub fn nick(&self, id: MemberId) -> Option<&str> {
        self.members.get(&id)?.nick.as_deref()
    }

    /// Number of connected members (with or without a nickname).
    pub fn members(&self) -> usize {
        self.members.len()
    }

    /// Number of rooms.
    pub fn rooms(&self) -> usize {
        self.rooms.len()
    }

    /// Counters.
    pub fn stats(&self) -> ChatStats {
        self.stats
    }

    /// Spend one token of the member's bucket; on refusal, warn or (after `flood_kick` refusals in
    /// a row) disconnect. Returns whether the line may be processed.
    fn take_token(&mut self, now: Instant, id: MemberId) -> bool {
        let (rate, burst, kick) = (self.config.flood_rate, self.config.flood_burst, self.config.flood_kick);
        let Some(m) = self.members.get_mut(&id) else { return false };
        let b = &mut m.bucket;
        let elapsed = now.saturating_duration_since(b.at).as_secs_f32();
        b.tokens = (b.tokens + elapsed * rate).min(burst as f32);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            b.strikes = 0;
            return true;
        }
        b.strikes += 1;
        self.stats.flood_refused += 1;
        if b.strikes >= kick {
            self.stats.kicked_flooding += 1;
            self.send(id, "! flooding: disconnecting");
            self.kick(id, LeaveReason::Flooding);
        } else if b.strikes == 1 {
            self.send(id, "! flood limit: slow down (lines are dropped until you do)");
        }
        false
    }

    /// The member leaves with `reason` and its connection is closed (after what was delivered).
    pub(crate) fn kick(&mut self, id: MemberId, reason: LeaveReason) {
        if self.members.contains_key(&id) {
            self.remove(id, reason);
            self.out.push_back(ChatOutput::Close { member: id });
        }
    }

    /// Forget a member: its nickname, its room (with a leave notice), its timer.
    fn remove(&mut self, id: MemberId, reason: LeaveReason) {
        let Some(m) = self.members.remove(&id) else { return };
        self.idle.cancel(m.idle);
        log::debug!("chat: {id} from {} left ({reason})", m.peer);
        if let Some(nick) = &m.nick {
            self.nicks.remove(&*text::fold(nick));
        }
        if let (Some(nick), Some(room)) = (&m.nick, &m.room) {
            self.rooms.leave(room, id);
            if self.quiet {
                return;
            }
            let name = self.rooms.get(room).map(|r| r.name.clone());
            if let Some(name) = name {
                self.broadcast(room, None, format_args!("* {nick} left #{name} ({reason})"));
            }
        }
    }

    /// Queue bytes for a member.
    pub(crate) fn deliver(&mut self, member: MemberId, data: Bytes) {
        self.out.push_back(ChatOutput::Deliver { member, data });
    }

    /// Queue one line (`\r\n` added) for a member.
    pub(crate) fn send(&mut self, id: MemberId, line: &str) {
        let mut s = String::with_capacity(line.len() + 2);
        s.push_str(line);
        s.push_str("\r\n");
        self.deliver(id, Bytes::from(s));
    }

    /// One line (`\r\n` added) to everyone in room `key` except `except`: one allocation shared by
    /// every recipient.
    pub(crate) fn broadcast(&mut self, key: &str, except: Option<MemberId>, line: std::fmt::Arguments<'_>) {
        let Some(room) = self.rooms.get(key) else { return };
        // Formatted once, CRLF included: one allocation, no intermediate copy of the text.
        let mut s = String::with_capacity(64);
        let _ = std::fmt::Write::write_fmt(&mut s, format_args!("{line}\r\n"));
        let data = Bytes::from(s);
        for &m in &room.members {
            if Some(m) != except {
                self.out.push_back(ChatOutput::Deliver { member: m, data: data.clone() });
            }
        }
    }

    /// `[HH:MM:SS]` now (formatted where it is used: no allocation of its own).
    pub(crate) fn stamp(&mut self, now: Instant) -> text::Stamp {
        text::stamp(&mut *self.clock, now)
    }

    pub(crate) fn ask_nick(&mut self, id: MemberId) {
        self.send(id, "* choose a nickname (1-32 letters, digits, _ - .):");
    }

    /// Accept a nickname for a member without one, and put it in the lobby.
    pub(crate) fn register(&mut self, id: MemberId, nick: &str) {
        let Some(m) = self.members.get_mut(&id) else { return };
        m.nick = Some(nick.into());
        self.nicks.insert(text::fold(nick), id);
        self.send(id, &format!("* you are {nick}; type /help for commands"));
        self.enter(id, LOBBY);
    }

    /// Put a member with a nickname into room `name` (it is in none).
    pub(crate) fn enter(&mut self, id: MemberId, name: &str) {
        let key = self.rooms.join(name, id);
        let Some(m) = self.members.get_mut(&id) else { return };
        m.room = Some(key.clone());
        let nick = m.nick.clone().unwrap_or_default();
        let room = self.rooms.get(&key).expect("just joined");
        let (name, count) = (room.name.clone(), room.members.len());
        self.broadcast(&key, Some(id), format_args!("* {nick} joined #{name}"));
        self.send(id, &format!("* you joined #{name} ({count} here; /who lists them)"));
    }
}
