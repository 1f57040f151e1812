//! Fuzz target `chunk_file`: see [`deskwatch::fuzz::chunk_file`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deskwatch::fuzz::chunk_file(data));
