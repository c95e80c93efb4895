//! `exec-server completions SHELL` and `exec-server man`: shell completion
//! scripts and manual pages generated from the clap definition that parses
//! the flags, so they never describe a flag the binary lacks.
//!
//! Both render into memory first and then write once: a closed pipe (`|
//! head`) is then an ordinary error with a message, not a panic inside the
//! generator.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

const COMPLETIONS_HELP: &str = "Install, for example:
  bash: exec-server completions bash > ~/.local/share/bash-completion/completions/exec-server
  zsh:  exec-server completions zsh > ~/.zfunc/_exec-server   (with fpath+=~/.zfunc before compinit)
  fish: exec-server completions fish > ~/.config/fish/completions/exec-server.fish";

#[derive(Debug, clap::Args)]
#[command(after_help = COMPLETIONS_HELP)]
pub struct CompletionsArgs {
    /// The shell to generate completions for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Read it with `exec-server man | man -l -`.")]
pub struct ManArgs {
    /// Write exec-server.1 and one page per subcommand (exec-server-run.1, ...) into DIR instead of printing exec-server.1.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

/// Prints the completion script for `args.shell`.
pub fn completions(args: CompletionsArgs, mut command: clap::Command) -> ExitCode {
    let mut script = Vec::new();
    let name = command.get_name().to_string();
    clap_complete::generate(args.shell, &mut command, &name, &mut script);
    if args.shell == clap_complete::Shell::Bash {
        script = fix_hyphenated_bash_labels(&script, &name);
    }
    finish(write_stdout(&script))
}

/// clap_complete 4.6 spells the bash state of a subcommand of a hyphenated
/// binary two ways: the loop that reads the words arrives at
/// `exec__server__subcmd__run`, the `case` arms expect
/// `exec__subcmd__server__subcmd__run`, so nothing after a subcommand
/// completes (clap-rs/clap#6421). Respell the arms as the loop does; once a
/// fixed release is in use this replaces nothing, and the completion test
/// keeps checking the result.
fn fix_hyphenated_bash_labels(script: &[u8], name: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(script);
    let loop_spelling = name.replace('-', "__");
    let arm_spelling = name.replace('-', "__subcmd__");
    text.replace(
        &format!("{arm_spelling}__subcmd__"),
        &format!("{loop_spelling}__subcmd__"),
    )
    .into_bytes()
}

/// Prints the main manual page, or writes every page into a directory.
pub fn man(args: ManArgs, command: clap::Command) -> ExitCode {
    // `generate_to` leaves out clap's `help` subcommand, which has no page
    // of its own; the main page must not list it either.
    let command = command.disable_help_subcommand(true);
    let result = match args.out_dir {
        Some(dir) => clap_mangen::generate_to(command, &dir)
            .with_context(|| format!("cannot write manual pages into {}", dir.display())),
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .context("rendering the manual page")
                .and_then(|()| write_stdout(&page))
        }
    };
    finish(result)
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")
}

fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("exec-server: {error:#}");
            ExitCode::FAILURE
        }
    }
}
