use super::*;
use crate::wire::ipv4::parse_ipv4;
use etherparse::{PacketBuilder, TcpOptionElement};

const SRC: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const DST: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

fn sack(start: u32, end: u32) -> SackBlock {
    SackBlock { start, end }
}

/// Every combination of options: each of MSS, window scale, SACK permitted
/// and timestamps present or not, with 0 to 4 SACK blocks.
fn all_option_sets() -> Vec<TcpOptions> {
    let mut sets = Vec::new();
    for bits in 0..16u32 {
        for blocks in 0..=4u32 {
            let mut o = TcpOptions {
                mss: (bits & 1 != 0).then_some(1460),
                window_scale: (bits & 2 != 0).then_some(7),
                sack_permitted: bits & 4 != 0,
                timestamps: (bits & 8 != 0).then_some((0x0102_0304, 0xa0b0_c0d0)),
                ..TcpOptions::default()
            };
            for i in 0..blocks {
                assert!(o.push_sack(sack(1000 * i + 1, 1000 * i + 500)));
            }
            sets.push(o);
        }
    }
    sets
}

fn header(options: TcpOptions) -> TcpHeader {
    TcpHeader {
        src_port: 40000,
        dst_port: 80,
        seq: 0xdead_beef,
        ack: 0x0102_0304,
        flags: TcpFlags::ACK | TcpFlags::PSH,
        window: 0xfff0,
        options,
    }
}

/// Emits `h` with `payload` into a fresh buffer the way the stack does:
/// payload first, then the header around it.
fn emit(h: &TcpHeader, payload: &[u8]) -> Vec<u8> {
    let hl = h.header_len();
    let mut buf = vec![0xccu8; hl + payload.len()];
    buf[hl..].copy_from_slice(payload);
    assert_eq!(emit_tcp(&mut buf, SRC, DST, h, payload.len()), buf.len());
    buf
}

/// A segment with hand-written option bytes (padded by the caller to a
/// multiple of 4) and a valid checksum.
fn raw_segment(options: &[u8], payload: &[u8]) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let mut buf = vec![0u8; TCP_HEADER_LEN];
    buf[0..2].copy_from_slice(&1234u16.to_be_bytes());
    buf[2..4].copy_from_slice(&80u16.to_be_bytes());
    buf[12] = (((TCP_HEADER_LEN + options.len()) / 4) as u8) << 4;
    buf[13] = TcpFlags::SYN.bits();
    buf.extend_from_slice(options);
    buf.extend_from_slice(payload);
    fix_checksum(&mut buf);
    buf
}

fn fix_checksum(buf: &mut [u8]) {
    buf[16] = 0;
    buf[17] = 0;
    let ph = checksum::pseudo_header(SRC, DST, protocol::TCP, buf.len() as u16);
    let c = checksum::fold(checksum::sum(buf, ph));
    buf[16..18].copy_from_slice(&c.to_be_bytes());
}

fn options_of(raw: &[u8]) -> Result<TcpOptions, WireError> {
    let buf = raw_segment(raw, &[]);
    parse_tcp(SRC, DST, &buf).map(|s| s.options)
}

#[test]
fn flags_display() {
    assert_eq!((TcpFlags::SYN | TcpFlags::ACK).to_string(), "SYN|ACK");
    assert_eq!(format!("{:?}", TcpFlags::SYN | TcpFlags::ACK), "SYN|ACK");
    assert_eq!(TcpFlags::empty().to_string(), "none");
    assert_eq!(TcpFlags::RST.to_string(), "RST");
    assert_eq!(
        TcpFlags(0xff).to_string(),
        "FIN|SYN|RST|PSH|ACK|URG|ECE|CWR"
    );
    assert_eq!(
        format!("{:?}", TcpFlags::FIN | TcpFlags::PSH | TcpFlags::ACK),
        "FIN|PSH|ACK"
    );
}

