//! A table of 64-bit handles that rejects stale ones (the role of Corosync's
//! `hdb`): where a handle crosses an FFI or IPC boundary as a plain integer, a
//! handle to a removed entry must fail cleanly rather than reach whatever reused
//! the slot.
//!
//! A handle is `generation << 32 | index`. A slot's generation changes every time
//! its entry is removed, so an old handle never matches again (until the 32-bit
//! generation wraps, about four billion reuses of that one slot later).
//!
//! ```
//! use phalanx::util::handle_table::{HandleError, HandleTable};
//! let mut t = HandleTable::new(2);
//! let a = t.insert("a").unwrap();
//! assert_eq!(t.get(a), Ok(&"a"));
//! assert_eq!(t.remove(a), Ok("a"));
//! let b = t.insert("b").unwrap(); // reuses a's slot
//! assert_eq!(t.get(a), Err(HandleError::Stale));
//! assert_eq!(t.get(b), Ok(&"b"));
//! ```

/// Why a handle was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandleError {
    /// The entry it named was removed (or the handle was never issued here).
    #[error("stale or unknown handle")]
    Stale,
    /// The table holds its maximum number of entries; nothing changed.
    #[error("handle table full")]
    Full,
}

/// A handle: opaque, copyable, and safe to pass as a `u64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Handle(pub u64);

impl Handle {
    fn new(index: u32, generation: u32) -> Self {
        Handle((u64::from(generation) << 32) | u64::from(index))
    }
    fn index(self) -> usize {
        (self.0 & 0xffff_ffff) as usize
    }
    fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

struct Slot<T> {
    /// Never 0, so `Handle(0)` is never valid.
    generation: u32,
    value: Option<T>,
}

/// Entries addressed by [`Handle`]s, at most `capacity` of them.
pub struct HandleTable<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    live: usize,
    capacity: usize,
}

impl<T> HandleTable<T> {
    /// An empty table holding at most `capacity` entries (at most 2³² − 1).
    pub fn new(capacity: usize) -> Self {
        HandleTable {
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            capacity: capacity.min(u32::MAX as usize),
        }
    }

    /// Stores `value` and returns its handle, or [`HandleError::Full`].
    pub fn insert(&mut self, value: T) -> Result<Handle, HandleError> {
        if self.live >= self.capacity {
            return Err(HandleError::Full);
        }
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 1,
                    value: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.value = Some(value);
        self.live += 1;
        Ok(Handle::new(index, slot.generation))
    }

    fn slot(&self, h: Handle) -> Option<&Slot<T>> {
        self.slots
            .get(h.index())
            .filter(|s| s.generation == h.generation() && s.value.is_some())
    }

    /// The entry `h` names.
    pub fn get(&self, h: Handle) -> Result<&T, HandleError> {
        self.slot(h)
            .and_then(|s| s.value.as_ref())
            .ok_or(HandleError::Stale)
    }

    /// The entry `h` names, mutably.
    pub fn get_mut(&mut self, h: Handle) -> Result<&mut T, HandleError> {
        self.slot(h).ok_or(HandleError::Stale)?;
        self.slots[h.index()]
            .value
            .as_mut()
            .ok_or(HandleError::Stale)
    }

    /// Removes the entry `h` names; every copy of `h` is stale from now on.
    pub fn remove(&mut self, h: Handle) -> Result<T, HandleError> {
        self.slot(h).ok_or(HandleError::Stale)?;
        let slot = &mut self.slots[h.index()];
        let value = slot.value.take().ok_or(HandleError::Stale)?;
        slot.generation = match slot.generation.wrapping_add(1) {
            0 => 1,
            g => g,
        };
        self.free.push(h.index() as u32);
        self.live -= 1;
        Ok(value)
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether there are no live entries.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Every live entry with its handle, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (Handle, &T)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.value
                .as_ref()
                .map(|v| (Handle::new(i as u32, s.generation), v))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_of_removed_entries_stay_stale_across_reuse() {
        let mut t = HandleTable::new(4);
        let a = t.insert(1).unwrap();
        t.remove(a).unwrap();
        for _ in 0..100 {
            let b = t.insert(2).unwrap();
            assert_eq!(b.index(), a.index(), "slot reused");
            assert_eq!(t.get(a), Err(HandleError::Stale));
            assert_eq!(t.remove(a), Err(HandleError::Stale));
            t.remove(b).unwrap();
        }
        assert!(t.is_empty());
    }

    #[test]
    fn capacity_is_enforced_and_freed_by_removal() {
        let mut t = HandleTable::new(2);
        let a = t.insert('a').unwrap();
        t.insert('b').unwrap();
        assert_eq!(t.insert('c'), Err(HandleError::Full));
        t.remove(a).unwrap();
        assert!(t.insert('c').is_ok());
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn forged_handles_are_refused() {
        let mut t = HandleTable::new(8);
        let a = t.insert(7u8).unwrap();
        for forged in [0u64, 1, a.0 ^ (1 << 32), a.0 + 1, u64::MAX] {
            assert_eq!(
                t.get(Handle(forged)),
                Err(HandleError::Stale),
                "{forged:#x}"
            );
        }
        *t.get_mut(a).unwrap() += 1;
        assert_eq!(t.iter().collect::<Vec<_>>(), vec![(a, &8)]);
    }
}
