//! Temporary stores: a real SQLite file in a directory deleted on drop.

use gateway_store::{Store, StoreOptions};

/// A store in a temporary directory; the directory lives as long as this value.
pub struct TempStore {
    /// The open store.
    pub store: Store,
    /// The directory holding `store.db` (deleted on drop).
    pub dir: tempfile::TempDir,
}

impl TempStore {
    /// Opens a fresh store at `<tempdir>/store.db` with default options.
    pub async fn new() -> TempStore {
        Self::with_options(StoreOptions::default()).await
    }

    /// Opens a fresh store with `options`.
    pub async fn with_options(options: StoreOptions) -> TempStore {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let store = Store::open(dir.path().join("store.db"), options)
            .await
            .expect("open a temporary store");
        TempStore { store, dir }
    }

    /// The store file's path.
    pub fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("store.db")
    }
}
