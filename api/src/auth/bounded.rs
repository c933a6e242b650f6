//! A map that anyone on the network can add entries to (a log-in counter per e-mail,
//! a bucket per address) must not grow without bound, and must not forget everything
//! at once when full either: that would hand an attacker who fills it a reset of
//! every other caller's counters. So when one of these maps is full, the least
//! recently touched tenth of it is forgotten: idle entries, which have the least to
//! remember, and never the ones in use.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

/// A map of at most `max` entries; see the module comment.
#[derive(Debug)]
pub struct Bounded<K, V> {
    pub entries: HashMap<K, V>,
    max: usize,
}

impl<K: Hash + Eq + Clone, V> Bounded<K, V> {
    pub fn new(max: usize) -> Self {
        Bounded { entries: HashMap::new(), max }
    }

    /// The entry of `key`, made with `make` when there is none (making room first, by
    /// `touched`: when each entry was last used).
    pub fn get_or_insert_with(&mut self, key: K, touched: impl Fn(&V) -> Instant, make: impl FnOnce() -> V) -> &mut V {
        if !self.entries.contains_key(&key) {
            self.make_room(touched);
        }
        self.entries.entry(key).or_insert_with(make)
    }

    /// Makes room for one more entry, by `touched` (when each entry was last used).
    fn make_room(&mut self, touched: impl Fn(&V) -> Instant) {
        if self.entries.len() < self.max {
            return;
        }
        let mut ages: Vec<(Instant, K)> = self.entries.iter().map(|(k, v)| (touched(v), k.clone())).collect();
        ages.sort_unstable_by_key(|(at, _)| *at);
        for (_, key) in ages.into_iter().take((self.max / 10).max(1)) {
            self.entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_full_map_forgets_its_least_recently_touched_tenth() {
        let start = Instant::now();
        let mut map: Bounded<u32, Instant> = Bounded::new(100);
        for i in 0..100 {
            map.get_or_insert_with(i, |at| *at, || start + Duration::from_secs(u64::from(i)));
        }
        // An entry already there is found, not made room for.
        map.get_or_insert_with(0, |at| *at, || start);
        assert_eq!(map.entries.len(), 100);
        map.get_or_insert_with(100, |at| *at, || start + Duration::from_secs(100));
        assert_eq!(map.entries.len(), 91);
        assert!((0..10).all(|i| !map.entries.contains_key(&i)), "the oldest went");
        assert!((10..=100).all(|i| map.entries.contains_key(&i)), "the others stayed");
    }
}
