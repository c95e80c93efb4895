//! Environment defaults that keep an agent's commands from hanging on a
//! prompt nobody will answer. Each applies unless the tool call's own `env`
//! sets the variable (the MCP server's inherited environment does not
//! count: a `PAGER=less` in the user's shell would otherwise trap the agent
//! in `less`).
//!
//! | variable | value | when | why |
//! |---|---|---|---|
//! | `PAGER`, `GIT_PAGER`, `MANPAGER`, `SYSTEMD_PAGER`, `GH_PAGER` | `cat` | always | `git log`, `man`, `systemctl status`, `gh` page long output through `less`, which waits for keys (on a terminal it also takes over the screen) |
//! | `GIT_TERMINAL_PROMPT` | `0` | without a terminal | git asks for credentials on `/dev/tty` even when stdin is closed; with this it fails at once instead |
//! | `DEBIAN_FRONTEND` | `noninteractive` | without a terminal | `apt-get`/`dpkg` configuration questions take their defaults instead of waiting |
//! | `TERM` | `xterm-256color` | with a terminal | shells and editors need a terminal type; the renderers understand xterm's |
//!
//! Without a terminal, stdin is also `/dev/null` unless the call asks for
//! `open_stdin` (a program that reads input then sees end-of-file at once).

use std::collections::BTreeMap;

const PAGERS: &[&str] = &[
    "PAGER",
    "GIT_PAGER",
    "MANPAGER",
    "SYSTEMD_PAGER",
    "GH_PAGER",
];

/// The environment overlay for a command: these defaults, then `requested`.
pub fn environment(tty: bool, requested: BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for pager in PAGERS {
        env.insert(pager.to_string(), "cat".to_string());
    }
    if tty {
        env.insert("TERM".into(), "xterm-256color".into());
    } else {
        env.insert("GIT_TERMINAL_PROMPT".into(), "0".into());
        env.insert("DEBIAN_FRONTEND".into(), "noninteractive".into());
    }
    env.extend(requested);
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagers_are_off_unless_the_call_sets_them() {
        let env = environment(false, BTreeMap::new());
        assert_eq!(env["PAGER"], "cat");
        assert_eq!(env["GIT_PAGER"], "cat");
        assert_eq!(env["GIT_TERMINAL_PROMPT"], "0");
        assert!(!env.contains_key("TERM"));
        let asked = [("PAGER".to_string(), "less".to_string())].into();
        assert_eq!(environment(true, asked)["PAGER"], "less");
        assert_eq!(environment(true, BTreeMap::new())["TERM"], "xterm-256color");
    }
}
