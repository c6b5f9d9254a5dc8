//! Packed journal rows: the entries of one appended batch are stored as one row,
//! `(run_id, seq, last_seq, count, body)`, whose `body` is one sealed value holding all
//! of them (see [`crate::seal`]). One seal and one insert per batch, not per entry.
//!
//! The packed form is a plain binary framing, entry after entry, every integer little
//! endian:
//!
//! ```text
//! seq: i64 | kind: u8 | has_index: u8 | index: u32 | key_len: u32 | key | body_len: u32 | body
//! ```
//!
//! Kind codes are those of [`kind_code`]. Keys and bodies are kept byte for byte. The
//! sealing's associated data binds the row to its run, its seq range and its entry
//! count; unpacking checks the entries against the row (count, first and last seq,
//! increasing seqs) and rows against each other (no overlap).

use crate::seal::{BLOB_HEADER, Place, Sealer};
use crate::{Entry, EntryKind, StoreError};

/// Bytes of an entry's framing besides its key and body.
const FRAME: usize = 8 + 1 + 1 + 4 + 4 + 4;

/// A journal row as stored (`body` sealed).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JournalRow {
    /// The first entry's seq.
    pub seq: i64,
    /// The last entry's seq.
    pub last_seq: i64,
    /// How many entries the row holds.
    pub count: i64,
    /// The packed entries, sealed.
    pub body: Vec<u8>,
}

/// The stored code of a kind.
fn kind_code(kind: EntryKind) -> u8 {
    match kind {
        EntryKind::Op => 0,
        EntryKind::Item => 1,
        EntryKind::StreamEnd => 2,
        EntryKind::Interrupt => 3,
    }
}

/// The kind of a stored code.
fn kind_of(code: u8) -> Option<EntryKind> {
    Some(match code {
        0 => EntryKind::Op,
        1 => EntryKind::Item,
        2 => EntryKind::StreamEnd,
        3 => EntryKind::Interrupt,
        _ => return None,
    })
}

fn batch_error(store: &str, run_id: &str, message: String) -> StoreError {
    StoreError::Corrupt { store: store.to_string(), run_id: run_id.to_string(), what: "journal batch".into(), message }
}

/// A length as framed (at most `u32::MAX` bytes).
fn frame_len(store: &str, run_id: &str, seq: i64, what: &str, len: usize) -> Result<[u8; 4], StoreError> {
    u32::try_from(len)
        .map(u32::to_le_bytes)
        .map_err(|_| batch_error(store, run_id, format!("the {what} of entry {seq} is too long ({len} bytes)")))
}

/// The journal row holding `entries` of the run, sealed; `None` when there are none.
/// Entries are stored in seq order (a batch given out of order is sorted); a seq given
/// twice is refused ([`StoreError::Corrupt`], naming the batch and the seq).
pub(crate) fn pack(sealer: &Sealer, run_id: &str, entries: &[Entry]) -> Result<Option<JournalRow>, StoreError> {
    let store = sealer.store();
    let mut ordered: Vec<&Entry> = entries.iter().collect();
    if !entries.windows(2).all(|w| w[0].seq < w[1].seq) {
        ordered.sort_by_key(|e| e.seq);
        if let Some(w) = ordered.windows(2).find(|w| w[0].seq == w[1].seq) {
            return Err(batch_error(store, run_id, format!("entry seq {} is given twice", w[0].seq)));
        }
    }
    let (Some(first), Some(last)) = (ordered.first(), ordered.last()) else { return Ok(None) };
    let (seq, last_seq) = (first.seq, last.seq);
    let count = i64::try_from(ordered.len()).unwrap_or(i64::MAX);
    let size: usize = ordered.iter().map(|e| FRAME + e.key.len() + e.body.len()).sum();
    let mut buf = Sealer::bytes_buffer(size);
    for e in &ordered {
        buf.extend_from_slice(&e.seq.to_le_bytes());
        buf.push(kind_code(e.kind));
        buf.push(u8::from(e.index.is_some()));
        buf.extend_from_slice(&e.index.unwrap_or(0).to_le_bytes());
        buf.extend_from_slice(&frame_len(store, run_id, e.seq, "key", e.key.len())?);
        buf.extend_from_slice(e.key.as_bytes());
        buf.extend_from_slice(&frame_len(store, run_id, e.seq, "body", e.body.len())?);
        buf.extend_from_slice(e.body.as_bytes());
    }
    let body = sealer.seal_bytes(&Place::Journal { run_id, seq, last_seq, count }, buf)?;
    Ok(Some(JournalRow { seq, last_seq, count, body }))
}

