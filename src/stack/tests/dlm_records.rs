//! The direct path's receive side alone (`DlmService::direct_record`): records
//! of a view this node has not reached wait for it (rule 2), records stamped
//! before this node joined the lockspace were made for an earlier incarnation
//! of it and are dropped; the same check on the ring path's frames.

use super::*;

const LS: LockspaceId = 7;

fn service(epoch: u64, joined_epoch: u64) -> DlmService {
    let mut d = DlmService::new(1, DlmSetup::default()).expect("default setup");
    d.lockspaces.insert(
        LS,
        LsEntry {
            name: Arc::from(&b"ls"[..]),
            group: b"dlm:ls".to_vec(),
            member: true,
            failed: BTreeMap::new(),
            members: vec![1, 2],
            cpg_incarnations: BTreeMap::new(),
            epoch,
            joined_epoch,
            view_ring: 0,
            cpg_joined: true,
        },
    );
    d
}

/// A record as a peer's service stamps it: its epoch, then a core message.
fn record(epoch: u64) -> Vec<u8> {
    let msg = phalanx_dlm::cluster::encode(&phalanx_dlm::cluster::Msg::Lookup {
        lockspace: LS,
        epoch,
        name: b"r".to_vec(),
    });
    let mut r = epoch.to_be_bytes().to_vec();
    r.extend_from_slice(&msg);
    r
}

#[test]
fn a_record_of_the_current_view_goes_to_the_core_at_once() {
    let mut d = service(5, 5);
    d.direct_record(2, &record(5));
    assert_eq!((d.stats.direct_received, d.stats.held_for_view), (1, 0));
    assert_eq!(d.stats.stale_dropped, 0);
}

#[test]
fn a_record_of_a_later_view_waits_for_it_then_goes_in_order() {
    let mut d = service(5, 5);
    d.direct_record(2, &record(6));
    // Behind the held one, in the peer's order, even though of this view.
    d.direct_record(2, &record(5));
    assert_eq!((d.stats.direct_received, d.stats.held_for_view), (0, 1));
    d.lockspaces.get_mut(&LS).unwrap().epoch = 6;
    d.release_held();
    assert_eq!(d.stats.direct_received, 2);
    assert!(d.held_in.is_empty());
}

#[test]
fn a_record_made_before_this_node_joined_is_dropped() {
    // Joined at view 4: a peer whose view was still 1 addressed the earlier
    // incarnation of this node (a cached master, say).
    let mut d = service(4, 4);
    d.direct_record(2, &record(1));
    assert_eq!((d.stats.stale_dropped, d.stats.direct_received), (1, 0));
    assert!(d.held_in.is_empty());
    // Also one that was held: this node left and joined again meanwhile.
    d.direct_record(2, &record(6));
    let e = d.lockspaces.get_mut(&LS).unwrap();
    (e.epoch, e.joined_epoch) = (8, 8);
    d.release_held();
    assert_eq!((d.stats.stale_dropped, d.stats.direct_received), (2, 0));
    assert!(d.held_in.is_empty());
}

#[test]
fn a_ring_message_made_before_this_node_joined_is_dropped_and_a_later_one_is_not() {
    let mut d = service(4, 4);
    let msg = |epoch| {
        phalanx_dlm::cluster::encode(&phalanx_dlm::cluster::Msg::Lookup {
            lockspace: LS,
            epoch,
            name: b"r".to_vec(),
        })
    };
    // In two pieces, as `frames` cuts a long one.
    let stale = msg(1);
    let (a, b) = stale.split_at(3);
    d.piece(LS, 2, FRAME_MORE, 1, a);
    d.piece(LS, 2, FRAME_LAST, 1, b);
    assert_eq!((d.stats.stale_dropped, d.stats.received), (1, 0));
    d.piece(LS, 2, FRAME_LAST, 4, &msg(4));
    assert_eq!((d.stats.stale_dropped, d.stats.received), (1, 1));
    assert!(d.partial.is_empty());
}

#[test]
fn ring_frames_carry_the_epoch_and_reassemble() {
    let bytes: Vec<u8> = (0..=255).collect();
    let f = frames(3, 0x0102_0304_0506_0708, &bytes, 100);
    assert_eq!(f.len(), 3);
    for (i, p) in f.iter().enumerate() {
        assert_eq!(&p[..4], &3u32.to_be_bytes());
        assert_eq!(p[4], if i == 2 { FRAME_LAST } else { FRAME_MORE });
        assert_eq!(&p[5..RING_HEADER], &0x0102_0304_0506_0708u64.to_be_bytes());
    }
    let whole: Vec<u8> = f.iter().flat_map(|p| p[RING_HEADER..].to_vec()).collect();
    assert_eq!(whole, bytes);
}
