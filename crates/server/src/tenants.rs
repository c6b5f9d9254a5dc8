//! Tenants and their bearer tokens (`--tokens FILE`): a YAML mapping of tenant name to
//! token, one line each:
//!
//! ```yaml
//! acme: 3c9f0d2e8b1a4f6d9e7c5b3a1f0e2d4c
//! globex: 9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d
//! ```
//!
//! A request names its tenant with `Authorization: Bearer TOKEN`; a tenant sees and
//! controls only its own runs. Tokens are compared in constant time and never printed.

use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

use crate::ServerError;
use crate::problem::Problem;

/// Shortest token accepted (a short token can be guessed).
const MIN_TOKEN: usize = 16;

/// The tenants a server knows.
#[derive(Clone)]
pub struct Tenants {
    entries: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for Tenants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.entries.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Tenants").field("names", &names).finish()
    }
}

impl Tenants {
    /// Read the tokens file at `path`.
    pub fn load(path: &Path) -> Result<Self, ServerError> {
        let bad = |message: String| ServerError::Tokens { path: path.to_path_buf(), message };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        Self::parse(&text).map_err(bad)
    }

    /// Tenants from the text of a tokens file.
    pub fn parse(text: &str) -> Result<Self, String> {
        // The parser's messages quote the text, which holds tokens: say where, not what.
        let docs = YamlLoader::load_from_str(text).map_err(|e| {
            format!("not a YAML mapping of tenant: token (line {}, column {})", e.marker().line(), e.marker().col())
        })?;
        let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
        let Some(Yaml::Hash(map)) = docs.first() else {
            return Err("expected a mapping of tenant name to token, one per line (`acme: TOKEN`)".into());
        };
        for (name, token) in map {
            let name = match name {
                Yaml::String(s) => s.clone(),
                Yaml::Integer(i) => i.to_string(),
                _ => return Err("a tenant name must be a plain name".into()),
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
                return Err(format!("tenant {name:?}: a name is letters, digits, '-', '_' and '.'"));
            }
            let Yaml::String(token) = token else {
                return Err(format!("tenant {name}: the token must be a string"));
            };
            if token.len() < MIN_TOKEN || token.chars().any(char::is_whitespace) {
                return Err(format!("tenant {name}: a token is at least {MIN_TOKEN} characters, without spaces"));
            }
            if entries.iter().any(|(_, t)| equal(t, token.as_bytes())) {
                return Err(format!("tenant {name}: its token is another tenant's too"));
            }
            entries.push((name, token.as_bytes().to_vec()));
        }
        if entries.is_empty() {
            return Err("no tenants".into());
        }
        Ok(Tenants { entries })
    }

    /// The tenant whose token the `Authorization` header value carries.
    pub fn authenticate(&self, header: Option<&str>) -> Result<String, Problem> {
        let Some(value) = header else {
            return Err(Problem::unauthorized("this server needs a token: send `Authorization: Bearer TOKEN`"));
        };
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| Problem::unauthorized("the Authorization header must be `Bearer TOKEN`"))?
            .trim();
        // Every entry is compared, whichever matches, so the time taken tells nothing.
        let mut found = None;
        for (name, known) in &self.entries {
            if equal(known, token.as_bytes()) {
                found = Some(name);
            }
        }
        found.cloned().ok_or_else(|| Problem::unauthorized("unknown token"))
    }
}

/// Constant-time equality (for equal lengths; lengths are not secret).
fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tokens_name_their_tenant_and_nothing_else_passes() {
        let t = Tenants::parse("acme: aaaaaaaaaaaaaaaaaaaa\nglobex: bbbbbbbbbbbbbbbbbbbb\n").unwrap();
        assert_eq!(t.authenticate(Some("Bearer bbbbbbbbbbbbbbbbbbbb")).unwrap(), "globex");
        assert_eq!(t.authenticate(Some("Bearer aaaaaaaaaaaaaaaaaaaa")).unwrap(), "acme");
        for bad in [None, Some("Bearer aaaa"), Some("aaaaaaaaaaaaaaaaaaaa"), Some("Bearer "), Some("Basic x")] {
            assert_eq!(t.authenticate(bad).unwrap_err().status, 401, "{bad:?}");
        }
    }

    #[test]
    fn a_bad_tokens_file_is_refused_without_quoting_a_token() {
        for (text, says) in [
            ("", "mapping"),
            ("- a\n- b", "mapping"),
            ("acme: short", "at least"),
            ("acme: aaaaaaaaaaaaaaaaaaaa\nb: aaaaaaaaaaaaaaaaaaaa", "another tenant"),
            ("'a b': aaaaaaaaaaaaaaaaaaaa", "letters"),
            ("acme: [aaaaaaaaaaaaaaaaaaaa", "line"),
        ] {
            let e = Tenants::parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
            assert!(!e.contains("aaaaaaaaaaaaaaaaaaaa"), "{e}");
        }
    }
}
