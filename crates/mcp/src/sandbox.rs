//! Telling the model about the sandbox: every result of a confined command
//! says so, and output that looks like the sandbox refused something
//! (EACCES, EROFS or EPERM on a path outside the writable roots, a refused
//! socket) gets a note in words the model can act on.
//!
//! The detection reads the command's output, so it is a heuristic: it
//! looks for the C library's messages for those errors and for paths on
//! the same line, and only speaks when a path is outside the writable
//! roots (or inside a read-only subpath), or when the network is off and
//! the output looks like a failed connection.

use std::path::{Component, Path, PathBuf};

use exec_server_protocol::sandbox::{FilesystemMode, NetworkMode, SandboxApplied};

/// What the notes need to know about one confined command.
#[derive(Clone, Debug)]
pub struct Confined {
    pub applied: SandboxApplied,
    /// The command's working directory, to resolve relative paths.
    pub workdir: PathBuf,
}

/// One line describing the confinement.
pub fn summary(applied: &SandboxApplied) -> String {
    let filesystem = match applied.filesystem {
        FilesystemMode::ReadOnly => "read-only".to_string(),
        FilesystemMode::WorkspaceWrite => format!(
            "workspace-write (writable: {})",
            writable_places(applied).join(", ")
        ),
        FilesystemMode::Full => "full".to_string(),
    };
    let mut line = format!("sandbox: filesystem {filesystem}");
    if !applied.read_only_paths.is_empty() {
        line.push_str(&format!(
            "; read-only: {}",
            applied.read_only_paths.join(", ")
        ));
    }
    line.push_str(match applied.network {
        NetworkMode::None => "; network: off (local AF_UNIX sockets only)",
        NetworkMode::Full => "; network: on",
    });
    line
}

fn writable_places(applied: &SandboxApplied) -> Vec<String> {
    let mut places = applied.writable_roots.clone();
    if let Some(tmpdir) = &applied.tmpdir {
        places.push(format!("$TMPDIR ({tmpdir})"));
    }
    places
}

/// Adds the sandbox line at the end of the result's header (its `key:
/// value` lines, before the first `--- stream ---` section; the header has
/// a varying number of lines) and, when the output looks like a sandbox
/// denial, a note at the end. Returns the note too.
pub fn annotate(text: String, confined: &Confined) -> (String, Option<String>) {
    let note = denial_note(&text, confined);
    let header_end = if text.starts_with("--- ") {
        0
    } else {
        text.find("\n--- ").map_or(text.len(), |i| i + 1)
    };
    let mut annotated = String::with_capacity(text.len() + 256);
    annotated.push_str(&text[..header_end]);
    annotated.push_str(&summary(&confined.applied));
    annotated.push('\n');
    annotated.push_str(&text[header_end..]);
    if let Some(note) = &note {
        if !annotated.ends_with('\n') {
            annotated.push('\n');
        }
        annotated.push_str("--- sandbox ---\n");
        annotated.push_str(note);
        annotated.push('\n');
    }
    (annotated, note)
}

const FILE_DENIALS: &[&str] = &[
    "Permission denied",
    "Read-only file system",
    "Operation not permitted",
    "EACCES",
    "EROFS",
    "EPERM",
];

const NETWORK_FAILURES: &[&str] = &[
    "Could not resolve host",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "Failed to establish a new connection",
    "getaddrinfo",
    "Couldn't connect to server",
    "Could not connect",
    "Connection refused",
];

