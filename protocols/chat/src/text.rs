//! Text rules: nicknames, room names, control-character stripping, timestamps.

use std::borrow::Cow;
use std::time::Instant;

/// Longest nickname, in characters (all ASCII, so also bytes).
pub const MAX_NICK: usize = 32;
/// Longest room name, without its leading `#`.
pub const MAX_ROOM: usize = 32;

/// The server's local wall-clock time of day, for message timestamps. The crate never reads a clock:
/// the embedder supplies this (the real local time in the server, a fixed time in tests).
pub trait TimeOfDay: Send {
    /// Local time of day at monotonic instant `now`, as (hours, minutes, seconds).
    fn hms(&mut self, now: Instant) -> (u8, u8, u8);
}

impl<F: FnMut(Instant) -> (u8, u8, u8) + Send> TimeOfDay for F {
    fn hms(&mut self, now: Instant) -> (u8, u8, u8) {
        self(now)
    }
}

/// `[HH:MM:SS]`, the prefix of every message line.
pub fn stamp(clock: &mut dyn TimeOfDay, now: Instant) -> Stamp {
    let (h, m, s) = clock.hms(now);
    Stamp(h, m, s)
}

/// A time of day shown as `[HH:MM:SS]`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Stamp(pub u8, pub u8, pub u8);

impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{:02}:{:02}:{:02}]", self.0, self.1, self.2)
    }
}

/// Why a nickname or room name was refused; the `Display` is shown to the user.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NameError {
    /// Nothing given.
    Empty,
    /// Longer than the limit.
    TooLong(usize),
    /// A character outside letters, digits, `_ - .`.
    BadChar,
}

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NameError::Empty => f.write_str("empty"),
            NameError::TooLong(max) => write!(f, "longer than {max} characters"),
            NameError::BadChar => f.write_str("use only letters, digits, _ - and ."),
        }
    }
}

/// Check a name made of ASCII letters, digits, `_`, `-`, `.`, 1 to `max` characters. ASCII only, so
/// that case-insensitive uniqueness is simple and no two nicknames look alike.
fn check_name(s: &str, max: usize) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
        return Err(NameError::BadChar);
    }
    if s.len() > max {
        return Err(NameError::TooLong(max));
    }
    Ok(())
}

/// Validate a nickname (1–32 of `A-Z a-z 0-9 _ - .`).
pub fn check_nick(s: &str) -> Result<(), NameError> {
    check_name(s, MAX_NICK)
}

/// Validate a room name and return it without its optional leading `#`.
pub fn check_room(s: &str) -> Result<&str, NameError> {
    let bare = s.strip_prefix('#').unwrap_or(s);
    check_name(bare, MAX_ROOM).map(|()| bare)
}

/// The case-insensitive key of a nickname or room name.
pub fn fold(s: &str) -> Box<str> {
    s.to_ascii_lowercase().into_boxed_str()
}

/// True for characters a terminal may act on: C0 controls except TAB, DEL, and C1 controls
/// (U+0080–U+009F: U+009B is a one-character CSI on some terminals).
fn is_hostile(c: char) -> bool {
    (c.is_control() && c != '\t') || ('\u{80}'..='\u{9f}').contains(&c)
}

/// Remove control characters (C0 except TAB, DEL, C1) so that no user can send terminal escape
/// sequences to another. Borrows when there is nothing to remove.
pub fn strip_controls(s: &str) -> Cow<'_, str> {
    if s.chars().any(is_hostile) {
        Cow::Owned(s.chars().filter(|&c| !is_hostile(c)).collect())
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicks() {
        assert_eq!(check_nick("alice_B-2.x"), Ok(()));
        assert_eq!(check_nick(""), Err(NameError::Empty));
        assert_eq!(check_nick(&"a".repeat(32)), Ok(()));
        assert_eq!(check_nick(&"a".repeat(33)), Err(NameError::TooLong(32)));
        assert_eq!(check_nick("al ice"), Err(NameError::BadChar));
        assert_eq!(check_nick("élan"), Err(NameError::BadChar));
        assert_eq!(check_nick("a\x1b"), Err(NameError::BadChar));
    }

    #[test]
    fn rooms() {
        assert_eq!(check_room("#rust"), Ok("rust"));
        assert_eq!(check_room("rust"), Ok("rust"));
        assert_eq!(check_room("#"), Err(NameError::Empty));
        assert_eq!(check_room("##x"), Err(NameError::BadChar));
    }

    #[test]
    fn controls_are_stripped() {
        assert_eq!(strip_controls("plain\ttab"), Cow::Borrowed("plain\ttab"));
        assert_eq!(strip_controls("\x1b[31mred\x1b[0m\x07"), "[31mred[0m");
        assert_eq!(strip_controls("a\u{9b}2Jb\u{7f}c\0"), "a2Jbc");
        assert_eq!(strip_controls("héllo ✓"), "héllo ✓");
    }

    #[test]
    fn stamps() {
        let mut clock = |_: Instant| (7u8, 5u8, 9u8);
        assert_eq!(stamp(&mut clock, Instant::now()).to_string(), "[07:05:09]");
    }
}
