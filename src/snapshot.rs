//! Snapshots of the text foreman writes for people (comments, replies), kept under
//! `tests/snapshots/` so their wording is reviewed like code. A test compares what foreman
//! writes with the stored snapshot; `UPDATE_SNAPSHOTS=1` rewrites the snapshots instead.
#![doc(hidden)]

use std::path::PathBuf;

/// Compares `actual` with the snapshot `name`, writing it when it is new or when
/// `UPDATE_SNAPSHOTS` is set.
pub fn assert_snapshot(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.md"));
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    match std::fs::read_to_string(&path) {
        Ok(expected) if !update => {
            if expected != actual {
                panic!(
                    "snapshot {name} differs ({}); review, then rerun with UPDATE_SNAPSHOTS=1\n\
                     --- expected\n{expected}\n--- actual\n{actual}",
                    path.display()
                );
            }
        }
        existing => {
            std::fs::create_dir_all(path.parent().expect("snapshot directory"))
                .expect("snapshot directory");
            std::fs::write(&path, actual).expect("write snapshot");
            if existing.is_err() && !update {
                panic!(
                    "new snapshot {name} written to {}; review it and rerun",
                    path.display()
                );
            }
        }
    }
}
