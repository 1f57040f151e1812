//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the fuzz targets'
//! code (`deskwatch::fuzz`), without fuzzing: an input that once crashed a decoder, or that
//! reached deep into it, fails CI if it crashes again. New inputs come from
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run <target>` (see the README, "Fuzzing").

use std::path::Path;

#[test]
fn every_committed_input_runs_without_a_crash() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (name, target) in deskwatch::fuzz::TARGETS {
        let dir = root.join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        inputs.sort();
        assert!(
            inputs.len() >= 3,
            "{}: the corpus of `{name}` has {} inputs; it should keep its seeds",
            dir.display(),
            inputs.len()
        );
        for path in &inputs {
            let data = std::fs::read(path).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name}: {} crashes", path.display());
        }
        println!("{name}: {} inputs replayed", inputs.len());
    }
}
