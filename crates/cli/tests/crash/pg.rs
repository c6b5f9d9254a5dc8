//! A Postgres run store in a schema of its own, for one test.

use std::hash::{BuildHasher, Hasher};

/// A fresh schema on the test server, dropped when this is dropped.
pub struct Schema {
    admin: String,
    name: String,
    /// The store URL: the server with the schema first on the search path.
    pub url: String,
}

/// The test server: `OPERONX_TEST_POSTGRES_URL`, else the local one.
fn server_url() -> String {
    std::env::var("OPERONX_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A random number (the standard library's randomly seeded hasher).
fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish()
}

/// A fresh schema, or `None` (said loudly) when no server answers and
/// `OPERONX_REQUIRE_POSTGRES` is not `1`.
pub fn fresh() -> Option<Schema> {
    let admin = server_url();
    let shown = operonx_store::redact_url(&admin);
    let mut client = match postgres::Client::connect(&admin, postgres::NoTls) {
        Ok(c) => c,
        Err(e) => {
            if std::env::var("OPERONX_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                panic!("OPERONX_REQUIRE_POSTGRES=1 but no Postgres answers at {shown}: {e}");
            }
            eprintln!(
                "SKIPPED: the Postgres crash loop: no Postgres at {shown} ({e}); set OPERONX_TEST_POSTGRES_URL to \
                 test one (OPERONX_REQUIRE_POSTGRES=1 makes this a failure)"
            );
            return None;
        }
    };
    let name = format!("operonx_crash_{:016x}", random());
    client.batch_execute(&format!("CREATE SCHEMA {name}")).expect("create the test schema");
    let sep = if admin.contains('?') { '&' } else { '?' };
    let url = format!("{admin}{sep}options=-csearch_path%3D{name}");
    Some(Schema { admin, name, url })
}

impl Drop for Schema {
    fn drop(&mut self) {
        match postgres::Client::connect(&self.admin, postgres::NoTls) {
            Ok(mut client) => {
                if let Err(e) = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name)) {
                    eprintln!("cannot drop the test schema {}: {e}", self.name);
                }
            }
            Err(e) => eprintln!("cannot drop the test schema {}: {e}", self.name),
        }
    }
}
