//! Which node is the directory node of a resource (§3.4).
//!
//! `dir = members[(hash(name) >> 16) % members.len()]` over the member ids sorted
//! ascending (every weight 1). The hash is 64-bit FNV-1a written here: it must be the
//! same on every node and in every build, which std's randomly keyed hasher is not.

use super::wire::NodeId;

/// 64-bit FNV-1a of `bytes`.
///
/// ```
/// use phalanx_dlm::cluster::fnv1a64;
/// assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
/// assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
/// ```
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The directory node of `name` among `sorted_members` (ascending, no duplicates);
/// `None` for an empty member list.
///
/// ```
/// use phalanx_dlm::cluster::directory_node;
/// let members = [1, 2, 3];
/// let dir = directory_node(&members, b"inode:42").unwrap();
/// assert!(members.contains(&dir));
/// assert_eq!(directory_node(&[7], b"anything"), Some(7));
/// ```
pub fn directory_node(sorted_members: &[NodeId], name: &[u8]) -> Option<NodeId> {
    if sorted_members.is_empty() {
        return None;
    }
    let slot = (fnv1a64(name) >> 16) % sorted_members.len() as u64;
    sorted_members.get(slot as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_spread_over_every_member() {
        let members = [1, 4, 9];
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..64u32 {
            seen.extend(directory_node(&members, &i.to_be_bytes()));
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![1, 4, 9]);
    }
}
