#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| coral_fuzz::otlp_json(data));
