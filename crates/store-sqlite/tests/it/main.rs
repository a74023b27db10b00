//! The store conformance suite against SQLite, each case on a fresh temporary database file.

use store::Catalog;
use store_sqlite::SqliteStore;

testkit::store_conformance!(testkit::Backend::Sqlite);

/// `open` creates missing parent folders and the file, and reopening keeps the data.
#[tokio::test]
async fn open_creates_the_file_and_reopens() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("nested/deeper/updraft.db");
    {
        let store = SqliteStore::open(&path).await.expect("open");
        store
            .record_import_error(
                "dags/x.yaml",
                "x.yaml:1:1: bad",
                testkit::conformance::at(1),
            )
            .await
            .expect("record");
        store.close().await;
    }
    assert!(path.exists());
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::connect(&url).await.expect("reconnect by URL");
    let errors = store.list_import_errors().await.expect("list");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].filename, "dags/x.yaml");
}

/// `sqlite::memory:` is one database shared by every connection, not one per connection.
#[tokio::test]
async fn memory_url_is_one_database() {
    let store = SqliteStore::connect("sqlite::memory:")
        .await
        .expect("memory");
    store
        .record_import_error("dags/x.yaml", "bad", testkit::conformance::at(1))
        .await
        .expect("write");
    // Reads use other connections than the write did.
    assert_eq!(store.list_import_errors().await.expect("read").len(), 1);
}
