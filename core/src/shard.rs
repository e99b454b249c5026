//! Which shard an application belongs to: a stable hash of its name
//! (32-bit FNV-1a, the hash Argo CD's legacy sharding uses) modulo the
//! number of shards. Stable across processes, versions and platforms, so
//! every replica agrees without talking.

/// FNV-1a, 32 bits.
pub fn fnv1a32(text: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in text.as_bytes() {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// The shard of `app` among `count` (0 with one shard or none).
pub fn shard_of(app: &str, count: usize) -> usize {
    if count <= 1 {
        return 0;
    }
    fnv1a32(app) as usize % count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_values() {
        assert_eq!(fnv1a32(""), 0x811c_9dc5);
        assert_eq!(fnv1a32("a"), 0xe40c_292c);
        assert_eq!(fnv1a32("foobar"), 0xbf9c_f968);
    }

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard_of("guestbook", 1), 0);
        assert_eq!(shard_of("guestbook", 0), 0);
        assert_eq!(shard_of("guestbook", 3), shard_of("guestbook", 3));
        let mut counts = [0usize; 3];
        for i in 0..3000 {
            counts[shard_of(&format!("app-{i}"), 3)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }
}
