//! Cancellable timers: a binary heap of deadlines with lazy deletion and lazy re-arm.
//!
//! `insert`, `cancel` and `reschedule` are O(log n) or better; `pop_expired` is O(log n) per timer.
//! A timer lives in a slot (with a generation, so a stale [`TimerId`] never touches a reused slot);
//! the heap holds `(deadline, slot, generation)` entries. Cancelling frees the slot and leaves its heap
//! entry to be skipped when it surfaces. Moving a deadline *later* (an ACK arrived) only writes the
//! slot; when the old heap entry surfaces it is pushed again at the real deadline. Moving it *earlier*
//! pushes a new entry. Each slot remembers which heap entry is its live one, so each timer has at most
//! one live entry and the stale ones are compacted away when they outnumber the live timers.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Names one timer. Stale ids (fired or cancelled timers) are recognised and ignored.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TimerId {
    slot: u32,
    generation: u32,
}

struct Slot<T> {
    generation: u32,
    /// `Some` while the timer is armed.
    timer: Option<Armed<T>>,
}

struct Armed<T> {
    /// When the timer is due.
    deadline: Instant,
    /// The deadline of this timer's one live heap entry (`<= deadline`).
    queued: Instant,
    value: T,
}

/// A set of cancellable timers, each carrying a value of type `T`.
pub struct Timers<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    heap: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    live: usize,
}

impl<T> Default for Timers<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Timers<T> {
    /// An empty set.
    pub fn new() -> Self {
        Timers { slots: Vec::new(), free: Vec::new(), heap: BinaryHeap::new(), live: 0 }
    }

    /// Number of armed timers.
    pub fn len(&self) -> usize {
        self.live
    }

