//! Where offloaded media bytes are kept: on disk beside the trace store, or in memory.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{MediaRef, is_sha256_hex};

/// Content-addressed blob storage: a blob's address is the SHA-256 of its bytes, so
/// storing the same bytes twice keeps one copy.
pub trait MediaStore: Send + Sync + 'static {
    /// A short description for messages (`local /path/to/media`, `memory`).
    fn describe(&self) -> String;

    /// Keep `bytes` (whose reference is `media`, see [`MediaRef::of`]). Idempotent:
    /// bytes already stored are not written again.
    fn put(&self, media: &MediaRef, bytes: &[u8]) -> io::Result<()>;

    /// The bytes stored under `sha256` (hex), if any.
    fn get(&self, sha256: &str) -> io::Result<Option<Vec<u8>>>;

    /// Whether bytes are stored under `sha256`.
    fn exists(&self, sha256: &str) -> bool;

    /// Where a reader finds the blob (`file:///...`), if it has such an address.
    fn uri(&self, _media: &MediaRef) -> Option<String> {
        None
    }
}

/// Media files under a folder: `<root>/<sha[0:2]>/<sha>.<ext>`, each written to a
/// private temporary file and renamed into place (files `0600`, folders `0700`).
#[derive(Debug, Clone)]
pub struct LocalMediaStore {
    root: PathBuf,
}

impl LocalMediaStore {
    /// The folder the CLI keeps media in, beside its trace store: `media`.
    pub const DIR_NAME: &str = "media";

    /// A store under `root` (created, private, at the first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The store beside the trace store file `trace_db`: `<its folder>/media`
    /// (`.operonx/media` for the default `.operonx/traces.db`).
    pub fn beside(trace_db: &Path) -> Self {
        let dir = trace_db.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        Self::new(dir.join(Self::DIR_NAME))
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of `media` (which may not exist).
    pub fn path_of(&self, media: &MediaRef) -> PathBuf {
        self.shard(&media.sha256).join(format!("{}.{}", media.sha256, media.extension()))
    }

    fn shard(&self, sha256: &str) -> PathBuf {
        self.root.join(sha256.get(..2).unwrap_or("00"))
    }

    /// The stored file of `sha256`, whatever its extension.
    pub fn find(&self, sha256: &str) -> Option<PathBuf> {
        if !is_sha256_hex(sha256) {
            return None;
        }
        let prefix = format!("{sha256}.");
        std::fs::read_dir(self.shard(sha256))
            .ok()?
            .filter_map(Result::ok)
            .find(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(&prefix)))
            .map(|e| e.path())
    }
}

impl MediaStore for LocalMediaStore {
    fn describe(&self) -> String {
        format!("local {}", self.root.display())
    }

    fn put(&self, media: &MediaRef, bytes: &[u8]) -> io::Result<()> {
        if !is_sha256_hex(&media.sha256) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a SHA-256"));
        }
        let path = self.path_of(media);
        if path.is_file() || self.find(&media.sha256).is_some() {
            return Ok(());
        }
        crate::private::create_dir_all(&self.shard(&media.sha256))?;
        crate::private::write_atomic(&path, bytes)
    }

    fn get(&self, sha256: &str) -> io::Result<Option<Vec<u8>>> {
        match self.find(sha256) {
            Some(path) => match std::fs::read(path) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
            None => Ok(None),
        }
    }

    fn exists(&self, sha256: &str) -> bool {
        self.find(sha256).is_some()
    }

    fn uri(&self, media: &MediaRef) -> Option<String> {
        let path = self.path_of(media);
        let path = if path.is_absolute() { path } else { std::env::current_dir().ok()?.join(path) };
        let mut uri = String::from("file://");
        for b in path.to_str()?.bytes() {
            if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
                uri.push(char::from(b));
            } else {
                uri.push_str(&format!("%{b:02X}"));
            }
        }
        Some(uri)
    }
}

