//! The store key: a 32-byte secret that seals the stored user data (see [`crate::seal`]),
//! and where a process finds it: `OPERONX_STORE_KEY` in the environment, else a key
//! file (beside a SQLite store, in the user's configuration folder for Postgres),
//! created with a fresh random key on first use.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The environment variable that holds the store key (64 hex digits); when set, it wins
/// over any key file.
pub const STORE_KEY_ENV: &str = "OPERONX_STORE_KEY";

/// Length of a key in bytes.
pub(crate) const KEY_LEN: usize = 32;

/// What is hashed, before the key, to name it (a key id is never the key, nor a hash an
/// unrelated use of the key could produce).
const KEY_ID_DOMAIN: &[u8] = b"operonx run store key id\0";

/// How often creating a key file gives way to another process creating it at once.
const CREATE_ATTEMPTS: usize = 3;

/// Why the store key could not be had. No variant holds or shows the key, or the value
/// of [`STORE_KEY_ENV`].
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// [`STORE_KEY_ENV`] is set to something that is not a key.
    #[error(
        "{STORE_KEY_ENV} must be 64 hex digits (a 32-byte key, as a store's key file holds it); the value set {reason}"
    )]
    Env {
        /// What is wrong with the value (never the value itself).
        reason: String,
    },
    /// A key file holds something that is not a key.
    #[error(
        "key file {path} does not hold a key (64 hex digits): it {reason}; restore the file, or set {STORE_KEY_ENV} \
         to the key"
    )]
    File {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it (never its content).
        reason: String,
    },
    /// A key file could not be read or created.
    #[error("cannot {doing} key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// What was being done ("read", "create", ...).
        doing: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Neither [`STORE_KEY_ENV`] nor a place for the key file (no `HOME`).
    #[error("no store key: set {STORE_KEY_ENV} (64 hex digits), or HOME or XDG_CONFIG_HOME for a key file")]
    NoPlace,
    /// The operating system gave no random bytes (for a key or a nonce).
    #[error("cannot draw random bytes from the operating system: {source}")]
    Random {
        /// The error.
        #[source]
        source: getrandom::Error,
    },
}

/// A store key: 32 secret bytes. Shown (`Debug`) by its id only.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreKey {
    bytes: [u8; KEY_LEN],
}

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreKey({})", self.id())
    }
}

impl StoreKey {
    /// The key made of `bytes`.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self { bytes }
    }

    /// A fresh random key (from the operating system's generator).
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = [0; KEY_LEN];
        getrandom::fill(&mut bytes).map_err(|source| KeyError::Random { source })?;
        Ok(Self { bytes })
    }

    /// The key's bytes.
    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// The key as 64 lowercase hex digits, as a key file holds it and [`STORE_KEY_ENV`]
    /// takes it (to give the key to another host). A secret: never log it.
    pub fn to_hex(&self) -> String {
        self.bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The key's id: the first 16 hex digits of a hash of the key. Stored in the store,
    /// shown in messages; it does not reveal the key.
    pub fn id(&self) -> String {
        let mut input = KEY_ID_DOMAIN.to_vec();
        input.extend_from_slice(&self.bytes);
        let hash = operonx_graph::digest::hash128(&input);
        format!("{:016x}", hash >> 64)
    }

    /// The key [`STORE_KEY_ENV`] holds when set to `value` (64 hex digits, white space
    /// around them ignored). The error says what is wrong without showing the value.
    pub fn from_env_value(value: &OsStr) -> Result<Self, KeyError> {
        let text = value.to_str().ok_or_else(|| KeyError::Env { reason: "is not valid UTF-8".into() })?;
        parse_hex(text).map(Self::from_bytes).map_err(|reason| KeyError::Env { reason })
    }

    /// The key a process uses: [`STORE_KEY_ENV`]'s `env_value` when set, else the key in
    /// `key_file`, created with a fresh key when missing ([`KeyError::NoPlace`] when
    /// there is no key file either).
    pub fn resolve(env_value: Option<&OsStr>, key_file: Option<&Path>) -> Result<Self, KeyError> {
        if let Some(value) = env_value {
            return Self::from_env_value(value);
        }
        Self::load_or_create(key_file.ok_or(KeyError::NoPlace)?)
    }

    /// [`StoreKey::resolve`] with this process's [`STORE_KEY_ENV`].
    pub fn from_environment(key_file: Option<&Path>) -> Result<Self, KeyError> {
        Self::resolve(std::env::var_os(STORE_KEY_ENV).as_deref(), key_file)
    }

    /// The key in the file at `path`; when there is none, a fresh key written there
    /// first, in a private file (0600, its folders 0700 when created). Safe while other
    /// processes do the same: the file appears whole, once, and all of them use the key
    /// it holds.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let io = |doing: &'static str| move |source| KeyError::Io { path: path.to_path_buf(), doing, source };
        for _ in 0..CREATE_ATTEMPTS {
            match std::fs::read(path) {
                Ok(bytes) => return read_key_file(path, &bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("read")(e)),
            }
            if let Some(key) = create_key_file(path)? {
                return Ok(key);
            }
        }
        Err(io("create")(std::io::Error::other("it keeps appearing and vanishing")))
    }
}