/// The note for output that looks like a sandbox denial, if it does.
pub fn denial_note(output: &str, confined: &Confined) -> Option<String> {
    let applied = &confined.applied;
    for line in output.lines() {
        if applied.network == NetworkMode::None {
            let socket_eperm = line.contains("Operation not permitted")
                && [
                    "socket",
                    "connect",
                    "Connection",
                    "http",
                    "network",
                    "Errno 1",
                ]
                .iter()
                .any(|w| line.contains(w));
            if socket_eperm || NETWORK_FAILURES.iter().any(|m| line.contains(m)) {
                return Some(format!(
                    "This looks like the sandbox blocking the network: network access is off for this command \
                     (only local AF_UNIX sockets work), so connections, DNS lookups, downloads and package \
                     installs fail, even to localhost. Work offline, or ask the user to allow the network \
                     (exec-server mcp --sandbox-network full). The failing line: {}",
                    line.trim()
                ));
            }
        }
        if applied.filesystem == FilesystemMode::Full {
            continue;
        }
        let Some(at) = FILE_DENIALS.iter().filter_map(|m| line.find(m)).min() else {
            continue;
        };
        for candidate in paths_near(line, at) {
            let path = lexical_absolute(&confined.workdir, &candidate);
            if let Some(read_only) = applied
                .read_only_paths
                .iter()
                .find(|p| path.starts_with(p.as_str()))
            {
                return Some(format!(
                    "This looks like the sandbox refusing a write: `{}` is inside `{read_only}`, which stays \
                     read-only in this sandbox (to protect it from changes the user did not review). \
                     Leave it unchanged; if the task needs it changed, tell the user what to change.",
                    path.display()
                ));
            }
            let writable = applied
                .writable_roots
                .iter()
                .chain(applied.tmpdir.iter())
                .any(|root| path.starts_with(root.as_str()));
            if !writable {
                let places = match applied.filesystem {
                    FilesystemMode::ReadOnly => match &applied.tmpdir {
                        Some(tmpdir) => format!("only $TMPDIR ({tmpdir}) is writable"),
                        None => "nothing is writable".to_string(),
                    },
                    _ => format!("writable: {}", writable_places(applied).join(", ")),
                };
                return Some(format!(
                    "This looks like the sandbox refusing access: `{}` is outside the places this command may \
                     write ({places}). Write inside those instead (e.g. use $TMPDIR for scratch files); if \
                     the task really needs `{}`, ask the user to widen the sandbox \
                     (exec-server mcp --writable-root DIR).",
                    path.display(),
                    path.display()
                ));
            }
        }
    }
    None
}

/// Path-like tokens of a message, the likeliest first: after the error
/// text (`Permission denied: '/x'`), then before it, nearest first
/// (`cannot create /x: Permission denied`). A leading `program:` is not a
/// candidate (`/bin/sh: 1: cannot create …`).
fn paths_near(line: &str, at: usize) -> Vec<String> {
    let mut tokens = tokens_of(line);
    if let Some(first) = line.split_whitespace().next()
        && first.ends_with(':')
    {
        tokens.retain(|(start, _)| *start != 0);
    }
    let (mut after, mut before): (Vec<_>, Vec<_>) =
        tokens.into_iter().partition(|(start, _)| *start > at);
    after.sort_by_key(|(start, _)| *start);
    before.sort_by_key(|(start, _)| std::cmp::Reverse(*start));
    after
        .into_iter()
        .chain(before)
        .map(|(_, token)| token)
        .collect()
}

/// Path-like tokens with their byte offsets: quoted ('x', "x", `x`, ‘x’)
/// or bare tokens with a slash.
fn tokens_of(line: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (open, close) in [
        ('\'', '\''),
        ('"', '"'),
        ('`', '\''),
        ('`', '`'),
        ('‘', '’'),
    ] {
        let mut offset = 0;
        while let Some(start) = line[offset..].find(open) {
            let token_start = offset + start + open.len_utf8();
            let Some(end) = line[token_start..].find(close) else {
                break;
            };
            let token = &line[token_start..token_start + end];
            if !token.is_empty() && !token.contains(' ') {
                found.push((token_start, token.to_string()));
            }
            offset = token_start + end + close.len_utf8();
        }
    }
    let mut offset = 0;
    for word in line.split_whitespace() {
        let start = offset + line[offset..].find(word).unwrap_or(0);
        offset = start + word.len();
        let token = word.trim_matches(|c: char| {
            matches!(
                c,
                ':' | ',' | ';' | '\'' | '"' | '`' | '(' | ')' | '[' | ']' | '‘' | '’'
            )
        });
        if token.contains('/') && !token.contains("://") {
            found.push((start, token.to_string()));
        }
    }
    found
}

/// `path` made absolute against `base`, with `.` and `..` resolved by name.
fn lexical_absolute(base: &Path, path: &str) -> PathBuf {
    let joined = base.join(path);
    let mut normal = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    normal
}

#[cfg(test)]
mod tests {
    use super::*;
    use exec_server_protocol::sandbox::SandboxEnforcement;

    fn confined(network: NetworkMode) -> Confined {
        Confined {
            applied: SandboxApplied {
                filesystem: FilesystemMode::WorkspaceWrite,
                network,
                writable_roots: vec!["/ws".into()],
                read_only_paths: vec!["/ws/.git".into()],
                readable_roots: None,
                tmpdir: Some("/tmp/exec-server-sandbox.1.ab".into()),
                enforcement: SandboxEnforcement {
                    landlock_abi: Some(7),
                    landlock_network: true,
                    signal_scope: true,
                    abstract_unix_scope: true,
                    seccomp: true,
                    no_new_privs: true,
                    capabilities_dropped: true,
                    bounding_set_cleared: true,
                    mount_namespace: true,
                },
            },
            workdir: PathBuf::from("/ws/src"),
        }
    }