#[test]
fn flags_set_operations() {
    let mut f = TcpFlags::SYN;
    f |= TcpFlags::ACK;
    assert!(f.contains(TcpFlags::SYN));
    assert!(f.contains(TcpFlags::SYN | TcpFlags::ACK));
    assert!(!f.contains(TcpFlags::SYN | TcpFlags::FIN));
    assert!(f.intersects(TcpFlags::SYN | TcpFlags::FIN));
    assert!(!f.intersects(TcpFlags::RST | TcpFlags::FIN));
    assert!(f.contains(TcpFlags::empty()));
    assert!(!f.intersects(TcpFlags::empty()));
    assert_eq!(f.bits(), 0x12);
    assert_eq!(f & TcpFlags::ACK, TcpFlags::ACK);
    f.remove(TcpFlags::SYN);
    assert_eq!(f, TcpFlags::ACK);
    assert!(TcpFlags::default().is_empty());
    let all = [
        TcpFlags::FIN,
        TcpFlags::SYN,
        TcpFlags::RST,
        TcpFlags::PSH,
        TcpFlags::ACK,
        TcpFlags::URG,
        TcpFlags::ECE,
        TcpFlags::CWR,
    ];
    let union = all.iter().fold(TcpFlags::empty(), |a, &b| a | b);
    assert_eq!(union.bits(), 0xff);
}

#[test]
fn sack_storage() {
    let mut o = TcpOptions::default();
    assert!(o.sack().is_empty());
    for i in 0..4 {
        assert!(o.push_sack(sack(i, i + 1)));
    }
    assert!(!o.push_sack(sack(9, 10)));
    assert_eq!(o.sack().len(), 4);
    assert_eq!(o.sack()[3], sack(3, 4));
    // A corrupt count set through the public field must not panic.
    o.sack_len = 200;
    assert_eq!(o.sack().len(), 4);
    assert!(!o.push_sack(sack(0, 1)));
    assert!(o.encoded_len() <= MAX_OPTIONS_LEN);
}

#[test]
fn encoded_lengths() {
    let mut o = TcpOptions::default();
    assert_eq!(o.encoded_len(), 0);
    o.mss = Some(536);
    assert_eq!(o.encoded_len(), 4);
    o.sack_permitted = true;
    assert_eq!(o.encoded_len(), 8);
    o.timestamps = Some((1, 2));
    assert_eq!(o.encoded_len(), 16);
    o.window_scale = Some(14);
    assert_eq!(o.encoded_len(), 20); // the Linux SYN
    let mut o = TcpOptions {
        timestamps: Some((1, 2)),
        ..TcpOptions::default()
    };
    for i in 0..4 {
        o.push_sack(sack(i, i + 1));
    }
    // 12 for timestamps leaves room for three blocks, as on Linux.
    assert_eq!(o.encoded_len(), 12 + 4 + 3 * 8);
    o.timestamps = None;
    assert_eq!(o.encoded_len(), 4 + 4 * 8);
}

#[test]
fn every_option_combination_round_trips() {
    for options in all_option_sets() {
        let len = options.encoded_len();
        assert_eq!(len % 4, 0, "{options:?}");
        assert!(len <= MAX_OPTIONS_LEN, "{options:?}");
        for payload in [&b""[..], b"x", b"hello, world", &[0xffu8; 1461][..]] {
            let h = header(options);
            let buf = emit(&h, payload);
            let seg = parse_tcp(SRC, DST, &buf).unwrap();
            assert_eq!(seg.src_port, h.src_port);
            assert_eq!(seg.dst_port, h.dst_port);
            assert_eq!(seg.seq, h.seq);
            assert_eq!(seg.ack, h.ack);
            assert_eq!(seg.flags, h.flags);
            assert_eq!(seg.window, h.window);
            assert_eq!(seg.urgent, 0);
            assert_eq!(seg.payload, payload);

            // Blocks that did not fit are the only difference.
            let mut expected = options;
            let fitted = (len
                - TcpOptions {
                    sack_len: 0,
                    ..options
                }
                .encoded_len())
            .saturating_sub(4)
                / 8;
            expected.sack_len = fitted as u8;
            expected.sack_blocks[fitted..].fill(SackBlock::default());
            assert_eq!(seg.options, expected, "{options:?}");
            assert_eq!(
                seg.options.sack(),
                &options.sack()[..fitted],
                "the first blocks are kept"
            );
        }
    }
}

#[test]
fn linux_syn_layout() {
    let o = TcpOptions {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some((0x1122_3344, 0)),
        ..TcpOptions::default()
    };
    let buf = emit(&header(o), &[]);
    assert_eq!(
        &buf[20..],
        &[
            2, 4, 0x05, 0xb4, // MSS 1460
            4, 2, // SACK permitted
            8, 10, 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0, // timestamps
            1, 3, 3, 7, // NOP, window scale 7
        ]
    );
    assert_eq!(buf[12] >> 4, 10);
}

