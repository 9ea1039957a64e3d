//! The in-repository reference data (`testdata/golden/`) stays in step with the project's
//! reference folder `../shared/golden/` when that folder exists: same files, same bytes (its
//! README is adapted as `testdata/README.md` and not compared). On a clone without the folder
//! the test says so on stderr and checks only that the in-repository copy is there.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The file names in `dir`, without `README.md`.
fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| n != "README.md")
        .collect()
}

#[test]
fn testdata_golden_equals_shared_golden_when_present() {
    let ours = workspace().join("testdata/golden");
    let mine = names(&ours);
    // The files the tests read are all there, whatever the shared folder holds.
    for f in [
        "tokenize_smollm2.jsonl",
        "greedy_smollm2.jsonl",
        "logits_smollm2.json",
        "ppl.json",
        "recompute_smollm2_hamlet.json",
        "dequant.json",
        "quant_vectors.json",
        "hamlet.txt",
    ] {
        assert!(mine.contains(f), "testdata/golden/{f} is missing");
    }
    let shared = workspace().join("../shared/golden");
    if !shared.is_dir() {
        common::skipped(&format!(
            "{} is absent: testdata/golden/ not compared with it (nothing to keep in step with)",
            shared.display()
        ));
        return;
    }
    let theirs = names(&shared);
    let missing: Vec<_> = theirs.difference(&mine).collect();
    assert!(
        missing.is_empty(),
        "{} has files testdata/golden/ lacks: {missing:?}; copy them in and describe them in \
         testdata/README.md",
        shared.display()
    );
    let extra: Vec<_> = mine.difference(&theirs).collect();
    assert!(
        extra.is_empty(),
        "testdata/golden/ has files {} lacks: {extra:?}",
        shared.display()
    );
    for f in &mine {
        let (a, b) = (
            std::fs::read(ours.join(f)).unwrap(),
            std::fs::read(shared.join(f)).unwrap(),
        );
        assert!(
            a == b,
            "testdata/golden/{f} differs from {}/{f}; copy the shared file in",
            shared.display()
        );
    }
    eprintln!(
        "testdata/golden/ equals {} ({} files)",
        shared.display(),
        mine.len()
    );
}
