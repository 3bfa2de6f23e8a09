//! A cheap hash for the harmonization's lookup tables, read a word at a time.
//!
//! Every key of every event is looked up in the field table, and every
//! classification value in the classification lists (and every n6 key in
//! n6's constraints, `crate::formats::n6::mapping`, and every classification
//! type in IDEA's category tables, `crate::formats::idea::mapping`). The tables are fixed
//! when the harmonization loads, so SipHash's protection against chosen keys
//! buys nothing; a key's length and its first and last 8 bytes tell these
//! names apart, in two multiply rounds whatever the length, where FNV-1a
//! takes one per byte and SipHash far more. Keys that share all three only
//! cost a longer probe: lookups still compare the whole key.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` keyed through [`WordHasher`].
pub(crate) type WordMap<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

/// A `HashSet` keyed through [`WordHasher`].
pub(super) type WordSet<T> = HashSet<T, BuildHasherDefault<WordHasher>>;

/// The multiplier of rustc's FxHash: odd, with well spread bits.
const MULTIPLIER: u64 = 0xf135_7aea_2e62_a9c5;

/// Hashes `bytes` from its length and its first and last 8 bytes (4, or
/// all of them, for shorter keys); the high bits are the best mixed.
pub(super) fn hash_key(bytes: &[u8]) -> u64 {
    let little_endian = |word: &[u8; 4]| u64::from(u32::from_le_bytes(*word));
    let (head, tail) = match (bytes.first_chunk::<8>(), bytes.last_chunk::<8>()) {
        (Some(head), Some(tail)) => (u64::from_le_bytes(*head), u64::from_le_bytes(*tail)),
        _ => match (bytes.first_chunk::<4>(), bytes.last_chunk::<4>()) {
            (Some(head), Some(tail)) => (little_endian(head), little_endian(tail)),
            _ => (
                bytes
                    .iter()
                    .fold(0, |word, byte| word << 8 | u64::from(*byte)),
                0,
            ),
        },
    };
    let length = bytes.len() as u64;
    let first = (head ^ length).wrapping_mul(MULTIPLIER);
    (first.rotate_left(29) ^ tail).wrapping_mul(MULTIPLIER)
}

/// [`hash_key`] for `HashMap`s: FxHash's round folds each written key (and
/// the `0xff` that ends a `str`) into the state, which is rotated at the end
/// so that the well-mixed high bits become the low bits hashbrown picks its
/// bucket with.
#[derive(Debug, Default)]
pub(crate) struct WordHasher(u64);

impl WordHasher {
    /// One round: folds `word` into the state.
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(MULTIPLIER);
    }
}

impl Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }

    fn write(&mut self, bytes: &[u8]) {
        self.add(hash_key(bytes));
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn hash(text: &str) -> u64 {
        BuildHasherDefault::<WordHasher>::default().hash_one(text)
    }

    #[test]
    fn every_byte_of_keys_up_to_16_bytes_counts() {
        let base = "source.geolocation.cc";
        for end in 0..=16 {
            let key = &base[..end];
            let mut changed = key.as_bytes().to_vec();
            for at in 0..changed.len() {
                changed[at] ^= 1;
                let other = std::str::from_utf8(&changed).unwrap();
                assert_ne!(hash(key), hash(other), "{key:?} vs {other:?}");
                assert_ne!(hash_key(key.as_bytes()), hash_key(&changed), "{key:?}");
                changed[at] ^= 1;
            }
        }
    }

    #[test]
    fn maps_find_exactly_their_keys() {
        let names = ["extra", "source.ip", "source.ip.x", "", "a", "ab", "abcd"];
        let map: WordMap<String, usize> = names
            .iter()
            .enumerate()
            .map(|(at, name)| (name.to_string(), at))
            .collect();
        for (at, name) in names.iter().enumerate() {
            assert_eq!(map.get(*name), Some(&at));
        }
        for miss in ["extr", "extra.", "source.i", "source.xp", "abc", "b"] {
            assert_eq!(map.get(miss), None);
        }
    }
}
