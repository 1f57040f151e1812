//! Fuzz target `checkpoint`: see [`deskwatch::fuzz::checkpoint`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deskwatch::fuzz::checkpoint(data));
