//! RFC 6675 loss detection, kept beside RACK as the tested alternative
//! (`LossDetection::Rfc6675`): a segment is lost once more than
//! (DupThresh − 1) segments' worth of data above it was SACKed (IsLost),
//! and recovery also starts on DupThresh duplicate ACKs.

use super::scoreboard::Scoreboard;
use super::sent::SentLog;

/// RFC 6675's DupThresh.
const DUP_THRESH: usize = 3;

/// Marks lost every un-SACKed segment for which IsLost holds. Returns true
/// when one was newly marked. SACKed bytes above a point only shrink as
/// the point rises, so the scan stops at the first segment not lost.
pub fn mark_lost(log: &mut SentLog, board: &Scoreboard, mss: usize) -> bool {
    let mut newly = false;
    for i in 0..log.len() {
        let Some(s) = log.get(i).copied() else {
            break;
        };
        if board.sacked_above(s.end) <= (DUP_THRESH - 1) * mss {
            break;
        }
        // A resent segment is not marked again (RFC 6675's HighRxt): its
        // second loss is the timeout's business, or RACK's.
        if !s.lost && !s.retransmitted && !board.covers(s.start, s.end) {
            newly |= log.mark_lost(i);
        }
    }
    newly
}
