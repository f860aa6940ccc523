#![no_main]
//! cargo fuzz run units --sanitizer none (see scripts/fuzz). The body is in fuzz/src/lib.rs, shared
//! with the corpus replay test (tests/fuzz_corpus.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| orderguard_fuzz::units(data));
