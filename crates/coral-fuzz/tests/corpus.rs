//! Replays every committed fuzz input through its target: the corpora under
//! `fuzz/corpus/<target>/` (minimised, seeded from real SDK, Beyla and
//! config payloads) and the inputs that once failed, under
//! `fuzz/regressions/<target>/`. A decoder that panics on any of them fails
//! `cargo test`. Fast: the corpora are small.

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    out.retain(|p| p.is_file());
    out.sort();
    out
}

#[test]
fn every_corpus_and_regression_input_passes_its_target() {
    // `CORAL_FUZZ_TARGET=name` replays one target; `CORAL_FUZZ_TRACE=1`
    // names each input before it runs (a stack overflow aborts the process).
    let only = std::env::var("CORAL_FUZZ_TARGET").ok();
    let trace = std::env::var_os("CORAL_FUZZ_TRACE").is_some();
    for (name, target) in coral_fuzz::TARGETS {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let corpus = files(&fuzz_dir().join("corpus").join(name));
        assert!(
            !corpus.is_empty(),
            "fuzz/corpus/{name} is empty: seed it (fuzz/README.md)"
        );
        let regressions = files(&fuzz_dir().join("regressions").join(name));
        for path in corpus.iter().chain(&regressions) {
            if trace {
                eprintln!("{name}: {}", path.display());
            }
            let data = std::fs::read(path).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(
                outcome.is_ok(),
                "{name} panicked on {} — reproduce with `cargo +nightly fuzz run {name} {}` from fuzz/",
                path.display(),
                path.display()
            );
        }
    }
}

#[test]
fn every_target_has_its_fuzz_binary() {
    for (name, _) in coral_fuzz::TARGETS {
        let source = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&source)
            .unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        assert!(
            text.contains(&format!("coral_fuzz::{name}(")),
            "{} calls coral_fuzz::{name}",
            source.display()
        );
    }
}
