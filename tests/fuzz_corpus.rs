//! The fuzz targets on every `cargo test`, without cargo-fuzz: each committed seed in
//! `fuzz/corpus/<target>/` and every regression input in `fuzz/regressions/<target>/` is run
//! through the same function the fuzzer calls (`fuzz/src/lib.rs`), then a bounded,
//! deterministic run of mutations of the seeds (bit flips, cuts, splices, extreme numbers).
//! `ORDERGUARD_FUZZ_MUTATIONS` sets the mutations per target (default 400); a failing input is
//! written to `target/fuzz-failures/` and named in the panic, ready for `cargo fuzz run <t> FILE`.

#[path = "../fuzz/src/lib.rs"]
mod targets;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

type Target = fn(&[u8]);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Files of a folder, sorted (a missing folder is empty).
fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), bytes)
        })
        .collect()
}

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    inputs(&root().join("fuzz/corpus").join(target))
}

/// Runs one input; on a panic, keeps the input and fails naming it.
fn run(name: &str, target: Target, what: &str, data: &[u8]) {
    if catch_unwind(AssertUnwindSafe(|| target(data))).is_err() {
        let dir = root().join("target/fuzz-failures").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(what.replace(['/', ' '], "_"));
        std::fs::write(&file, data).unwrap();
        panic!(
            "fuzz target {name} panicked on {what}; input kept in {}",
            file.display()
        );
    }
}

/// xorshift64*: deterministic, so a failure here fails the same way again.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that break arithmetic and parsers, put where a number or a string was.
const EXTREMES: &[&str] = &[
    "0",
    "-1",
    "1e308",
    "-1e308",
    "5e-324",
    "1e-300",
    "18446744073709551616",
    "NaN",
    "null",
    "\"\"",
    "[]",
    "{}",
    "true",
    "\"\\ud800\"",
    "\"9999-12-31\"",
    "\"0001-01-01\"",
];

fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => data.truncate(rng.below(len)),
            2 if len > 0 => {
                let i = rng.below(len);
                data.insert(i, rng.next() as u8);
            }
            3 if len > 1 => {
                let (a, b) = (rng.below(len), rng.below(len));
                let (a, b) = (a.min(b), a.max(b));
                data.drain(a..b);
            }
            4 if !other.is_empty() && len > 0 => {
                // Splice: our head, the other seed's tail.
                let cut = rng.below(len);
                let from = rng.below(other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            5 => {
                // Replace a run of digits (a number) with an extreme value.
                let starts: Vec<usize> = (0..len)
                    .filter(|&i| {
                        data[i].is_ascii_digit() && (i == 0 || !data[i - 1].is_ascii_digit())
                    })
                    .collect();
                if !starts.is_empty() {
                    let start = starts[rng.below(starts.len())];
                    let end = (start..len)
                        .find(|&i| !(data[i].is_ascii_digit() || data[i] == b'.'))
                        .unwrap_or(len);
                    let value = EXTREMES[rng.below(EXTREMES.len())].as_bytes();
                    data.splice(start..end, value.iter().copied());
                }
            }
            _ if len > 0 => {
                // Repeat a chunk (grows arrays and strings).
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                let chunk = data[a..b].to_vec();
                for _ in 0..1 + rng.below(8) {
                    data.splice(a..a, chunk.iter().copied());
                }
            }
            _ => data.push(b'{'),
        }
    }
    data
}

fn mutations() -> usize {
    std::env::var("ORDERGUARD_FUZZ_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400)
}

fn exercise(name: &str, target: Target) {
    let seeds = seeds(name);
    assert!(
        !seeds.is_empty(),
        "no seeds in fuzz/corpus/{name} (run fuzz/make-seeds.py)"
    );
    for (file, data) in &seeds {
        run(name, target, &format!("seed {file}"), data);
    }
    for (file, data) in inputs(&root().join("fuzz/regressions").join(name)) {
        run(name, target, &format!("regression {file}"), &data);
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
    for i in 0..mutations() {
        let seed = &seeds[i % seeds.len()].1;
        let other = &seeds[rng.below(seeds.len())].1;
        let data = mutate(&mut rng, seed, other);
        run(name, target, &format!("mutation {i}"), &data);
    }
}

#[test]
fn cds_hooks_adapter_survives_its_corpus_and_mutations() {
    exercise("cds_hooks", targets::cds_hooks);
}

#[test]
fn native_adapter_survives_its_corpus_and_mutations() {
    exercise("native", targets::native);
}

#[test]
fn unit_and_frequency_parsers_survive_their_corpus_and_mutations() {
    exercise("units", targets::units);
}

#[test]
fn pathway_loader_survives_its_corpus_and_mutations() {
    exercise("pathway", targets::pathway);
}

#[test]
fn spool_reader_survives_its_corpus_and_mutations() {
    exercise("spool", targets::spool);
}

#[test]
fn a_panicking_target_is_caught_and_its_input_kept() {
    fn boom(data: &[u8]) {
        assert!(data.is_empty(), "boom");
    }
    let caught = catch_unwind(|| run("self-test", boom, "one byte", b"x"));
    assert!(caught.is_err(), "the harness must report a panic");
    let kept = root().join("target/fuzz-failures/self-test/one_byte");
    assert_eq!(std::fs::read(kept).unwrap(), b"x");
}
