//! Stored run events (see [`crate::RunStore::events`]): the events of one write are packed
//! into one row, `(run_id, seq, last_seq, body)`, whose `body` is the events as one JSON
//! array (`[{"seq": 1, "event": ...}, ...]`) sealed as bytes (see [`crate::seal`]); its
//! associated data binds the row to its run and its seq range, and unpacking checks the
//! events against the row.

use crate::seal::{BLOB_HEADER, Place, Sealer};
use crate::{StoreError, StoredEvent};

/// An events row as stored (`body` sealed).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EventRow {
    /// The first event's seq.
    pub seq: i64,
    /// The last event's seq.
    pub last_seq: i64,
    /// The packed events, sealed.
    pub body: Vec<u8>,
}

fn corrupt(store: &str, run_id: &str, what: String, message: String) -> StoreError {
    StoreError::Corrupt { store: store.to_string(), run_id: run_id.to_string(), what, message }
}

/// A seq as stored.
fn stored_seq(store: &str, run_id: &str, seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| corrupt(store, run_id, "events".into(), format!("event seq {seq} is too large")))
}

/// The row holding `events` of the run, sealed; `None` when there are none. Events must
/// come in increasing seq order, from 1 (refused otherwise: [`StoreError::Corrupt`]).
pub(crate) fn pack(sealer: &Sealer, run_id: &str, events: &[StoredEvent]) -> Result<Option<EventRow>, StoreError> {
    let store = sealer.store();
    if let Some(e) = events.iter().find(|e| e.seq == 0) {
        return Err(corrupt(store, run_id, "events".into(), format!("event seq {} is not 1 or more", e.seq)));
    }
    if let Some(w) = events.windows(2).find(|w| w[0].seq >= w[1].seq) {
        return Err(corrupt(
            store,
            run_id,
            "events".into(),
            format!("event {} comes after event {}", w[1].seq, w[0].seq),
        ));
    }
    let (Some(first), Some(last)) = (events.first(), events.last()) else { return Ok(None) };
    let (seq, last_seq) = (stored_seq(store, run_id, first.seq)?, stored_seq(store, run_id, last.seq)?);
    let mut buf = Sealer::bytes_buffer(64 * events.len());
    serde_json::to_writer(&mut buf, events)
        .map_err(|e| corrupt(store, run_id, "events".into(), format!("cannot be serialized: {e}")))?;
    let body = sealer.seal_bytes(&Place::Events { run_id, seq, last_seq }, buf)?;
    Ok(Some(EventRow { seq, last_seq, body }))
}

/// The events of a run's rows (in seq order, as read) with seq after `after`, at most
/// `limit`, opened and checked: [`StoreError::Corrupt`] naming the run and the rows when
/// a row does not open or does not hold what it says.
pub(crate) fn unpack(
    sealer: &Sealer,
    run_id: &str,
    rows: Vec<EventRow>,
    after: u64,
    limit: usize,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut out: Vec<StoredEvent> = Vec::new();
    for row in rows {
        let place = Place::Events { run_id, seq: row.seq, last_seq: row.last_seq };
        let bad = |message: String| corrupt(sealer.store(), run_id, place.what(), message);
        let plain = sealer.open_bytes(&place, row.body)?;
        let events: Vec<StoredEvent> = serde_json::from_slice(plain.get(BLOB_HEADER..).unwrap_or_default())
            .map_err(|e| bad(format!("is not a list of events: {e}")))?;
        let (first, last) = (events.first().map(|e| e.seq), events.last().map(|e| e.seq));
        let fits = u64::try_from(row.seq).ok() == first && u64::try_from(row.last_seq).ok() == last;
        let increasing = events.windows(2).all(|w| w[0].seq < w[1].seq);
        let after_previous = out.last().is_none_or(|p| first.is_some_and(|f| f > p.seq));
        if !fits || !increasing || !after_previous {
            return Err(bad(format!("hold events {first:?} to {last:?} out of order or out of their row")));
        }
        for e in events.into_iter().filter(|e| e.seq > after) {
            if out.len() >= limit {
                return Ok(out);
            }
            out.push(e);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;
    use crate::StoreKey;

    fn event(seq: u64) -> StoredEvent {
        StoredEvent { seq, event: json!({"type": "op_end", "n": seq, "text": "é"}) }
    }

    #[test]
    fn events_round_trip_and_are_bound_to_their_row() {
        let s = Sealer::new(&StoreKey::from_bytes([3; 32]), "s").unwrap();
        let a = pack(&s, "r", &[event(1), event(2)]).unwrap().unwrap();
        let b = pack(&s, "r", &[event(3)]).unwrap().unwrap();
        assert_eq!((a.seq, a.last_seq, b.seq, b.last_seq), (1, 2, 3, 3));
        let all = unpack(&s, "r", vec![a.clone(), b.clone()], 0, 10).unwrap();
        assert_eq!(all, vec![event(1), event(2), event(3)]);
        assert_eq!(unpack(&s, "r", vec![a.clone(), b.clone()], 1, 1).unwrap(), vec![event(2)]);
        assert!(pack(&s, "r", &[]).unwrap().is_none());
        assert!(pack(&s, "r", &[event(2), event(2)]).is_err());
        assert!(pack(&s, "r", &[event(0)]).is_err());
        let err = unpack(&s, "q", vec![a.clone()], 0, 10).unwrap_err().to_string();
        assert!(err.contains("events 1 to 2") && err.contains("does not open"), "{err}");
        let moved = EventRow { seq: 3, last_seq: 3, body: a.body };
        assert!(unpack(&s, "r", vec![moved], 0, 10).is_err());
    }
}
