//! Out-of-order data: reassembly, immediate duplicate ACKs, and SACK blocks
//! (RFC 2018).

use super::*;
use crate::wire::SackBlock;

#[test]
fn out_of_order_segments_are_reassembled_in_order() {
    let mut t = Script::established(&simple());
    let data = bytes(300);
    t.inject(seg(ACK, 5101, 1001).data(&data[100..200]));
    t.inject(seg(PSH | ACK, 5201, 1001).data(&data[200..]));
    assert_eq!(t.tcb.recv_queue(), 0);
    t.inject(seg(ACK, 5001, 1001).data(&data[..100]));
    assert_eq!(t.tcb.recv_queue(), 300);
    assert_eq!(t.read_all(), data);
}

#[test]
fn each_out_of_order_segment_gets_a_duplicate_ack_at_once() {
    let mut t = Script::established(&simple());
    let data = bytes(300);
    t.inject(seg(ACK, 5101, 1001).data(&data[100..200]));
    t.expect(ACK, 1001, 5001);
    t.expect_nothing();
    t.inject(seg(PSH | ACK, 5201, 1001).data(&data[200..]));
    t.expect(ACK, 1001, 5001);
    t.expect_nothing();
    // Filling the hole is acknowledged at once too.
    t.inject(seg(ACK, 5001, 1001).data(&data[..100]));
    t.expect(ACK, 1001, 5301);
    t.expect_nothing();
}

#[test]
fn out_of_order_segments_in_a_batch_get_one_dup_ack_each() {
    let mut t = Script::established(&simple());
    let data = bytes(300);
    t.inject(seg(ACK, 5101, 1001).data(&data[100..200]));
    t.inject(seg(PSH | ACK, 5201, 1001).data(&data[200..]));
    t.expect(ACK, 1001, 5001);
    t.expect(ACK, 1001, 5001);
    t.expect_nothing();
}

#[test]
fn sack_blocks_in_dup_acks_when_negotiated() {
    let mut t = Script::established_sack(1460);
    let data = bytes(500);
    t.inject(seg(ACK, 5101, 1001).data(&data[100..200]));
    let out = t.expect(ACK, 1001, 5001);
    assert_eq!(
        out.options.sack(),
        &[SackBlock {
            start: 5101,
            end: 5201
        }]
    );
    t.inject(seg(ACK, 5301, 1001).data(&data[300..400]));
    let out = t.expect(ACK, 1001, 5001);
    // RFC 2018, 4: the first block holds the segment that triggered the ACK.
    assert_eq!(
        out.options.sack(),
        &[
            SackBlock {
                start: 5301,
                end: 5401
            },
            SackBlock {
                start: 5101,
                end: 5201
            }
        ]
    );
    t.inject(seg(ACK, 5201, 1001).data(&data[200..300]));
    let out = t.expect(ACK, 1001, 5001);
    assert_eq!(
        out.options.sack(),
        &[SackBlock {
            start: 5101,
            end: 5401
        }]
    );
    t.inject(seg(ACK, 5001, 1001).data(&data[..100]));
    let out = t.expect(ACK, 1001, 5401);
    assert!(out.options.sack().is_empty());
    assert_eq!(t.read_all(), &data[..400]);
}

#[test]
fn sack_reports_the_newest_block_first_even_beyond_three_holes() {
    let mut t = Script::established_sack(1460);
    // Four holes: 10-byte segments at 5101, 5201, 5301, 5401.
    for k in 1..=4u32 {
        let start = 5001 + 100 * k;
        t.inject(seg(ACK, start, 1001).data(&bytes(10)));
        let out = t.expect(ACK, 1001, 5001);
        let sack = out.options.sack();
        assert_eq!(sack.len(), k.min(3) as usize);
        assert_eq!(
            sack[0],
            SackBlock {
                start,
                end: start + 10
            },
            "segment {k} first"
        );
    }
}

#[test]
fn no_sack_blocks_when_the_peer_did_not_permit_sack() {
    let cfg = Config {
        sack: true,
        ..simple()
    };
    let mut t = Script::established(&cfg);
    t.inject(seg(ACK, 5101, 1001).data(&bytes(100)));
    let out = t.expect(ACK, 1001, 5001);
    assert!(out.options.sack().is_empty());
}
