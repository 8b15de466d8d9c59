//! Snapshots of the text foreman writes for people (comments, replies), kept under
//! `tests/snapshots/` with `insta`, so their wording is reviewed like code: a change shows as a
//! `.snap.new` file beside the snapshot (`cargo insta review`, or rerun with
//! `INSTA_UPDATE=always` to accept every change).

/// Compares `text` with the snapshot `name` in `tests/snapshots/`.
#[macro_export]
#[doc(hidden)]
macro_rules! assert_text_snapshot {
    ($name:expr, $text:expr) => {
        insta::with_settings!({
            snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots"),
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_snapshot!($name, $text);
        })
    };
}
