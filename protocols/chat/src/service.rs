//! [`ChatService`]: the [`Chat`] core on the reactor, one TCP listener, one member per connection.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use netlab_core::{Bytes, CloseReason, Input, Output, Service, SockId, SockKind, StreamLimits};

use crate::ChatConfig;
use crate::chat::Chat;
use crate::text::TimeOfDay;
use crate::types::{ChatOutput, ExternalCommand, LeaveReason, MemberId};

/// Tag of the chat's `Listen`. Small, so that an embedder wrapping this service can use tags at or
/// above `1 << 32` for its own sockets.
pub const TAG_LISTEN: u64 = 1;

/// Sent to a connection refused because the chat is full.
pub const FULL: &[u8] = b"! server full\r\n";

/// The chat over TCP: a [`Service`] that maps connections to [`Chat`] members.
pub struct ChatService {
    /// The core.
    chat: Chat,
    /// Outputs of our own (the `Listen`, closes on EOF) that go before the core's.
    out: VecDeque<Output>,
    /// Our listener, once open.
    listener: Option<SockId>,
    /// Connection → member.
    by_sock: HashMap<SockId, MemberId>,
    /// Member → connection.
    by_member: HashMap<MemberId, SockId>,
}

impl ChatService {
    /// Chat on a TCP listener at `addr`. The reactor enforces `config.max_users` (refusing with
    /// `! server full`) and `config.output_limit` (closing slow readers, who leave as "too slow").
    pub fn new(addr: SocketAddr, config: ChatConfig, clock: Box<dyn TimeOfDay>) -> Self {
        let limits = StreamLimits {
            max_conns: config.max_users,
            refusal: Bytes::from_static(FULL),
            pause_reading_above: config.output_limit.min(StreamLimits::default().pause_reading_above),
            close_above: config.output_limit,
        };
        let mut out = VecDeque::new();
        out.push_back(Output::Listen { tag: TAG_LISTEN, kind: SockKind::TcpListener, addr, limits });
        ChatService {
            chat: Chat::new(config, clock),
            out,
            listener: None,
            by_sock: HashMap::new(),
            by_member: HashMap::new(),
        }
    }

    /// The core, for queries such as [`Chat::nick`].
    pub fn chat(&self) -> &Chat {
        &self.chat
    }

    /// Let `/NAME args` lines reach the embedder instead of "unknown command"; listed in /help.
    pub fn add_external_command(&mut self, name: &'static str, usage: &'static str, help: &'static str) {
        self.chat.add_external_command(name, usage, help);
    }

    /// Next external command typed by a user.
    pub fn poll_command(&mut self) -> Option<ExternalCommand> {
        self.chat.poll_command()
    }

    /// Send a `* ` notice line (CRLF added) to one member; false if they are gone.
    pub fn notify(&mut self, member: MemberId, text: &str) -> bool {
        self.chat.notify(member, text)
    }

    fn forget(&mut self, sock: SockId) -> Option<MemberId> {
        let id = self.by_sock.remove(&sock)?;
        self.by_member.remove(&id);
        Some(id)
    }
}

impl Service for ChatService {
    fn name(&self) -> &'static str {
        "chat"
    }

    fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        match input {
            Input::Opened { tag: TAG_LISTEN, result: Ok(opened) } => self.listener = Some(opened.sock),
            Input::Opened { tag, result: Err(e) } => log::error!("chat: listener {tag} failed: {e}"),
            Input::Opened { .. } => {}
            Input::Accepted { sock, peer, .. } => {
                let id = self.chat.connect(now, peer);
                self.by_sock.insert(sock, id);
                self.by_member.insert(id, sock);
            }
            Input::Stream { sock, data } => {
                if let Some(&id) = self.by_sock.get(&sock) {
                    self.chat.receive(now, id, data);
                }
            }
            Input::Eof { sock } => {
                if let Some(id) = self.forget(sock) {
                    self.chat.disconnect(now, id, LeaveReason::Closed);
                    self.out.push_back(Output::Close { sock, flush: true });
                }
            }
            Input::Closed { sock, reason } => {
                if Some(sock) == self.listener {
                    if reason != CloseReason::Shutdown {
                        log::warn!("chat: listener {sock} closed: {reason}");
                    }
                    self.listener = None;
                } else if let Some(id) = self.forget(sock) {
                    let why = match reason {
                        CloseReason::OutputLimit => LeaveReason::TooSlow,
                        _ => LeaveReason::Closed,
                    };
                    self.chat.disconnect(now, id, why);
                }
            }
            Input::Datagram { .. } | Input::SendFailed { .. } => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.chat.handle_timeout(now);
    }

    fn poll_output(&mut self) -> Option<Output> {
        if let Some(o) = self.out.pop_front() {
            return Some(o);
        }
        loop {
            match self.chat.poll_output()? {
                ChatOutput::Deliver { member, data } => {
                    if let Some(&sock) = self.by_member.get(&member) {
                        return Some(Output::Write { sock, data });
                    }
                }
                ChatOutput::Close { member } => {
                    if let Some(sock) = self.by_member.remove(&member) {
                        self.by_sock.remove(&sock);
                        return Some(Output::Close { sock, flush: true });
                    }
                }
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.chat.poll_timeout()
    }

    fn handle_shutdown(&mut self, _now: Instant) {
        self.chat.shutdown();
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let s = self.chat.stats();
        vec![
            ("members", self.chat.members() as u64),
            ("rooms", self.chat.rooms() as u64),
            ("messages", s.messages),
            ("private", s.private),
            ("too_long", s.too_long),
            ("bad_utf8", s.bad_utf8),
            ("flood_refused", s.flood_refused),
            ("kicked_flooding", s.kicked_flooding),
            ("kicked_idle", s.kicked_idle),
            ("kicked_slow", s.kicked_slow),
            ("refused_full", s.refused_full),
        ]
    }
}
