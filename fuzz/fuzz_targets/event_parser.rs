//! Fuzz target `event_parser`: see [`deskwatch::fuzz::event_parser`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deskwatch::fuzz::event_parser(data));
