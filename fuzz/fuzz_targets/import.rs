//! Fuzz target `import`: see [`deskwatch::fuzz::import`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deskwatch::fuzz::import(data));
