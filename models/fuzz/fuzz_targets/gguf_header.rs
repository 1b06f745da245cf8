//! Any bytes given to the GGUF header reader must come back as a header or an error: never a
//! panic, a hang or an allocation larger than the input justifies.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ayush_models::gguf::read_header(data, data.len() as u64);
});