/// The key file of the SQLite store at `db`: beside it, its name with `.key` added
/// (`.operonx/runs.db.key`).
pub fn sqlite_key_file(db: &Path) -> PathBuf {
    let mut name = db.file_name().map(OsStr::to_os_string).unwrap_or_default();
    name.push(".key");
    db.with_file_name(name)
}

/// The key file of stores that have no folder of their own (Postgres):
/// `$XDG_CONFIG_HOME/operonx/store.key`, else `$HOME/.config/operonx/store.key` (a
/// relative or empty `XDG_CONFIG_HOME` is ignored, as the XDG specification says); `None`
/// without either.
pub fn user_key_file(xdg_config_home: Option<&OsStr>, home: Option<&OsStr>) -> Option<PathBuf> {
    let config = match xdg_config_home.map(PathBuf::from).filter(|p| p.is_absolute()) {
        Some(dir) => dir,
        None => PathBuf::from(home.filter(|h| !h.is_empty())?).join(".config"),
    };
    Some(config.join("operonx").join("store.key"))
}

/// [`user_key_file`] of this process's environment.
#[cfg(feature = "postgres")]
pub(crate) fn default_user_key_file() -> Option<PathBuf> {
    user_key_file(std::env::var_os("XDG_CONFIG_HOME").as_deref(), std::env::var_os("HOME").as_deref())
}

/// 32 bytes from 64 hex digits (white space around them ignored), or what is wrong
/// (never the text).
fn parse_hex(text: &str) -> Result<[u8; KEY_LEN], String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("is empty".into());
    }
    let count = text.chars().count();
    if count != 2 * KEY_LEN {
        return Err(format!("has {count} characters, not {}", 2 * KEY_LEN));
    }
    if !text.is_ascii() {
        return Err("holds a character that is not a hex digit".into());
    }
    let digits = text.as_bytes();
    let nibble = |c: u8| (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let mut out = [0; KEY_LEN];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        match (nibble(pair[0]), nibble(pair[1])) {
            (Some(hi), Some(lo)) => *byte = (hi << 4) | lo,
            _ => return Err("holds a character that is not a hex digit".into()),
        }
    }
    Ok(out)
}

/// The key a key file's `bytes` hold.
fn read_key_file(path: &Path, bytes: &[u8]) -> Result<StoreKey, KeyError> {
    let file_err = |reason: String| KeyError::File { path: path.to_path_buf(), reason };
    let text = std::str::from_utf8(bytes).map_err(|_| file_err("is not text".into()))?;
    let key = parse_hex(text).map(StoreKey::from_bytes).map_err(file_err)?;
    warn_unless_private(path);
    Ok(key)
}

/// Warn when others may read the key file (unix).
fn warn_unless_private(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!("key file {} may be read by others (mode {mode:o}): make it 0600", path.display());
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = path;
    }
}

/// Write a fresh key to `path` unless a file is there: the key is written and synced to
/// a private temporary file, then linked to `path`, which fails when another process was
/// first. `None` when it was (read its key then).
fn create_key_file(path: &Path) -> Result<Option<StoreKey>, KeyError> {
    let io = |doing: &'static str| move |source| KeyError::Io { path: path.to_path_buf(), doing, source };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    operonx_trace::private::create_dir_all(dir).map_err(io("create the folder of"))?;
    let key = StoreKey::generate()?;
    let mut tag = [0u8; 8];
    getrandom::fill(&mut tag).map_err(|source| KeyError::Random { source })?;
    let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{tag}.tmp"));
    let written = operonx_trace::private::write(&tmp, format!("{}\n", key.to_hex()).as_bytes())
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("write")(e));
    }
    let linked = match std::fs::hard_link(&tmp, path) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            if path.exists() {
                Err(std::io::ErrorKind::AlreadyExists.into())
            } else {
                // No hard links here (some file systems): a rename, which a process
                // racing this one may undo; the store's key id check then tells the loser.
                std::fs::rename(&tmp, path)
            }
        }
        other => other,
    };
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(dir);
            tracing::info!("created store key {} in {}", key.id(), path.display());
            Ok(Some(key))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(io("create")(e)),
    }
}

