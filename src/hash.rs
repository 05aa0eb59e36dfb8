//! Hash maps keyed by what a server chooses (POP3 unique ids, the ledger's
//! keys). foldhash is much faster than std's SipHash on short keys, which
//! shows on a 100,000-message mailbox (bench/README.md). Its own seed comes from
//! address-space layout and the clock, so we key it from the operating
//! system's randomness instead (through std's `RandomState`): a hostile
//! server cannot pick ids that collide.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::OnceLock;

use foldhash::SharedSeed;

/// The hasher builder of [`Map`] and [`Set`].
pub type Keyed = foldhash::fast::SeedableRandomState;
pub type Map<K, V> = HashMap<K, V, Keyed>;
pub type Set<K> = HashSet<K, Keyed>;

/// A hasher builder with a per-process random seed.
pub fn keyed() -> Keyed {
    static SHARED: OnceLock<SharedSeed> = OnceLock::new();
    let shared =
        SHARED.get_or_init(|| SharedSeed::from_u64(std::hash::RandomState::new().hash_one(0u64)));
    Keyed::with_seed(std::hash::RandomState::new().hash_one(1u64), shared)
}

pub fn map<K, V>(capacity: usize) -> Map<K, V> {
    HashMap::with_capacity_and_hasher(capacity, keyed())
}

pub fn set<K>(capacity: usize) -> Set<K> {
    HashSet::with_capacity_and_hasher(capacity, keyed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ_between_builders() {
        // Two builders (as two processes would) hash the same key apart.
        let (a, b) = (keyed(), keyed());
        assert_ne!(a.hash_one("u:1"), b.hash_one("u:1"));
        let mut m = map::<String, u32>(0);
        m.insert("u:1".into(), 1);
        assert_eq!(m.get("u:1"), Some(&1));
    }
}
