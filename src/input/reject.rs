//! The one reject type of both jobs: a record that ended rejected, with its
//! reason, detail, where it was read and its raw text (docs/spec.md §3).
//! Rejects are data: sources emit them beside the accepted events, and the
//! rejects sink ([`crate::output::rejects`]) writes them.

use serde::{Deserialize, Serialize};

use crate::model::event::{Invalid, Reason};

/// Longest raw text kept with a reject, in bytes.
pub const MAX_RAW_BYTES: usize = 4096;

/// Where a record was read within its partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Place {
    /// A line of a file (1-based).
    Line(u64),
    /// A Kafka message: its offset, and the line within its value (1-based;
    /// a value may hold several records).
    Message { offset: i64, line: u32 },
}

/// A rejected record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reject {
    pub reason: Reason,
    pub detail: String,
    pub partition: u32,
    pub place: Place,
    /// The partition frontier when the record was read (orders the rejects
    /// of a backfill).
    pub frontier: u64,
    /// The raw record, cut at [`MAX_RAW_BYTES`].
    pub raw: Vec<u8>,
}

impl Reject {
    pub fn new(invalid: Invalid, partition: u32, place: Place, frontier: u64, raw: &[u8]) -> Self {
        Reject {
            reason: invalid.reason,
            detail: invalid.detail,
            partition,
            place,
            frontier,
            raw: cut_raw(raw),
        }
    }

    /// The order of a backfill's rejects file: by the frontier at which each
    /// was read, then partition (a change log's first), then place — a
    /// function of the input alone.
    pub fn order_key(&self) -> (u64, u32, Place) {
        // The change log's partition number, u32::MAX, comes round to 0.
        (self.frontier, self.partition.wrapping_add(1), self.place)
    }
}

/// At most [`MAX_RAW_BYTES`] of `line`; UTF-8 text is not cut inside a
/// character.
pub fn cut_raw(line: &[u8]) -> Vec<u8> {
    let mut end = line.len().min(MAX_RAW_BYTES);
    if is_text(line) {
        while end < line.len() && (line[end] & 0xC0) == 0x80 {
            end -= 1;
        }
    }
    line[..end].to_vec()
}

/// Whether `bytes` is UTF-8 text, allowing a last character cut short (an
/// over-long record is kept only in part).
fn is_text(bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_on_a_character_boundary() {
        // 3-byte characters: 4096 is not a boundary, 4095 is.
        let text = "€".repeat(2000);
        assert_eq!(cut_raw(text.as_bytes()).len(), 4095);
        // The same text kept only in part, ending inside a character.
        let kept = &text.as_bytes()[..5000];
        assert_eq!(cut_raw(kept).len(), 4095);
        // Bytes that are not UTF-8 are cut at the limit.
        let bytes = vec![0xFFu8; 5000];
        assert_eq!(cut_raw(&bytes).len(), MAX_RAW_BYTES);
    }
}