/// Make a new name in `dir` durable (unix; best effort).
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!("cannot sync folder {}: {e}", dir.display());
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hex_round_trips_and_bad_values_are_described_not_shown() {
        let key = StoreKey::generate().unwrap();
        let hex = key.to_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(StoreKey::from_env_value(OsStr::new(&hex)).unwrap(), key);
        assert_eq!(StoreKey::from_env_value(OsStr::new(&format!(" {}\n", hex.to_uppercase()))).unwrap(), key);
        let secret = format!("{}zz", &hex[..62]);
        for (value, reason) in [
            ("", "is empty"),
            ("hunter2", "has 7 characters, not 64"),
            (secret.as_str(), "not a hex digit"),
            (&"é".repeat(32), "has 32 characters"),
        ] {
            let err = StoreKey::from_env_value(OsStr::new(value)).unwrap_err().to_string();
            assert!(err.contains(STORE_KEY_ENV) && err.contains("64 hex digits") && err.contains(reason), "{err}");
            assert!(value.is_empty() || !err.contains(value), "{err}");
        }
    }

    #[test]
    fn ids_are_short_stable_and_not_the_key() {
        let key = StoreKey::from_bytes([7; KEY_LEN]);
        assert_eq!(key.id().len(), 16);
        assert_eq!(key.id(), StoreKey::from_bytes([7; KEY_LEN]).id());
        assert_ne!(key.id(), StoreKey::from_bytes([8; KEY_LEN]).id());
        assert!(!key.to_hex().contains(&key.id()));
        assert_eq!(format!("{key:?}"), format!("StoreKey({})", key.id()));
    }

    #[test]
    fn key_file_places() {
        assert_eq!(sqlite_key_file(Path::new(".operonx/runs.db")), Path::new(".operonx/runs.db.key"));
        assert_eq!(sqlite_key_file(Path::new("/a/b.sqlite")), Path::new("/a/b.sqlite.key"));
        let (xdg, home) = (OsStr::new("/x/config"), OsStr::new("/home/me"));
        assert_eq!(user_key_file(Some(xdg), Some(home)).unwrap(), Path::new("/x/config/operonx/store.key"));
        assert_eq!(user_key_file(None, Some(home)).unwrap(), Path::new("/home/me/.config/operonx/store.key"));
        let relative = OsStr::new("rel/config");
        assert_eq!(user_key_file(Some(relative), Some(home)).unwrap(), Path::new("/home/me/.config/operonx/store.key"));
        assert_eq!(user_key_file(Some(OsStr::new("")), None), None);
        assert_eq!(user_key_file(None, None), None);
        assert!(matches!(StoreKey::resolve(None, None), Err(KeyError::NoPlace)));
    }

    #[test]
    fn a_key_file_is_created_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/store.key");
        let first = StoreKey::resolve(None, Some(&path)).unwrap();
        let second = StoreKey::load_or_create(&path).unwrap();
        assert_eq!(first, second);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{}\n", first.to_hex()));
        let names: Vec<_> =
            std::fs::read_dir(dir.path().join("new")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["store.key"], "no temporary file is left");
        let env = StoreKey::generate().unwrap();
        assert_eq!(StoreKey::resolve(Some(OsStr::new(&env.to_hex())), Some(&path)).unwrap(), env, "the variable wins");

        std::fs::write(&path, "not a key").unwrap();
        let err = StoreKey::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()) && err.contains("has 9 characters"), "{err}");
        assert!(!err.contains("not a key"), "{err}");
    }

    #[test]
    fn processes_creating_one_key_file_at_once_agree() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.key");
        let barrier = std::sync::Barrier::new(8);
        let keys: Vec<StoreKey> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        StoreKey::load_or_create(&path).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|k| *k == keys[0]));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
