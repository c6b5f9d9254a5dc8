//! Sealing stored values: every column that holds user data is stored encrypted and
//! authenticated with the store key (XChaCha20-Poly1305, a random 24-byte nonce per
//! value), as the text `x1:` + base64(nonce ‖ ciphertext ‖ tag), so the columns stay
//! text in every backend.
//!
//! The associated data binds each value to where it is stored: the run id and the
//! column, and for a journal body the entry's seq, kind, key and index. A value copied
//! to another run, column or entry, or altered in any way, fails to open:
//! [`StoreError::Corrupt`] naming the store, the run and the column.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

use crate::StoreError;
use crate::key::{KeyError, StoreKey};

/// What a sealed value starts with (the format's version).
pub(crate) const SEALED_PREFIX: &str = "x1:";

/// Bytes of a nonce.
const NONCE_LEN: usize = 24;

/// Bytes of an authentication tag.
const TAG_LEN: usize = 16;

/// What the associated data starts with (the format, so no other use of the key's
/// ciphertexts opens as a stored value).
const AAD_DOMAIN: &[u8] = b"operonx run store x1";

/// Where a value is stored: what its associated data binds it to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Place<'a> {
    /// A column of a run's row.
    Run {
        /// The run.
        run_id: &'a str,
        /// The column.
        column: &'a str,
    },
    /// The body of a journal entry.
    Entry {
        /// The run.
        run_id: &'a str,
        /// The entry's seq.
        seq: i64,
        /// Its stored kind.
        kind: &'a str,
        /// Its key.
        key: &'a str,
        /// Its index, as stored.
        idx: Option<i64>,
    },
}

impl Place<'_> {
    fn run_id(&self) -> &str {
        match self {
            Place::Run { run_id, .. } | Place::Entry { run_id, .. } => run_id,
        }
    }

    /// The column, as messages name it.
    fn what(&self) -> String {
        match self {
            Place::Run { column, .. } => (*column).to_string(),
            Place::Entry { seq, .. } => format!("body of journal entry {seq}"),
        }
    }

    /// The associated data: the domain, then each field with its length (no two places
    /// give the same bytes).
    fn aad(&self) -> Vec<u8> {
        let mut out = AAD_DOMAIN.to_vec();
        let mut field = |bytes: &[u8]| {
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(bytes);
        };
        match self {
            Place::Run { run_id, column } => {
                field(b"run");
                field(run_id.as_bytes());
                field(column.as_bytes());
            }
            Place::Entry { run_id, seq, kind, key, idx } => {
                field(b"journal");
                field(run_id.as_bytes());
                field(&seq.to_le_bytes());
                field(kind.as_bytes());
                field(key.as_bytes());
                match idx {
                    Some(i) => field(&i.to_le_bytes()),
                    None => field(b""),
                }
            }
        }
        out
    }
}

/// Seals and opens a store's values with its key.
pub(crate) struct Sealer {
    cipher: XChaCha20Poly1305,
    key_id: String,
    store: String,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("key_id", &self.key_id).field("store", &self.store).finish()
    }
}

impl Sealer {
    /// A sealer with `key` for the store at `store` (named in errors).
    pub(crate) fn new(key: &StoreKey, store: &str) -> Self {
        let cipher = XChaCha20Poly1305::new(&Key::from(*key.bytes()));
        Self { cipher, key_id: key.id(), store: store.to_string() }
    }

    /// Where the store is.
    pub(crate) fn store(&self) -> &str {
        &self.store
    }

    /// The key's id.
    pub(crate) fn key_id(&self) -> &str {
        &self.key_id
    }

    fn corrupt(&self, place: &Place<'_>, message: &str) -> StoreError {
        StoreError::Corrupt {
            store: self.store.clone(),
            run_id: place.run_id().to_string(),
            what: place.what(),
            message: message.to_string(),
        }
    }

    /// `plain` sealed for `place`.
    pub(crate) fn seal(&self, place: &Place<'_>, plain: &str) -> Result<String, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)
            .map_err(|source| StoreError::Key { store: self.store.clone(), source: KeyError::Random { source } })?;
        let aad = place.aad();
        let sealed = self
            .cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: plain.as_bytes(), aad: &aad })
            .map_err(|_| self.corrupt(place, "cannot be encrypted (too long)"))?;
        let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        Ok(format!("{SEALED_PREFIX}{}", STANDARD.encode(&bytes)))
    }

    /// `plain` sealed for `place`, `None` kept.
    pub(crate) fn seal_opt(&self, place: &Place<'_>, plain: Option<&str>) -> Result<Option<String>, StoreError> {
        plain.map(|p| self.seal(place, p)).transpose()
    }

    /// The value `stored` holds, sealed for `place`: [`StoreError::Corrupt`] when it is not
    /// a sealed value, or does not open with this key for this place.
    pub(crate) fn open(&self, place: &Place<'_>, stored: &str) -> Result<String, StoreError> {
        let encoded = stored
            .strip_prefix(SEALED_PREFIX)
            .ok_or_else(|| self.corrupt(place, "is not sealed: stored in clear, or by another program"))?;
        let bytes = STANDARD.decode(encoded).map_err(|e| self.corrupt(place, &format!("is not valid base64: {e}")))?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(self.corrupt(place, "is too short to be a sealed value"));
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] =
            nonce.try_into().map_err(|_| self.corrupt(place, "is too short to be a sealed value"))?;
        let aad = place.aad();
        let plain = self.cipher.decrypt(&XNonce::from(nonce), Payload { msg: sealed, aad: &aad }).map_err(|_| {
            self.corrupt(
                place,
                &format!(
                    "does not open with this store's key ({}): it was altered, or copied from another run, column \
                     or store",
                    self.key_id
                ),
            )
        })?;
        String::from_utf8(plain).map_err(|e| self.corrupt(place, &format!("is not UTF-8 text: {e}")))
    }

    /// [`Sealer::open`], `None` kept.
    pub(crate) fn open_opt(&self, place: &Place<'_>, stored: Option<&str>) -> Result<Option<String>, StoreError> {
        stored.map(|s| self.open(place, s)).transpose()
    }
}

