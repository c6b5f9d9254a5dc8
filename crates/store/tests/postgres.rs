//! What only the Postgres store has: first connects racing to create the tables, and
//! errors that name the server without its password. Skipped loudly without a server
//! (see `common::PgSchema`), failed when `OPERONX_REQUIRE_POSTGRES=1`.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{PgSchema, new_run, op_entries, with_param};
use operonx_store::{Batch, ListFilter, PostgresStore, RunStore, StoreError, StoreKey};

/// Twelve connections to a schema without the tables, at once: each creates them if
/// missing (one at a time, under an advisory lock), all succeed, and all can write.
#[test]
fn concurrent_first_connects_all_succeed() {
    let Some(schema) = PgSchema::new() else { return };
    let key = StoreKey::generate().unwrap();
    let barrier = std::sync::Barrier::new(12);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|_| {
                let (barrier, url, key) = (&barrier, &schema.url, &key);
                scope.spawn(move || {
                    barrier.wait();
                    let store = PostgresStore::connect_with_key(url, key.clone())?;
                    let lease = store.create(&new_run("first"), "owner", Duration::from_secs(60))?;
                    store.append(&lease, &Batch { entries: op_entries(1, 5), ..Batch::default() })
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
    });
    let store = PostgresStore::connect_with_key(&schema.url, key).unwrap();
    assert_eq!(store.list(&ListFilter::default()).unwrap().len(), 12);
    store.check().unwrap();
}

/// Errors name the server by its URL with the password hidden: a failed connect, and a
/// statement failing under a connected store.
#[test]
fn errors_name_the_server_without_its_password() {
    let Some(schema) = PgSchema::new() else { return };
    // A password in the URL (the test server trusts its clients: any password does).
    let (scheme, rest) = schema.url.split_once("://").unwrap();
    let (user, host_and_db) = rest.split_once('@').expect("a test URL with a user (user@host)");
    assert!(!user.contains(':'), "a test URL without a password");
    let with_password = format!("{scheme}://{user}:s3cret@{host_and_db}");
    let key = StoreKey::generate().unwrap();
    let store = PostgresStore::connect_with_key(&with_password, key.clone()).unwrap();
    let hidden = format!("{scheme}://{user}:***@");
    assert!(store.location().starts_with(&hidden) && !store.location().contains("s3cret"), "{}", store.location());
    assert!(!format!("{store:?}").contains("s3cret"));

    let (path, query) = with_password.split_once('?').unwrap();
    let (server, _db) = path.rsplit_once('/').unwrap();
    let missing_db = with_param(&format!("{server}/operonx_no_such_db?{query}"), "connect_timeout=5");
    let err = PostgresStore::connect_with_key(&missing_db, key).unwrap_err();
    let text = format!("{err} / {}", common::chain(&err));
    assert!(matches!(err, StoreError::Postgres { .. }), "{text}");
    assert!(text.contains(&hidden) && text.contains("operonx_no_such_db") && !text.contains("s3cret"), "{text}");

    // The tables vanish under the store: its statements fail, naming it.
    let mut admin = postgres::Client::connect(&schema.url, postgres::NoTls).unwrap();
    admin.batch_execute("DROP TABLE operonx_journal; DROP TABLE operonx_runs").unwrap();
    let err = store.load(&"a".repeat(32)).unwrap_err();
    let StoreError::Postgres { store: named, .. } = &err else { panic!("{err}") };
    assert_eq!(named, store.location());
    assert!(common::chain(&err).contains("operonx_runs"), "{}", common::chain(&err));
}
