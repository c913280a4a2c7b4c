//! A many-logs store on a full disk: the write that does not fit fails cleanly (nothing
//! acknowledged lost, the store not poisoned), a trim of any log and a `drop_log` still go
//! through on the space reserved for them, and once they have freed space every log goes on;
//! everything survives a reopen and a power loss.

use std::sync::Arc;

use omnipaxos::storage::{Storage, StorageOp};
use paxstore_core::conformance::verify_store;
use paxstore_core::kv::KeyValue;
use paxstore_core::model::Model;
use paxstore_files::env::{CrashPattern, SimFs};
use paxstore_files::{FilesLog, FilesOptions, FilesStore};

const DIR: &str = "/store";

fn append(
    log: &mut FilesLog<KeyValue>,
    model: &mut Model<KeyValue>,
    n: usize,
) -> Result<(), String> {
    let v: Vec<KeyValue> = (0..n)
        .map(|i| KeyValue::new("k", (model.next + i) as u64, 1000))
        .collect();
    log.append_entries(v.clone()).map_err(|e| e.to_string())?;
    model.apply(&StorageOp::AppendEntries(v)).unwrap();
    Ok(())
}

#[test]
fn disk_full_then_a_trim_and_a_drop_free_space_and_nothing_is_lost() {
    for (preallocate, segment) in [(true, 64 << 10), (true, 256 << 10), (false, 64 << 10)] {
        let case = format!("preallocate {preallocate}, segment {segment}");
        let fs = SimFs::new();
        let opts = FilesOptions::new()
            .segment_size(segment)
            .preallocate(preallocate)
            .background_purge(false)
            .file_system(Arc::new(fs.clone()));
        let store = FilesStore::open_with(DIR, opts.clone()).unwrap();
        let mut a = store.log::<KeyValue>("a").unwrap();
        let mut b = store.log::<KeyValue>("b").unwrap();
        let mut doomed = store.log::<KeyValue>("doomed").unwrap();
        let (mut ma, mut mb, mut md) = (Model::new(), Model::new(), Model::new());
        append(&mut doomed, &mut md, 8).unwrap();
        fs.set_capacity(Some(fs.used() + (900 << 10)));
        let mut err = None;
        for k in 0..1000 {
            let (log, model) = if k % 2 == 0 {
                (&mut a, &mut ma)
            } else {
                (&mut b, &mut mb)
            };
            if let Err(e) = append(log, model, 8) {
                err = Some(e);
                break;
            }
        }
        let err = err.expect("the disk filled up");
        assert!(
            err.contains("No space left"),
            "{case}: the error says so: {err}"
        );
        assert!(
            store.poisoned().is_none(),
            "{case}: a full disk does not poison: {err}"
        );
        verify_store(&a, &ma).unwrap();
        verify_store(&b, &mb).unwrap();
        if preallocate {
            // Not one byte left: the trim must make do with the space reserved for it.
            fs.set_capacity(Some(fs.used()));
        }
        // A trim of `a` goes through on the full disk.
        let t = ma.next - 8;
        ma.apply(&StorageOp::Trim(t)).unwrap();
        a.trim(t)
            .unwrap_or_else(|e| panic!("{case}: trim on a full disk: {e}"));
        // So does dropping a log (closed first).
        drop(doomed);
        store
            .drop_log("doomed")
            .unwrap_or_else(|e| panic!("{case}: drop_log on a full disk: {e}"));
        // `b` still holds everything: trimming it too frees the rest of the old segments.
        let t = mb.next - 8;
        mb.apply(&StorageOp::Trim(t)).unwrap();
        b.trim(t)
            .unwrap_or_else(|e| panic!("{case}: second trim on a full disk: {e}"));
        // The space they freed lets both logs go on.
        for _ in 0..20 {
            append(&mut a, &mut ma, 8).unwrap_or_else(|e| panic!("{case}: after the trims: {e}"));
            append(&mut b, &mut mb, 8).unwrap_or_else(|e| panic!("{case}: after the trims: {e}"));
        }
        verify_store(&a, &ma).unwrap();
        verify_store(&b, &mb).unwrap();
        drop((a, b, store));
        let lost = fs.power_loss(CrashPattern::DropAll);
        let store = FilesStore::open_with(DIR, opts.file_system(Arc::new(lost))).unwrap();
        assert_eq!(store.logs(), ["a", "b"], "{case}");
        verify_store(&store.log::<KeyValue>("a").unwrap(), &ma).unwrap();
        verify_store(&store.log::<KeyValue>("b").unwrap(), &mb).unwrap();
    }
}
