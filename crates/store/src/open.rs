//! Opening the run store a user names: a `postgres://` URL or a SQLite file path.

use std::sync::Arc;

use crate::{RunStore, SqliteRunStore, StoreError};

/// The embedded store's path under the working directory.
pub const DEFAULT_RUN_STORE: &str = ".operonx/runs.db";

/// What replaces a password in a redacted URL.
const HIDDEN: &str = "***";

/// Open the store `spec` names: `None` is the SQLite file [`DEFAULT_RUN_STORE`] under
/// the working directory, a `postgres://` or `postgresql://` URL a Postgres database (the
/// `postgres` feature), anything else the path of a SQLite file (created when missing).
/// The store key is `OPERONX_STORE_KEY`, else the store's key file (see the crate docs,
/// "Secrets").
pub fn open(spec: Option<&str>) -> Result<Arc<dyn RunStore>, StoreError> {
    let Some(spec) = spec else {
        let path = std::env::current_dir().unwrap_or_default().join(DEFAULT_RUN_STORE);
        return Ok(Arc::new(SqliteRunStore::open(path)?));
    };
    if is_postgres_url(spec) {
        return open_postgres(spec);
    }
    Ok(Arc::new(SqliteRunStore::open(spec)?))
}

fn is_postgres_url(spec: &str) -> bool {
    let lower = spec.get(..13).unwrap_or(spec).to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

#[cfg(feature = "postgres")]
fn open_postgres(url: &str) -> Result<Arc<dyn RunStore>, StoreError> {
    Ok(Arc::new(crate::PostgresStore::connect(url)?))
}

#[cfg(not(feature = "postgres"))]
fn open_postgres(url: &str) -> Result<Arc<dyn RunStore>, StoreError> {
    Err(StoreError::Open {
        store: redact_url(url),
        message: "this build has no Postgres support (build operonx-store with the `postgres` feature)".into(),
    })
}

/// `url` without its password: the password of the user part (`postgres://user:secret@host/db`
/// becomes `postgres://user:***@host/db`) and the values of `password=` parameters (query
/// parameters or `key=value` connection strings) are replaced by `***`. Other text is
/// returned unchanged.
pub fn redact_url(url: &str) -> String {
    redact_password_params(&redact_user_info(url))
}

/// Hide the password between `scheme://user:` and the `@` that ends the user part (the
/// first `@`, as the Postgres client reads it).
fn redact_user_info(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return url.to_string() };
    let rest = &url[scheme_end..];
    let Some(at) = rest.find('@') else { return url.to_string() };
    let user_info = &rest[..at];
    let Some(colon) = user_info.find(':') else { return url.to_string() };
    if user_info[..colon].contains(['/', '?', '#']) {
        // The `@` is past the host: there is no user part.
        return url.to_string();
    }
    let password_start = scheme_end + colon + 1;
    format!("{}{HIDDEN}{}", &url[..password_start], &url[scheme_end + at..])
}

/// Hide the values of `password=` parameters (after `?`, `&`, white space or the start).
fn redact_password_params(text: &str) -> String {
    const KEY: &str = "password=";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut at_start = true;
    while let Some(found) = find_ascii_case_insensitive(rest, KEY) {
        let before = rest[..found].chars().next_back();
        let is_param = match before {
            None => at_start,
            Some(c) => matches!(c, '?' | '&' | ';') || c.is_whitespace(),
        };
        let value_start = found + KEY.len();
        out.push_str(&rest[..value_start]);
        rest = &rest[value_start..];
        at_start = false;
        if !is_param {
            continue;
        }
        let value_len = if let Some(quoted) = rest.strip_prefix('\'') {
            // A quoted value of a key=value string: up to the closing quote (`\'` escapes one).
            let mut end = quoted.len();
            let mut escaped = false;
            for (i, c) in quoted.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '\'' if !escaped => {
                        end = i + 1;
                        break;
                    }
                    _ => escaped = false,
                }
            }
            1 + end
        } else {
            rest.find(|c: char| c == '&' || c == '#' || c.is_whitespace()).unwrap_or(rest.len())
        };
        if value_len > 0 {
            out.push_str(HIDDEN);
        }
        rest = &rest[value_len..];
    }
    out.push_str(rest);
    out
}

fn find_ascii_case_insensitive(haystack: &str, needle: &str) -> Option<usize> {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    (0..=h.len().checked_sub(n.len())?).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn passwords_are_hidden_and_other_text_kept() {
        let cases = [
            ("postgres://user:secret@host/db", "postgres://user:***@host/db"),
            ("postgresql://u:p%40ss@host:5432/db?sslmode=disable", "postgresql://u:***@host:5432/db?sslmode=disable"),
            ("postgres://user@host/db", "postgres://user@host/db"),
            ("postgres://host:5432/db", "postgres://host:5432/db"),
            ("postgres://u:pa/ss@host/db", "postgres://u:***@host/db"),
            ("postgres://host/db?user=me&password=secret&x=1", "postgres://host/db?user=me&password=***&x=1"),
            ("postgres://host/db?PASSWORD=secret", "postgres://host/db?PASSWORD=***"),
            ("postgres://u:a@host/db?password=b", "postgres://u:***@host/db?password=***"),
            (r"host=h user=u password='it\'s me' dbname=d", "host=h user=u password=*** dbname=d"),
            ("host=h password=secret dbname=d", "host=h password=*** dbname=d"),
            ("password=x", "password=***"),
            ("postgres://host/db?mypassword=keep", "postgres://host/db?mypassword=keep"),
            ("postgres://host/db?password=", "postgres://host/db?password="),
            (".operonx/runs.db", ".operonx/runs.db"),
            ("/tmp/a:b@c/runs.db", "/tmp/a:b@c/runs.db"),
            ("postgres://h/d?x=é&password=ü", "postgres://h/d?x=é&password=***"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn postgres_urls_are_told_from_paths() {
        assert!(is_postgres_url("postgres://h/d"));
        assert!(is_postgres_url("PostgreSQL://h/d"));
        assert!(!is_postgres_url("postgres.db"));
        assert!(!is_postgres_url("./postgres://x"));
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn an_unreachable_server_is_named_without_its_password() {
        let err = open(Some("postgres://me:secret@127.0.0.1:1/db?connect_timeout=5")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("postgres://me:***@127.0.0.1:1/db") && !text.contains("secret"), "{text}");
    }

    #[cfg(not(feature = "postgres"))]
    #[test]
    fn postgres_urls_need_the_feature() {
        let err = open(Some("postgres://me:secret@host/db")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`postgres` feature") && text.contains("me:***@host") && !text.contains("secret"),
            "{text}"
        );
    }

    #[test]
    fn a_path_opens_a_sqlite_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/runs.db");
        let store = open(Some(path.to_str().unwrap())).unwrap();
        assert_eq!(store.location(), path.display().to_string());
        assert!(path.is_file());
    }
}
