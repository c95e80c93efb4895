//! Lines of bytes → a connection after the handshake: routing, params
//! decoding and every handler's validation. No process is ever started.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    exec_server_service::fuzzing::route(data);
});