#[test]
fn aligned_layouts_without_sack_permitted() {
    let o = TcpOptions {
        timestamps: Some((5, 6)),
        ..TcpOptions::default()
    };
    let buf = emit(&header(o), &[]);
    assert_eq!(&buf[20..], &[1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6]);

    let o = TcpOptions {
        sack_permitted: true,
        ..TcpOptions::default()
    };
    let buf = emit(&header(o), &[]);
    assert_eq!(&buf[20..], &[1, 1, 4, 2]);

    let mut o = TcpOptions::default();
    o.push_sack(sack(0x0a0b_0c0d, 0x0102_0304));
    let buf = emit(&header(o), &[]);
    assert_eq!(
        &buf[20..],
        &[1, 1, 5, 10, 0x0a, 0x0b, 0x0c, 0x0d, 1, 2, 3, 4]
    );
}

#[test]
fn emitted_bytes_match_etherparse() {
    let payload: Vec<u8> = (0..777u32).map(|i| (i * 7) as u8).collect();
    let o = TcpOptions {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some((0x1122_3344, 0x5566_7788)),
        ..TcpOptions::default()
    };
    let ours = emit(&header(o), &payload);

    let mut theirs = etherparse::TcpHeader::new(40000, 80, 0xdead_beef, 0xfff0);
    theirs.acknowledgment_number = 0x0102_0304;
    theirs.ack = true;
    theirs.psh = true;
    theirs
        .set_options(&[
            TcpOptionElement::MaximumSegmentSize(1460),
            TcpOptionElement::SelectiveAcknowledgementPermitted,
            TcpOptionElement::Timestamp(0x1122_3344, 0x5566_7788),
            TcpOptionElement::Noop,
            TcpOptionElement::WindowScale(7),
        ])
        .unwrap();
    theirs.checksum = theirs
        .calc_checksum_ipv4_raw(SRC.octets(), DST.octets(), &payload)
        .unwrap();
    assert_eq!(&ours[..theirs.header_len()], &theirs.to_bytes()[..]);
    assert_eq!(&ours[theirs.header_len()..], &payload[..]);
}

