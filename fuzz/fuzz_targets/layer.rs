//! The layer extractor on untrusted tar (and gzip) bytes: errors, never a
//! panic, never a write outside its root.
#![no_main]
use archgate::verify::rootfs::{Compression, Limits, RootFs};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let outer = tempfile::tempdir().unwrap();
    let inner = outer.path().join("root-parent");
    std::fs::create_dir(&inner).unwrap();
    let limits = Limits {
        max_total_bytes: 1 << 20,
        max_entry_bytes: 1 << 20,
        max_entries: 1000,
    };
    let compression = if data.first().is_some_and(|b| b & 1 == 1) {
        Compression::Gzip
    } else {
        Compression::None
    };
    let mut root = RootFs::new_in(&inner, limits).unwrap();
    let _ = root.apply_layer(&mut &data[1.min(data.len())..], compression, "fuzz");
    // Nothing next to the root's parent: only `root-parent` may exist.
    let siblings: Vec<_> = std::fs::read_dir(outer.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        siblings,
        vec![std::ffi::OsString::from("root-parent")],
        "a write escaped the root"
    );
});