/// Reads the framing of one row's plaintext.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(out)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn text(&mut self) -> Option<Result<String, std::string::FromUtf8Error>> {
        let len = usize::try_from(self.u32()?).ok()?;
        Some(String::from_utf8(self.take(len)?.to_vec()))
    }

    /// The next entry; `Err` with what is wrong.
    fn entry(&mut self) -> Result<Entry, String> {
        let truncated = || "is truncated".to_string();
        let seq = i64::from_le_bytes(self.array().ok_or_else(truncated)?);
        let [code, has_index] = self.array().ok_or_else(truncated)?;
        let kind = kind_of(code).ok_or_else(|| format!("has entry {seq} of unknown kind {code}"))?;
        let index = self.u32().ok_or_else(truncated)?;
        let key =
            self.text().ok_or_else(truncated)?.map_err(|e| format!("has entry {seq} whose key is not UTF-8: {e}"))?;
        let body =
            self.text().ok_or_else(truncated)?.map_err(|e| format!("has entry {seq} whose body is not UTF-8: {e}"))?;
        Ok(Entry { seq, kind, key, index: (has_index != 0).then_some(index), body })
    }
}

/// The entries of a run's journal rows (in seq order, as read), opened and checked:
/// [`StoreError::Corrupt`] naming the run and the rows when a row does not open, does
/// not hold what it says, or overlaps the row before it.
pub(crate) fn unpack(sealer: &Sealer, run_id: &str, rows: Vec<JournalRow>) -> Result<Vec<Entry>, StoreError> {
    let total: i64 = rows.iter().map(|r| r.count.max(0)).sum();
    let mut entries = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    let mut previous: Option<i64> = None;
    for row in rows {
        let place = Place::Journal { run_id, seq: row.seq, last_seq: row.last_seq, count: row.count };
        let corrupt = |message: String| StoreError::Corrupt {
            store: sealer.store().to_string(),
            run_id: run_id.to_string(),
            what: place.what(),
            message,
        };
        if let Some(prev) = previous.filter(|&p| p >= row.seq) {
            return Err(corrupt(format!("overlap the row before, which ends at entry {prev}")));
        }
        previous = Some(row.last_seq);
        let plain = sealer.open_bytes(&place, row.body)?;
        let mut reader = Reader { bytes: plain.get(BLOB_HEADER..).unwrap_or_default(), at: 0 };
        let start = entries.len();
        while reader.at < reader.bytes.len() {
            let entry = reader.entry().map_err(&corrupt)?;
            if let Some(before) = entries.get(start..).and_then(<[Entry]>::last).filter(|b| b.seq >= entry.seq) {
                return Err(corrupt(format!("hold entry {} after entry {}", entry.seq, before.seq)));
            }
            entries.push(entry);
        }
        let held = entries.get(start..).unwrap_or_default();
        let (first, last) = (held.first().map(|e| e.seq), held.last().map(|e| e.seq));
        if i64::try_from(held.len()).ok() != Some(row.count) || first != Some(row.seq) || last != Some(row.last_seq) {
            return Err(corrupt(format!(
                "hold {} entries from {first:?} to {last:?}, not {} from {} to {}",
                held.len(),
                row.count,
                row.seq,
                row.last_seq
            )));
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::StoreKey;

    fn sealer() -> Sealer {
        Sealer::new(&StoreKey::from_bytes([7; 32]), "s").unwrap()
    }

    fn entry(seq: i64, kind: EntryKind, index: Option<u32>, body: &str) -> Entry {
        Entry { seq, kind, key: format!("main.op{seq}@[\"ü\"]"), index, body: body.into() }
    }

    #[test]
    fn entries_round_trip_byte_for_byte() {
        let s = sealer();
        let entries = vec![
            entry(3, EntryKind::Op, None, "{\"z\": 1,  \"a\":[1 ,2]}"),
            entry(4, EntryKind::Item, Some(0), ""),
            entry(9, EntryKind::StreamEnd, Some(u32::MAX), "null"),
            entry(10, EntryKind::Interrupt, None, "\u{0}é\n"),
        ];
        let row = pack(&s, "r", &entries).unwrap().unwrap();
        assert_eq!((row.seq, row.last_seq, row.count), (3, 10, 4));
        let more = pack(&s, "r", &[entry(11, EntryKind::Op, None, "{}")]).unwrap().unwrap();
        let all = unpack(&s, "r", vec![row.clone(), more.clone()]).unwrap();
        assert_eq!(all[..4], entries[..]);
        assert_eq!(all[4].seq, 11);
        assert!(pack(&s, "r", &[]).unwrap().is_none());

        let err = unpack(&s, "r", vec![more, row.clone()]).unwrap_err().to_string();
        assert!(err.contains("journal entries 3 to 10") && err.contains("overlap"), "{err}");
        let err = unpack(&s, "q", vec![row]).unwrap_err().to_string();
        assert!(err.contains("does not open"), "{err}");
    }

    #[test]
    fn batches_are_sorted_and_repeated_seqs_refused() {
        let s = sealer();
        let shuffled = vec![entry(5, EntryKind::Op, None, "5"), entry(2, EntryKind::Op, None, "2")];
        let row = pack(&s, "r", &shuffled).unwrap().unwrap();
        assert_eq!((row.seq, row.last_seq), (2, 5));
        let seqs: Vec<i64> = unpack(&s, "r", vec![row]).unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [2, 5]);
        let twice = vec![entry(5, EntryKind::Op, None, "a"), entry(5, EntryKind::Op, None, "b")];
        let err = pack(&s, "r", &twice).unwrap_err().to_string();
        assert!(err.contains("journal batch") && err.contains("seq 5 is given twice"), "{err}");
    }

    #[test]
    fn rows_that_do_not_hold_what_they_say_are_corrupt() {
        let s = sealer();
        let entries = vec![entry(1, EntryKind::Op, None, "{}"), entry(2, EntryKind::Op, None, "{}")];
        let honest = pack(&s, "r", &entries).unwrap().unwrap();
        // Sealed for what it claims, but holding something else.
        let mut liar = honest.clone();
        let place = Place::Journal { run_id: "r", seq: 1, last_seq: 2, count: 3 };
        let mut buf = Sealer::bytes_buffer(0);
        let plain = s.open_bytes(&Place::Journal { run_id: "r", seq: 1, last_seq: 2, count: 2 }, honest.body).unwrap();
        buf.extend_from_slice(&plain[BLOB_HEADER..]);
        liar.count = 3;
        liar.body = s.seal_bytes(&place, buf).unwrap();
        let err = unpack(&s, "r", vec![liar]).unwrap_err().to_string();
        assert!(err.contains("hold 2 entries") && err.contains("not 3"), "{err}");
        let mut cut = Sealer::bytes_buffer(0);
        cut.extend_from_slice(&plain[BLOB_HEADER..plain.len() - 1]);
        let place = Place::Journal { run_id: "r", seq: 1, last_seq: 2, count: 2 };
        let truncated = JournalRow { seq: 1, last_seq: 2, count: 2, body: s.seal_bytes(&place, cut).unwrap() };
        let err = unpack(&s, "r", vec![truncated]).unwrap_err().to_string();
        assert!(err.contains("is truncated"), "{err}");
    }
}
