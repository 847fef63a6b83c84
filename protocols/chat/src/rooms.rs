//! The room model: named rooms and who is in them, independent of any wire format.
//!
//! A room is created by its first join and removed by its last leave. Members are opaque
//! [`MemberId`]s, so a second front-end (an IRC gateway, a WebSocket page) adds its users as members
//! of the same [`Chat`](crate::Chat) and they share these rooms; only the rendering of events into
//! bytes is front-end specific. Today every member speaks the line protocol, so `Chat::broadcast`
//! renders once; a second front-end would give each member a front-end kind and render once per
//! kind present in the room (still one allocation per kind, not per member).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::MemberId;
use crate::text::fold;

/// One room.
#[derive(Debug)]
pub struct Room {
    /// The name as first written (without `#`), shown to users.
    pub name: Arc<str>,
    /// Who is in it.
    pub members: HashSet<MemberId>,
}

/// Every room, by case-folded name.
#[derive(Default, Debug)]
pub struct Rooms {
    /// Folded name → room.
    rooms: HashMap<Arc<str>, Room>,
}

impl Rooms {
    /// Add `id` to room `name` (creating it); returns the room's key, which the member keeps.
    pub fn join(&mut self, name: &str, id: MemberId) -> Arc<str> {
        let key: Arc<str> = fold(name).into();
        let room = self
            .rooms
            .entry(key.clone())
            .or_insert_with(|| Room { name: name.into(), members: HashSet::new() });
        room.members.insert(id);
        key
    }

    /// Remove `id` from the room with key `key`; an empty room vanishes.
    pub fn leave(&mut self, key: &str, id: MemberId) {
        if let Some(room) = self.rooms.get_mut(key) {
            room.members.remove(&id);
            if room.members.is_empty() {
                self.rooms.remove(key);
            }
        }
    }

    /// The room with key `key` (a folded name).
    pub fn get(&self, key: &str) -> Option<&Room> {
        self.rooms.get(key)
    }

    /// The room called `name`, in any case.
    pub fn find(&self, name: &str) -> Option<&Room> {
        self.rooms.get(&*fold(name))
    }

    /// Every room, sorted by name.
    pub fn list(&self) -> Vec<&Room> {
        let mut v: Vec<&Room> = self.rooms.values().collect();
        v.sort_by_cached_key(|r| r.name.to_ascii_lowercase());
        v
    }

    /// Number of rooms.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// No rooms at all.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }
}
