//! openraft's own conformance suite against the RocksDB log store and the
//! catalog state machine.

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use raft::storage::{LogStore, StateMachine, TypeConfig};
use tempfile::TempDir;

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = TempDir::new().expect("temp dir");
        let db = store::Db::open(&dir.path().join("db")).expect("open rocksdb");
        let sm = StateMachine::open(db.clone())?;
        Ok((dir, LogStore::new(db), sm))
    }
}

// A plain #[test]: the suite makes its own runtime for every case.
#[test]
fn rocksdb_storage_passes_openraft_suite() {
    if let Err(e) = Suite::test_all(RocksBuilder) {
        panic!("openraft storage suite failed: {e}");
    }
}
