//! Replays the fuzz corpus and every input that once crashed a fuzz target
//! (`fuzz/corpus/*`, `fuzz/regressions/*`), so CI keeps them fixed without
//! running the fuzzer itself.

use std::path::PathBuf;

/// 4 GiB of address space: an input that made the server allocate without
/// bound fails this test instead of exhausting the machine.
fn limit_memory() {
    let limit = libc::rlimit {
        rlim_cur: 4 << 30,
        rlim_max: 4 << 30,
    };
    // SAFETY: setrlimit reads the struct we pass.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) }, 0);
}

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_file() {
                let data = std::fs::read(&path).unwrap();
                files.push((path, data));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn decode_corpus_replays_cleanly() {
    limit_memory();
    let inputs = inputs("decode");
    assert!(inputs.len() >= 20, "the decode corpus is missing");
    for (path, data) in inputs {
        let result = std::panic::catch_unwind(|| exec_server_service::fuzzing::decode(&data));
        assert!(result.is_ok(), "decode panicked on {}", path.display());
    }
}

#[test]
fn router_corpus_replays_cleanly() {
    limit_memory();
    let inputs = inputs("router");
    assert!(inputs.len() >= 20, "the router corpus is missing");
    for (path, data) in inputs {
        let result = std::panic::catch_unwind(|| exec_server_service::fuzzing::route(&data));
        assert!(result.is_ok(), "the router panicked on {}", path.display());
    }
}