#[test]
fn parses_a_packet_built_by_etherparse() {
    let builder = PacketBuilder::ipv4(SRC.octets(), DST.octets(), 64)
        .tcp(5555, 443, 1_000_000, 29200)
        .syn()
        .ack(77)
        .options(&[
            TcpOptionElement::MaximumSegmentSize(1400),
            TcpOptionElement::Noop,
            TcpOptionElement::WindowScale(20), // clamped to 14
            TcpOptionElement::SelectiveAcknowledgement((10, 20), [Some((30, 40)), None, None]),
            TcpOptionElement::Timestamp(9, 8),
        ])
        .unwrap();
    let payload = b"odd-length payload!";
    let mut packet = Vec::new();
    builder.write(&mut packet, payload).unwrap();

    let ip = parse_ipv4(&packet).unwrap();
    assert_eq!(ip.protocol, protocol::TCP);
    let seg = parse_tcp(ip.src, ip.dst, ip.payload).unwrap();
    assert_eq!(seg.src_port, 5555);
    assert_eq!(seg.dst_port, 443);
    assert_eq!(seg.seq, 1_000_000);
    assert_eq!(seg.ack, 77);
    assert_eq!(seg.flags, TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(seg.window, 29200);
    assert_eq!(seg.options.mss, Some(1400));
    assert_eq!(seg.options.window_scale, Some(14));
    assert_eq!(seg.options.sack(), &[sack(10, 20), sack(30, 40)]);
    assert_eq!(seg.options.timestamps, Some((9, 8)));
    assert!(!seg.options.sack_permitted);
    assert_eq!(seg.payload, payload);

    // The wrong pseudo-header (addresses swapped is still the same sum,
    // so use another address) must fail.
    assert_eq!(
        parse_tcp(ip.src, Ipv4Addr::new(10, 77, 0, 3), ip.payload),
        Err(WireError::BadChecksum)
    );
}

#[test]
fn emit_ipv4_tcp_builds_a_whole_packet() {
    let mut o = TcpOptions {
        timestamps: Some((1, 2)),
        ..TcpOptions::default()
    };
    o.push_sack(sack(100, 200));
    let h = header(o);
    let payload = b"data";
    let start = IPV4_HEADER_LEN + h.header_len();
    let mut buf = [0u8; 200];
    buf[start..start + payload.len()].copy_from_slice(payload);
    let n = emit_ipv4_tcp(&mut buf, SRC, DST, 0x4242, &h, payload.len());
    assert_eq!(n, start + payload.len());

    let ip = parse_ipv4(&buf[..n]).unwrap();
    assert_eq!((ip.src, ip.dst, ip.ttl, ip.ident), (SRC, DST, 64, 0x4242));
    assert_eq!(ip.protocol, protocol::TCP);
    let seg = parse_tcp(ip.src, ip.dst, ip.payload).unwrap();
    assert_eq!(seg.options, o);
    assert_eq!(seg.payload, payload);

    // And etherparse agrees the packet is well formed.
    let sliced = etherparse::SlicedPacket::from_ip(&buf[..n]).unwrap();
    match sliced.transport {
        Some(etherparse::TransportSlice::Tcp(t)) => {
            let expected = t
                .to_header()
                .calc_checksum_ipv4_raw(SRC.octets(), DST.octets(), t.payload())
                .unwrap();
            assert_eq!(t.checksum(), expected);
        }
        other => panic!("not TCP: {other:?}"),
    }
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let mut o = TcpOptions {
        mss: Some(1460),
        timestamps: Some((1, 2)),
        ..TcpOptions::default()
    };
    o.push_sack(sack(1, 2));
    let buf = emit(&header(o), b"payload");
    for len in 0..buf.len() {
        let r = parse_tcp(SRC, DST, &buf[..len]);
        assert!(r.is_err(), "len {len}");
        if len < TCP_HEADER_LEN {
            assert_eq!(r, Err(WireError::Truncated));
        }
    }
    // With the checksum fixed up, cuts inside the header are data offset
    // errors and cuts in the payload are shorter valid segments.
    let hl = header(o).header_len();
    for len in TCP_HEADER_LEN..buf.len() {
        let mut cut = buf[..len].to_vec();
        fix_checksum(&mut cut);
        let r = parse_tcp(SRC, DST, &cut);
        if len < hl {
            assert_eq!(r, Err(WireError::BadDataOffset), "len {len}");
        } else {
            assert_eq!(r.unwrap().payload, &b"payload"[..len - hl]);
        }
    }
}

#[test]
fn every_single_bit_flip_is_caught() {
    let o = TcpOptions {
        mss: Some(1460),
        ..TcpOptions::default()
    };
    let good = emit(&header(o), b"abc");
    for bit in 0..good.len() * 8 {
        let mut buf = good.clone();
        buf[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(
            parse_tcp(SRC, DST, &buf),
            Err(WireError::BadChecksum),
            "bit {bit}"
        );
    }
}

#[test]
fn bad_data_offset() {
    for offset in 0..5u8 {
        let mut buf = raw_segment(&[], b"abcdefgh");
        buf[12] = offset << 4;
        fix_checksum(&mut buf);
        assert_eq!(parse_tcp(SRC, DST, &buf), Err(WireError::BadDataOffset));
    }
    // Offset 15 (60 bytes) in a 28-byte segment.
    let mut buf = raw_segment(&[], b"abcdefgh");
    buf[12] = 0xf0;
    fix_checksum(&mut buf);
    assert_eq!(parse_tcp(SRC, DST, &buf), Err(WireError::BadDataOffset));
    // The data offset may cover the whole segment: no payload.
    let mut buf = raw_segment(&[], b"\x01\x01\x01\x01");
    buf[12] = 6 << 4;
    fix_checksum(&mut buf);
    assert_eq!(parse_tcp(SRC, DST, &buf).unwrap().payload, b"");
}

#[test]
fn oversized_segment() {
    let buf = vec![0u8; 65536];
    assert_eq!(parse_tcp(SRC, DST, &buf), Err(WireError::BadTotalLength));
}

#[test]
fn malformed_option_lengths_fail() {
    // Length 0 and 1 would loop forever or overlap the next option.
    assert_eq!(options_of(&[2, 0, 0, 0]), Err(WireError::BadOption));
    assert_eq!(options_of(&[99, 1, 0, 0]), Err(WireError::BadOption));
    // Runs past the header.
    assert_eq!(options_of(&[2, 8, 5, 0xb4]), Err(WireError::BadOption));
    assert_eq!(
        options_of(&[1, 1, 8, 10, 0, 0, 0, 1]),
        Err(WireError::BadOption)
    );
    // The length byte itself is missing.
    assert_eq!(options_of(&[1, 1, 1, 30]), Err(WireError::BadOption));
}

#[test]
fn known_options_with_wrong_lengths_are_ignored() {
    let o = options_of(&[
        2, 3, 5, // MSS with length 3
        3, 4, 7, 0, // window scale with length 4
        4, 3, 0, // SACK permitted with length 3
        8, 6, 0, 0, 0, 1, // timestamps with length 6
        5, 6, 0, 0, 0, 1, // SACK with a partial block
        2, 4, 0x02, 0x18, // a good MSS 536 after all that
        0, 0, // EOL, padding
    ])
    .unwrap();
    assert_eq!(
        o,
        TcpOptions {
            mss: Some(536),
            ..TcpOptions::default()
        }
    );
    // An empty SACK (length 2) is ignored too.
    assert_eq!(options_of(&[5, 2, 1, 1]), Ok(TcpOptions::default()));
}

#[test]
fn unknown_options_are_skipped() {
    let o = options_of(&[
        30, 4, 0xaa, 0xbb, // MPTCP-ish
        34, 2, // TFO cookie request
        1, 1, // NOPs
        3, 3, 9, 0, // window scale 9, then EOL
    ])
    .unwrap();
    assert_eq!(o.window_scale, Some(9));
    assert_eq!(o.mss, None);
}

#[test]
fn eol_ends_parsing() {
    // After EOL, even garbage that would be an error is not looked at.
    let o = options_of(&[2, 4, 1, 0, 0, 2, 0, 0]).unwrap();
    assert_eq!(o.mss, Some(256));
    assert_eq!(options_of(&[0, 0, 0, 0]), Ok(TcpOptions::default()));
}

#[test]
fn window_scale_is_clamped() {
    for (shift, expected) in [(0, 0), (14, 14), (15, 14), (255, 14)] {
        let o = options_of(&[1, 3, 3, shift]).unwrap();
        assert_eq!(o.window_scale, Some(expected), "shift {shift}");
    }
}

#[test]
fn four_sack_blocks_parse() {
    let mut raw = vec![1, 1, 5, 34];
    for i in 0..4u32 {
        raw.extend_from_slice(&(i * 10).to_be_bytes());
        raw.extend_from_slice(&(i * 10 + 5).to_be_bytes());
    }
    let o = options_of(&raw).unwrap();
    assert_eq!(
        o.sack(),
        &[sack(0, 5), sack(10, 15), sack(20, 25), sack(30, 35)]
    );
}

#[test]
fn urgent_pointer_is_parsed() {
    let mut buf = raw_segment(&[], b"!");
    buf[13] = (TcpFlags::URG | TcpFlags::ACK).bits();
    buf[18..20].copy_from_slice(&1u16.to_be_bytes());
    fix_checksum(&mut buf);
    let seg = parse_tcp(SRC, DST, &buf).unwrap();
    assert_eq!(seg.urgent, 1);
    assert!(seg.flags.contains(TcpFlags::URG));
}

#[test]
fn garbage_never_panics() {
    let mut x: u32 = 0x1234_5678;
    let mut buf = [0u8; 80];
    for _ in 0..50_000 {
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        let len = (x as usize) % (buf.len() + 1);
        let seg = &mut buf[..len];
        // Mostly small option bytes and a valid checksum, so that the
        // option parser sees many shapes.
        if len >= TCP_HEADER_LEN {
            for b in seg[TCP_HEADER_LEN..].iter_mut() {
                *b %= 12;
            }
            fix_checksum(seg);
        }
        let _ = parse_tcp(SRC, DST, seg);
    }
}

#[cfg(not(debug_assertions))]
#[test]
fn emit_into_short_buffer_returns_zero() {
    let h = header(TcpOptions {
        mss: Some(1),
        ..TcpOptions::default()
    });
    let mut buf = [0u8; 30];
    assert_eq!(emit_tcp(&mut buf, SRC, DST, &h, 7), 0);
    assert_eq!(emit_tcp(&mut buf, SRC, DST, &h, usize::MAX), 0);
    assert_eq!(emit_ipv4_tcp(&mut buf, SRC, DST, 0, &h, 0), 0);
    assert_eq!(emit_ipv4_tcp(&mut buf[..10], SRC, DST, 0, &h, 0), 0);
    assert_eq!(buf, [0u8; 30]);
    let mut big = vec![0u8; 70_000];
    assert_eq!(emit_tcp(&mut big, SRC, DST, &h, 65_512), 0);
}

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "too short")]
fn emit_into_short_buffer_asserts_in_debug() {
    emit_tcp(&mut [0u8; 30], SRC, DST, &header(TcpOptions::default()), 11);
}