/// Media kept in memory, at most `max_bytes` in all (the oldest blobs go first): for a
/// pipeline with no trace store, so exporters that upload media (Langfuse) still can.
#[derive(Debug)]
pub struct MemoryMediaStore {
    max_bytes: usize,
    inner: Mutex<Blobs>,
}

#[derive(Debug, Default)]
struct Blobs {
    by_sha: HashMap<String, Arc<[u8]>>,
    order: VecDeque<String>,
    bytes: usize,
}

impl MemoryMediaStore {
    /// The default bound: 64 MiB (the bytes are needed only until the exporters have
    /// sent the batch that refers to them).
    pub const DEFAULT_MAX_BYTES: usize = 64 << 20;

    /// A store keeping at most `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self { max_bytes, inner: Mutex::new(Blobs::default()) }
    }

    fn blobs(&self) -> MutexGuard<'_, Blobs> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryMediaStore {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_BYTES)
    }
}

impl MediaStore for MemoryMediaStore {
    fn describe(&self) -> String {
        "memory".to_string()
    }

    fn put(&self, media: &MediaRef, bytes: &[u8]) -> io::Result<()> {
        if bytes.len() > self.max_bytes {
            return Err(io::Error::other(format!("{} bytes exceed the in-memory media bound", bytes.len())));
        }
        let mut b = self.blobs();
        if b.by_sha.contains_key(&media.sha256) {
            return Ok(());
        }
        while b.bytes + bytes.len() > self.max_bytes {
            let Some(oldest) = b.order.pop_front() else { break };
            if let Some(gone) = b.by_sha.remove(&oldest) {
                b.bytes -= gone.len();
            }
        }
        b.bytes += bytes.len();
        b.order.push_back(media.sha256.clone());
        b.by_sha.insert(media.sha256.clone(), Arc::from(bytes));
        Ok(())
    }

    fn get(&self, sha256: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(self.blobs().by_sha.get(sha256).map(|b| b.to_vec()))
    }

    fn exists(&self, sha256: &str) -> bool {
        self.blobs().by_sha.contains_key(sha256)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn local_files_are_content_addressed_private_and_written_once() {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalMediaStore::beside(&tmp.path().join("traces.db"));
        assert_eq!(store.root(), tmp.path().join("media"));
        let bytes = b"\x89PNG\r\n\x1a\nrest of the image";
        let media = MediaRef::of(bytes, "image/png");
        assert!(!store.exists(&media.sha256));
        store.put(&media, bytes).unwrap();
        let path = store.path_of(&media);
        assert_eq!(path, tmp.path().join("media").join(&media.sha256[..2]).join(format!("{}.png", media.sha256)));
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        // The same bytes declared otherwise: still the one file.
        let again = MediaRef { mime: "application/octet-stream".into(), ..media.clone() };
        store.put(&again, bytes).unwrap();
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
        assert_eq!(store.get(&media.sha256).unwrap().as_deref(), Some(bytes.as_slice()));
        assert_eq!(store.get(&"0".repeat(64)).unwrap(), None);
        assert_eq!(store.get("../../etc/passwd").unwrap(), None);
        assert!(store.uri(&media).unwrap().starts_with("file:///"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
            assert_eq!(mode(store.root()), 0o700);
        }
    }

    #[test]
    fn memory_keeps_the_newest_blobs_within_its_bound() {
        let store = MemoryMediaStore::new(10);
        let (a, b) = (b"aaaaaa".as_slice(), b"bbbbbb".as_slice());
        let (ra, rb) = (MediaRef::of(a, ""), MediaRef::of(b, ""));
        store.put(&ra, a).unwrap();
        store.put(&ra, a).unwrap();
        assert!(store.exists(&ra.sha256));
        store.put(&rb, b).unwrap();
        assert!(!store.exists(&ra.sha256), "the oldest went");
        assert_eq!(store.get(&rb.sha256).unwrap().as_deref(), Some(b));
        assert!(store.put(&MediaRef::of(&[0; 11], ""), &[0; 11]).is_err());
        assert_eq!(store.describe(), "memory");
    }
}
