//! The one hash of the code base: XXH3 (the `xxhash-rust` crate), 64 and 128 bit. Used
//! for graph fingerprints (a changed graph is refused on resume), op-cache keys and ids
//! derived from names for exporters. Not for secrets: XXH3 is fast and well distributed,
//! not cryptographic. (The replay provider keeps its own FNV hash: its embeddings and
//! choices are part of recorded, reproducible outputs.)

use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

/// 64-bit hash of `bytes`.
pub fn hash64(bytes: &[u8]) -> u64 {
    xxh3_64(bytes)
}

/// 128-bit hash of `bytes`.
pub fn hash128(bytes: &[u8]) -> u128 {
    xxh3_128(bytes)
}

/// 128-bit fingerprint of `bytes` as 32 lowercase hex digits.
pub fn fingerprint(bytes: &[u8]) -> String {
    format!("{:032x}", hash128(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_distinct() {
        // Fixed values: a fingerprint stored by one build must be read the same by the next.
        assert_eq!(hash64(b""), 0x2d06_8005_38d3_94c2);
        assert_eq!(fingerprint(b"abc").len(), 32);
        assert_eq!(fingerprint(b"abc"), fingerprint(b"abc"));
        assert_ne!(fingerprint(b"abc"), fingerprint(b"abd"));
        assert_ne!(hash64(b"a\0b"), hash64(b"ab"));
    }
}