    #[test]
    fn a_write_outside_the_roots_is_explained() {
        let c = confined(NetworkMode::None);
        for line in [
            "touch: cannot touch '/etc/x': Permission denied",
            "sh: 1: cannot create /etc/x: Permission denied",
            "PermissionError: [Errno 13] Permission denied: '/etc/x'",
            "bash: ../../etc/x: Permission denied",
        ] {
            let note = denial_note(line, &c).unwrap_or_else(|| panic!("no note for {line}"));
            assert!(note.contains("`/etc/x` is outside"), "{note}");
            assert!(note.contains("/ws"), "{note}");
        }
    }

    #[test]
    fn the_program_name_is_not_taken_for_the_path() {
        let c = confined(NetworkMode::None);
        let note = denial_note(
            "/bin/sh: 1: cannot create /tmp/x/out: Permission denied",
            &c,
        )
        .unwrap();
        assert!(note.contains("`/tmp/x/out`"), "{note}");
        let note = denial_note(
            "/usr/bin/touch: cannot touch '/etc/y': Permission denied",
            &c,
        )
        .unwrap();
        assert!(note.contains("`/etc/y`"), "{note}");
    }

    #[test]
    fn a_write_to_a_read_only_subpath_is_explained() {
        let note = denial_note(
            "sh: 1: cannot create ../.git/config: Read-only file system",
            &confined(NetworkMode::None),
        )
        .unwrap();
        assert!(note.contains("/ws/.git"), "{note}");
    }

    #[test]
    fn failures_inside_the_roots_are_not_blamed_on_the_sandbox() {
        let c = confined(NetworkMode::Full);
        assert_eq!(
            denial_note("cat: /ws/missing: No such file or directory", &c),
            None
        );
        assert_eq!(
            denial_note("rm: cannot remove '/ws/a': Permission denied", &c),
            None
        );
        assert_eq!(denial_note("all good", &c), None);
    }

    #[test]
    fn a_refused_socket_is_explained_only_without_network() {
        let line = "PermissionError: [Errno 1] Operation not permitted";
        assert!(
            denial_note(line, &confined(NetworkMode::None))
                .unwrap()
                .contains("network")
        );
        assert_eq!(denial_note(line, &confined(NetworkMode::Full)), None);
        let curl = "curl: (6) Could not resolve host: example.com";
        assert!(denial_note(curl, &confined(NetworkMode::None)).is_some());
    }

    #[test]
    fn the_summary_goes_after_the_header() {
        let text = "exit_code: 1\nwall_time_ms: 5\n--- stderr ---\nx\n".to_string();
        let (annotated, note) = annotate(text, &confined(NetworkMode::None));
        assert!(note.is_none());
        assert!(
            annotated
                .starts_with("exit_code: 1\nwall_time_ms: 5\nsandbox: filesystem workspace-write"),
            "{annotated}"
        );
        assert!(annotated.ends_with("--- stderr ---\nx\n"), "{annotated}");
    }

    #[test]
    fn the_summary_ends_a_longer_header() {
        let text = "session_id: 3 (waiting for input: send it with write_stdin)\n\
                    waiting_for_input: true\nwall_time_ms: 9\nstopped: matched\n\
                    --- terminal ---\n$ \n"
            .to_string();
        let (annotated, _) = annotate(text, &confined(NetworkMode::None));
        let lines: Vec<&str> = annotated.lines().collect();
        assert_eq!(lines[3], "stopped: matched", "{annotated}");
        assert!(lines[4].starts_with("sandbox: filesystem"), "{annotated}");
        assert_eq!(lines[5], "--- terminal ---", "{annotated}");

        let (annotated, _) = annotate(
            "exit_code: 0\nwall_time_ms: 1\n".into(),
            &confined(NetworkMode::None),
        );
        assert!(
            annotated.ends_with("wall_time_ms: 1\nsandbox: filesystem workspace-write (writable: /ws, $TMPDIR (/tmp/exec-server-sandbox.1.ab)); read-only: /ws/.git; network: off (local AF_UNIX sockets only)\n"),
            "{annotated}"
        );
    }
}
