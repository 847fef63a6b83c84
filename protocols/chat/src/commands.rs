//! What a line does: a nickname attempt, a message, or a command.

use std::time::Instant;

use crate::chat::Chat;
use crate::text::{self, check_nick, check_room, fold, strip_controls};
use crate::types::{ExternalCommand, LeaveReason, MemberId};

/// Nicknames listed per `/who` line, so that a crowded room does not make one huge line.
const WHO_PER_LINE: usize = 20;
/// Most nicknames one `/who` lists (about 7 KB): a crowded room must not let one command fill a
/// good part of the member's output cap.
const WHO_MAX: usize = 200;
/// Most rooms one `/rooms` lists, for the same reason.
const ROOMS_MAX: usize = 100;
/// Longest `/quit` reason kept, in characters.
const MAX_REASON: usize = 80;

/// The built-in commands, for `/help`: (usage, help).
const HELP: &[(&str, &str)] = &[
    ("/help", "this list"),
    ("/nick NEW", "change your nickname"),
    ("/who", "who is in your room"),
    ("/msg NICK TEXT", "private message to NICK"),
    ("/me TEXT", "an action: * you TEXT"),
    ("/join ROOM", "go to ROOM (created if new)"),
    ("/rooms", "list the rooms"),
    ("/quit [REASON]", "leave (q! also works)"),
];

