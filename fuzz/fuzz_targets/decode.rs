//! Bytes → client and server messages, and back.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    exec_server_service::fuzzing::decode(data);
});
