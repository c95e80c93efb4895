//! What an installed binary offers besides serving: a version that names
//! its commit, shell completions and manual pages generated from the flag
//! definitions.

mod common;

use std::path::Path;
use std::process::Command;

use common::server_bin;

fn stdout_of(args: &[&str]) -> String {
    let output = Command::new(server_bin()).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "exec-server {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Every long flag `--help` of `args` lists, e.g. `--listen`.
fn long_flags(args: &[&str]) -> Vec<String> {
    let mut help_args = args.to_vec();
    help_args.push("--help");
    let mut flags: Vec<String> = stdout_of(&help_args)
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|word| word.starts_with("--") && word.len() > 2)
        .map(str::to_string)
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let version = stdout_of(&["--version"]);
    let package = env!("CARGO_PKG_VERSION");
    let manifest = env!("CARGO_MANIFEST_DIR");
    let git = Command::new("git")
        .args([
            "-C",
            manifest,
            "log",
            "-1",
            "--format=%h %cs",
            "--abbrev=12",
        ])
        .output();
    match git {
        Ok(output) if output.status.success() => {
            let commit = String::from_utf8(output.stdout).unwrap();
            assert_eq!(
                version.trim(),
                format!("exec-server {package} ({})", commit.trim())
            );
        }
        // A source tree outside git: the bare version, nothing made up.
        _ => assert_eq!(version.trim(), format!("exec-server {package}")),
    }
}

#[test]
fn bash_completes_subcommands_and_flags_from_the_generated_script() {
    let script = stdout_of(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exec-server.bash");
    std::fs::write(&path, script).unwrap();
    // Load the script into a real bash and ask it to complete, as the
    // shell does when the user presses Tab.
    let complete = |line: &str| -> Vec<String> {
        let program = format!(
            r#"source {script}
function_name=$(complete -p exec-server | sed -n 's/.*-F \([^ ]*\).*/\1/p')
COMP_LINE={line:?}
COMP_POINT=${{#COMP_LINE}}
read -ra COMP_WORDS <<< "$COMP_LINE"
[[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
"$function_name" exec-server "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
            script = path.display(),
        );
        let output = Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &program])
            .output()
            .expect("bash");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let top = complete("exec-server ");
    for word in ["run", "mcp", "completions", "man", "--listen", "--config"] {
        assert!(top.contains(&word.to_string()), "{word} not in {top:?}");
    }
    assert_eq!(complete("exec-server --max-m"), ["--max-message-bytes"]);
    // Inside a subcommand (clap-rs/clap#6421 broke this for hyphenated names).
    let run = complete("exec-server run --");
    assert!(run.contains(&"--connect".to_string()), "{run:?}");
    assert_eq!(complete("exec-server mcp --con"), ["--connect"]);
    let shells = complete("exec-server completions ");
    assert!(
        shells.contains(&"bash".to_string()) && shells.contains(&"fish".to_string()),
        "{shells:?}"
    );
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let script = stdout_of(&["completions", shell]);
        assert!(script.contains("max-message-bytes"), "{shell}: {script}");
    }
}

/// The page rendered by groff as a reader sees it: one long line per
/// paragraph, no hyphenation, no overstriking.
fn render(page: &Path) -> String {
    let output = Command::new("groff")
        .args(["-man", "-Tascii", "-rLL=300n", "-rHY=0", "-P-cbu", "-ww"])
        .arg(page)
        .output()
        .expect("groff (Debian package groff-base, in scripts/apt-packages.txt)");
    let warnings = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && warnings.is_empty(), "{warnings}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn manual_pages_document_every_flag_of_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let printed = dir.path().join("printed.1");
    std::fs::write(&printed, stdout_of(&["man"])).unwrap();
    stdout_of(&["man", "--out-dir", dir.path().to_str().unwrap()]);
    assert_eq!(
        std::fs::read(&printed).unwrap(),
        std::fs::read(dir.path().join("exec-server.1")).unwrap(),
        "`man` prints the same main page `man --out-dir` writes"
    );
    for (page, command) in [
        ("exec-server.1", &[][..]),
        ("exec-server-run.1", &["run"][..]),
        ("exec-server-mcp.1", &["mcp"][..]),
        ("exec-server-completions.1", &["completions"][..]),
        ("exec-server-man.1", &["man"][..]),
    ] {
        let text = render(&dir.path().join(page));
        let flags = long_flags(command);
        assert!(
            flags.contains(&"--help".to_string()),
            "{command:?}: {flags:?}"
        );
        for flag in flags {
            assert!(text.contains(&flag), "{page} lacks {flag}:\n{text}");
        }
    }
    let main = render(&dir.path().join("exec-server.1"));
    assert!(main.contains("exec-server-run(1)"), "{main}");
    assert!(!main.contains("exec-server-help(1)"), "{main}");
    assert!(
        main.contains(
            stdout_of(&["--version"])
                .trim()
                .trim_start_matches("exec-server ")
        ),
        "the page names the version:\n{main}"
    );
}