/// Whether `stored` is a sealed value (a value of an older store, stored in clear, is
/// not: it is sealed when the store is first opened with a key).
pub(crate) fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sealer() -> Sealer {
        Sealer::new(&StoreKey::from_bytes([42; 32]), "test.db")
    }

    fn run<'a>(run_id: &'a str, column: &'a str) -> Place<'a> {
        Place::Run { run_id, column }
    }

    #[test]
    fn values_open_only_where_they_were_sealed() {
        let s = sealer();
        let plain = r#"{"password": "hunter2", "z": 1,  "a": [1, 2]}"#;
        let sealed = s.seal(&run("r1", "inputs"), plain).unwrap();
        assert!(sealed.starts_with("x1:") && !sealed.contains("hunter2"), "{sealed}");
        assert_eq!(s.open(&run("r1", "inputs"), &sealed).unwrap(), plain);
        assert_ne!(s.seal(&run("r1", "inputs"), plain).unwrap(), sealed, "a fresh nonce each time");
        for (other, what) in [(run("r2", "inputs"), "inputs"), (run("r1", "scratch"), "scratch")] {
            let err = s.open(&other, &sealed).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, StoreError::Corrupt { .. }), "{text}");
            assert!(text.contains("test.db") && text.contains(what) && text.contains("does not open"), "{text}");
        }
        let other_key = Sealer::new(&StoreKey::from_bytes([43; 32]), "test.db");
        assert!(other_key.open(&run("r1", "inputs"), &sealed).is_err());

        let entry = |seq, idx| Place::Entry { run_id: "r1", seq, kind: "item", key: "main.gen@[]", idx };
        let body = s.seal(&entry(3, Some(0)), "{}").unwrap();
        assert_eq!(s.open(&entry(3, Some(0)), &body).unwrap(), "{}");
        let err = s.open(&entry(4, Some(0)), &body).unwrap_err().to_string();
        assert!(err.contains("run r1") && err.contains("body of journal entry 4"), "{err}");
        assert!(s.open(&entry(3, Some(1)), &body).is_err());
        assert!(s.open(&entry(3, None), &body).is_err());
    }

    #[test]
    fn altered_or_unsealed_values_are_corrupt() {
        let s = sealer();
        let sealed = s.seal(&run("r", "result"), "\"secret\"").unwrap();
        let mut bytes = STANDARD.decode(&sealed[3..]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let altered = format!("x1:{}", STANDARD.encode(&bytes));
        for (stored, says) in [
            (altered.as_str(), "does not open"),
            ("\"secret\"", "not sealed"),
            ("x1:!!", "not valid base64"),
            ("x1:AAAA", "too short"),
        ] {
            let err = s.open(&run("r", "result"), stored).unwrap_err().to_string();
            assert!(err.contains("run r") && err.contains("corrupt result") && err.contains(says), "{err}");
        }
        assert!(is_sealed(&sealed) && !is_sealed("{}"));
    }

    /// The cost of sealing and opening a 200-byte value (run with `--nocapture`).
    #[test]
    fn sealing_a_small_value_is_cheap() {
        let s = sealer();
        let value = "v".repeat(200);
        let place = run("0123456789abcdef0123456789abcdef", "inputs");
        let rounds = 2_000u32;
        let start = std::time::Instant::now();
        let mut sealed = String::new();
        for _ in 0..rounds {
            sealed = s.seal(&place, &value).unwrap();
        }
        let seal_each = start.elapsed() / rounds;
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            assert_eq!(s.open(&place, &sealed).unwrap().len(), 200);
        }
        let open_each = start.elapsed() / rounds;
        eprintln!(
            "sealing a 200-byte value: {seal_each:?} (stored as {} bytes); opening it: {open_each:?}",
            sealed.len()
        );
        // About 3 µs each way in a release build, 150 µs in a debug one: a loose bound.
        assert!(seal_each < std::time::Duration::from_millis(10), "{seal_each:?}");
    }
}
