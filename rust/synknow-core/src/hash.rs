//! One hasher for integer keys (name indices in the sampler, name-prefix codes in the code-length
//! engine). The keys are already spread out or dense small integers, so SipHash's resistance to
//! adversarial keys buys nothing and costs most of a lookup; one multiply-xorshift suffices.
//! Only membership and lookups depend on it, never the order of anything, so the choice of mixer
//! cannot change any output.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

#[derive(Default, Clone, Copy)]
pub(crate) struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x100_0000_01B3);
        }
    }
    #[inline]
    fn write_u64(&mut self, x: u64) {
        let z = (x ^ (x >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        self.0 = z ^ (z >> 32);
    }
}

pub(crate) type IntMap<V> = HashMap<u64, V, BuildHasherDefault<IntHasher>>;
pub(crate) type IntSet = HashSet<u64, BuildHasherDefault<IntHasher>>;