impl Chat {
    /// One complete line (without `\r\n`) from a member, after flood control.
    pub(crate) fn line(&mut self, now: Instant, id: MemberId, bytes: &[u8]) {
        let Ok(line) = std::str::from_utf8(bytes) else {
            self.stats.bad_utf8 += 1;
            self.send(id, "! invalid UTF-8: line refused");
            return;
        };
        if line == "q!" {
            return self.kick(id, LeaveReason::Quit(None));
        }
        let registered = self.members.get(&id).is_some_and(|m| m.nick.is_some());
        if let Some(rest) = line.strip_prefix('/').filter(|r| !r.starts_with('/')) {
            let (cmd, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let (cmd, args) = (cmd.to_ascii_lowercase(), args.trim());
            match (cmd.as_str(), registered) {
                ("quit", _) => self.quit(id, args),
                ("help", _) => self.help(id),
                ("nick", _) => self.nick_cmd(id, args),
                (_, false) => self.send(id, "! choose a nickname first"),
                ("who", true) => self.who(id),
                ("msg", true) => self.msg(now, id, args),
                ("me", true) => self.me(now, id, args),
                ("join", true) => self.join(id, args),
                ("rooms", true) => self.list_rooms(id),
                (other, true) => self.external_or_unknown(id, other, args),
            }
        } else if !registered {
            self.nick_cmd(id, line.trim());
        } else {
            // `//text` sends `/text`.
            let text = line.strip_prefix('/').unwrap_or(line);
            self.say(now, id, text);
        }
    }

    /// A plain message to the member's room.
    fn say(&mut self, now: Instant, id: MemberId, text: &str) {
        let text = strip_controls(text);
        if text.trim().is_empty() {
            return self.send(id, "! empty message not sent");
        }
        let Some((nick, room)) = self.nick_room(id) else { return };
        self.stats.messages += 1;
        let stamp = self.stamp(now);
        self.broadcast(&room, Some(id), format_args!("{stamp} {nick}: {text}"));
    }

    fn me(&mut self, now: Instant, id: MemberId, args: &str) {
        let text = strip_controls(args);
        if text.trim().is_empty() {
            return self.send(id, "! usage: /me TEXT");
        }
        let Some((nick, room)) = self.nick_room(id) else { return };
        self.stats.messages += 1;
        let stamp = self.stamp(now);
        self.broadcast(&room, Some(id), format_args!("{stamp} * {nick} {text}"));
    }

    fn msg(&mut self, now: Instant, id: MemberId, args: &str) {
        let (to, text) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
        let text = strip_controls(text.trim());
        if to.is_empty() || text.is_empty() {
            return self.send(id, "! usage: /msg NICK TEXT");
        }
        let Some(&target) = self.nicks.get(&*fold(to)) else {
            return self.send(id, &format!("! no such nick: {}", strip_controls(to)));
        };
        let Some((nick, _)) = self.nick_room(id) else { return };
        self.stats.private += 1;
        let stamp = self.stamp(now);
        self.send(target, &format!("{stamp} (private) {nick}: {text}"));
        let to = self.members[&target].nick.clone().unwrap_or_default();
        self.send(id, &format!("* sent to {to}"));
    }

    /// `/nick NEW`, or a bare line from a member who has no nickname yet.
    fn nick_cmd(&mut self, id: MemberId, new: &str) {
        let registered = self.members.get(&id).is_some_and(|m| m.nick.is_some());
        if registered && new.is_empty() {
            return self.send(id, "! usage: /nick NEW");
        }
        let key = fold(new);
        let refusal = match check_nick(new) {
            Err(e) => Some(format!("! invalid nickname: {e}")),
            Ok(()) if self.nicks.get(&key).is_some_and(|&owner| owner != id) => {
                Some(format!("! nickname {new} is taken"))
            }
            Ok(()) => None,
        };
        if let Some(refusal) = refusal {
            self.send(id, &refusal);
            if !registered {
                self.ask_nick(id);
            }
            return;
        }
        if !registered {
            return self.register(id, new);
        }
        let Some((old, room)) = self.nick_room(id) else { return };
        self.nicks.remove(&*fold(&old));
        self.nicks.insert(key, id);
        if let Some(m) = self.members.get_mut(&id) {
            m.nick = Some(new.into());
        }
        self.broadcast(&room, Some(id), format_args!("* {old} is now {new}"));
        self.send(id, &format!("* you are now {new}"));
    }

    fn who(&mut self, id: MemberId) {
        let Some((_, key)) = self.nick_room(id) else { return };
        let Some(room) = self.rooms.get(&key) else { return };
        let mut nicks: Vec<&str> =
            room.members.iter().filter_map(|m| self.members.get(m)?.nick.as_deref()).collect();
        // Only the first WHO_MAX are shown: select them, then sort those, comparing without
        // allocating (nicknames are ASCII). A 10,000-member room costs O(n), not n log n Strings.
        let by_name = |a: &&str, b: &&str| {
            a.bytes().map(|c| c.to_ascii_lowercase()).cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
        };
        if nicks.len() > WHO_MAX {
            nicks.select_nth_unstable_by(WHO_MAX, by_name);
        }
        let shown = nicks.len().min(WHO_MAX);
        nicks[..shown].sort_unstable_by(by_name);
        let mut lines = vec![format!("* {} in #{}:", nicks.len(), room.name)];
        for chunk in nicks[..shown].chunks(WHO_PER_LINE) {
            lines.push(format!("*   {}", chunk.join(" ")));
        }
        if nicks.len() > WHO_MAX {
            lines.push(format!("*   ... and {} more", nicks.len() - WHO_MAX));
        }
        for l in lines {
            self.send(id, &l);
        }
    }

    fn join(&mut self, id: MemberId, args: &str) {
        let name = match check_room(args) {
            Ok(n) => n,
            Err(e) => return self.send(id, &format!("! invalid room name: {e} (usage: /join ROOM)")),
        };
        let Some((nick, old)) = self.nick_room(id) else { return };
        if *old == *fold(name) {
            return self.send(id, &format!("! you are already in #{name}"));
        }
        let old_name = self.rooms.get(&old).map(|r| r.name.clone()).unwrap_or_default();
        self.rooms.leave(&old, id);
        let new_name = self.rooms.find(name).map_or_else(|| name.into(), |r| r.name.clone());
        self.broadcast(&old, None, format_args!("* {nick} left #{old_name} (moved to #{new_name})"));
        self.enter(id, name);
    }

    fn list_rooms(&mut self, id: MemberId) {
        let rooms = self.rooms.list();
        let mut lines = vec![format!("* {} rooms:", rooms.len())];
        lines.extend(rooms.iter().take(ROOMS_MAX).map(|r| format!("*   #{} ({})", r.name, r.members.len())));
        if rooms.len() > ROOMS_MAX {
            lines.push(format!("*   ... and {} more", rooms.len() - ROOMS_MAX));
        }
        for l in lines {
            self.send(id, &l);
        }
    }

    fn quit(&mut self, id: MemberId, reason: &str) {
        let reason = strip_controls(reason);
        let reason: String = reason.trim().chars().take(MAX_REASON).collect();
        self.send(id, "* bye");
        self.kick(id, LeaveReason::Quit(Some(reason).filter(|r| !r.is_empty())));
    }

    fn help(&mut self, id: MemberId) {
        let mut lines: Vec<String> = HELP.iter().map(|(u, h)| format!("* {u:<16} {h}")).collect();
        lines.extend(self.external.iter().map(|e| format!("* /{:<15} {}", e.usage, e.help)));
        lines.push("* anything else is a message to your room; //text sends /text".into());
        for l in lines {
            self.send(id, &l);
        }
    }

    fn external_or_unknown(&mut self, id: MemberId, cmd: &str, args: &str) {
        match self.external.iter().find(|e| e.name.eq_ignore_ascii_case(cmd)) {
            Some(e) => {
                let args = strip_controls(args).into_owned();
                self.push_command(ExternalCommand { member: id, name: e.name, args });
            }
            None => {
                let shown: String = text::strip_controls(cmd).chars().take(32).collect();
                self.send(id, &format!("! unknown command /{shown} (try /help)"));
            }
        }
    }

    /// A registered member's nickname and room key (cloned: cheap, and frees `self`).
    fn nick_room(&self, id: MemberId) -> Option<(std::sync::Arc<str>, std::sync::Arc<str>)> {
        let m = self.members.get(&id)?;
        Some((m.nick.clone()?, m.room.clone()?))
    }
}