    /// No armed timers.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Arm a timer due at `deadline`.
    pub fn insert(&mut self, deadline: Instant, value: T) -> TimerId {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot { generation: 0, timer: None });
                (self.slots.len() - 1) as u32
            }
        };
        let s = &mut self.slots[slot as usize];
        s.timer = Some(Armed { deadline, queued: deadline, value });
        self.heap.push(Reverse((deadline, slot, s.generation)));
        self.live += 1;
        TimerId { slot, generation: s.generation }
    }

    /// Disarm a timer, returning its value; `None` if it already fired or was cancelled.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        let s = self.slots.get_mut(id.slot as usize)?;
        if s.generation != id.generation {
            return None;
        }
        let armed = s.timer.take()?;
        self.release(id.slot);
        self.maybe_compact();
        Some(armed.value)
    }

    /// Move a timer's deadline. Returns false if the timer is no longer armed.
    pub fn reschedule(&mut self, id: TimerId, deadline: Instant) -> bool {
        let Some(armed) = self.armed_mut(id) else {
            return false;
        };
        armed.deadline = deadline;
        if deadline < armed.queued {
            armed.queued = deadline;
            self.heap.push(Reverse((deadline, id.slot, id.generation)));
            self.maybe_compact();
        }
        true
    }

    /// The deadline of an armed timer.
    pub fn deadline(&self, id: TimerId) -> Option<Instant> {
        let s = self.slots.get(id.slot as usize)?;
        if s.generation != id.generation {
            return None;
        }
        s.timer.as_ref().map(|a| a.deadline)
    }

    /// The value of an armed timer.
    pub fn get_mut(&mut self, id: TimerId) -> Option<&mut T> {
        self.armed_mut(id).map(|a| &mut a.value)
    }

    /// A deadline no later than the earliest armed timer's (it may be a cancelled or postponed
    /// timer's, which only causes a harmless early wake-up). `None` when no timer is armed.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.live == 0 {
            return None;
        }
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Take one timer that is due at `now`, disarming it. Call until `None`.
    pub fn pop_expired(&mut self, now: Instant) -> Option<(TimerId, T)> {
        while let Some(&Reverse((at, slot, generation))) = self.heap.peek() {
            if at > now {
                return None;
            }
            self.heap.pop();
            let s = &mut self.slots[slot as usize];
            if s.generation != generation {
                continue; // cancelled or fired: a stale entry
            }
            let Some(armed) = s.timer.as_mut() else { continue };
            if armed.queued != at {
                continue; // an earlier reschedule pushed the live entry; this one is stale
            }
            if armed.deadline != at {
                // Postponed: push again at the real deadline (lazy re-arm), even if that is also due,
                // so that due timers still come out in deadline order.
                armed.queued = armed.deadline;
                self.heap.push(Reverse((armed.deadline, slot, generation)));
                continue;
            }
            let armed = s.timer.take().expect("checked above");
            self.release(slot);
            return Some((TimerId { slot, generation }, armed.value));
        }
        None
    }

    fn armed_mut(&mut self, id: TimerId) -> Option<&mut Armed<T>> {
        let s = self.slots.get_mut(id.slot as usize)?;
        if s.generation != id.generation {
            return None;
        }
        s.timer.as_mut()
    }

    fn release(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        s.generation = s.generation.wrapping_add(1);
        self.free.push(slot);
        self.live -= 1;
    }

    /// Rebuild the heap from the live entries once stale ones dominate, so that cancel-heavy use
    /// (every chat message postponing an idle timer) cannot grow the heap without bound.
    fn maybe_compact(&mut self) {
        if self.heap.len() <= 2 * self.live + 64 {
            return;
        }
        let slots = &self.slots;
        self.heap.retain(|Reverse((at, slot, generation))| {
            let s = &slots[*slot as usize];
            s.generation == *generation && s.timer.as_ref().is_some_and(|a| a.queued == *at)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn fires_in_deadline_order() {
        let base = t0();
        let mut t = Timers::new();
        for (i, ms) in [30u64, 10, 20, 10, 0].iter().enumerate() {
            t.insert(base + Duration::from_millis(*ms), i);
        }
        assert_eq!(t.next_deadline(), Some(base));
        let mut order = vec![];
        while let Some((_, v)) = t.pop_expired(base + Duration::from_millis(100)) {
            order.push(v);
        }
        assert_eq!(order[0], 4);
        assert_eq!(order[3], 2);
        assert_eq!(order[4], 0);
        assert!(t.is_empty());
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn nothing_fires_before_its_deadline() {
        let base = t0();
        let mut t = Timers::new();
        t.insert(base + Duration::from_millis(5), ());
        assert!(t.pop_expired(base + Duration::from_millis(4)).is_none());
        assert!(t.pop_expired(base + Duration::from_millis(5)).is_some());
    }

    #[test]
    fn cancel_and_stale_ids() {
        let base = t0();
        let mut t = Timers::new();
        let a = t.insert(base, "a");
        let b = t.insert(base, "b");
        assert_eq!(t.cancel(a), Some("a"));
        assert_eq!(t.cancel(a), None, "double cancel");
        // The slot is reused by c; the stale id `a` must not touch it.
        let c = t.insert(base, "c");
        assert_eq!(t.cancel(a), None);
        assert!(!t.reschedule(a, base));
        let fired: Vec<_> = std::iter::from_fn(|| t.pop_expired(base)).map(|(_, v)| v).collect();
        assert_eq!(fired.len(), 2);
        assert!(fired.contains(&"b") && fired.contains(&"c"));
        assert_eq!(t.cancel(b), None, "fired timers cannot be cancelled");
        assert_eq!(t.cancel(c), None);
    }

    #[test]
    fn reschedule_later_and_earlier() {
        let base = t0();
        let ms = |n| base + Duration::from_millis(n);
        let mut t = Timers::new();
        let a = t.insert(ms(10), "a");
        let b = t.insert(ms(20), "b");
        assert!(t.reschedule(a, ms(30))); // later: lazy
        assert!(t.reschedule(b, ms(5))); // earlier: new entry
        assert!(t.reschedule(b, ms(25))); // and later again
        assert_eq!(t.pop_expired(ms(12)).map(|x| x.1), None);
        assert_eq!(t.pop_expired(ms(26)).map(|x| x.1), Some("b"));
        assert_eq!(t.pop_expired(ms(26)).map(|x| x.1), None);
        assert_eq!(t.deadline(a), Some(ms(30)));
        assert_eq!(t.pop_expired(ms(30)).map(|x| x.1), Some("a"));
        assert!(t.is_empty());
        assert_eq!(t.pop_expired(ms(1000)).map(|x| x.1), None, "no duplicate firing");
    }

    #[test]
    fn hundred_thousand_timers() {
        let base = t0();
        let mut t = Timers::new();
        let n = 100_000u64;
        // Insert in a scrambled order (a multiplicative permutation of 0..n).
        let ids: Vec<_> = (0..n)
            .map(|i| {
                let k = (i * 7919) % n;
                (k, t.insert(base + Duration::from_micros(k), k))
            })
            .collect();
        // Cancel every third, postpone every fifth by a full second.
        let mut cancelled = 0;
        for (k, id) in &ids {
            if k % 3 == 0 {
                assert_eq!(t.cancel(*id), Some(*k));
                cancelled += 1;
            } else if k % 5 == 0 {
                assert!(t.reschedule(*id, base + Duration::from_secs(1) + Duration::from_micros(*k)));
            }
        }
        assert_eq!(t.len(), (n - cancelled) as usize);
        let mut last = None;
        let mut count = 0;
        let mut postponed_seen = false;
        while let Some((_, k)) = t.pop_expired(base + Duration::from_secs(2)) {
            assert_ne!(k % 3, 0, "a cancelled timer fired");
            let at = t_of(base, k);
            if k % 5 == 0 {
                postponed_seen = true;
            } else {
                assert!(!postponed_seen, "postponed timers fire after all others");
            }
            if let Some(prev) = last {
                assert!(at >= prev, "out of order");
            }
            last = Some(at);
            count += 1;
        }
        assert_eq!(count, n - cancelled);
        assert!(t.is_empty());
        assert!(t.heap.len() <= 64, "heap compacts/drains: {}", t.heap.len());

        fn t_of(base: Instant, k: u64) -> Instant {
            let extra = if k % 5 == 0 { Duration::from_secs(1) } else { Duration::ZERO };
            base + extra + Duration::from_micros(k)
        }
    }

    #[test]
    fn heap_stays_bounded_under_churn() {
        let base = t0();
        let mut t = Timers::new();
        let ids: Vec<_> = (0..100).map(|i| t.insert(base + Duration::from_secs(10), i)).collect();
        // Every message of a busy chat moves its sender's idle timer earlier and later.
        for round in 0..10_000u64 {
            let id = ids[(round % 100) as usize];
            t.reschedule(id, base + Duration::from_millis(round % 7));
            t.reschedule(id, base + Duration::from_secs(10));
        }
        assert!(t.heap.len() <= 2 * t.len() + 64 + 1, "heap grew to {}", t.heap.len());
        assert_eq!(std::iter::from_fn(|| t.pop_expired(base + Duration::from_secs(10))).count(), 100);
    }
}
