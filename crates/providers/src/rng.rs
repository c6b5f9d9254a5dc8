//! Random picks and stable hashes: the engine's one small random sequence
//! ([`SplitMix`], shared with the backoff's jitter) for weighted resource picks and
//! retry jitter, and FNV-1a for stable seeds. Not for anything secret.

pub(crate) use operonx_graph::backoff::SplitMix;

/// FNV-1a over bytes (stable seeds and hash-based vectors).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_tells_inputs_apart() {
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    }
}
