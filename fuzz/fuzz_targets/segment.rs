//! Fuzz target `segment`: see [`deskwatch::fuzz::segment`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deskwatch::fuzz::segment(data));
