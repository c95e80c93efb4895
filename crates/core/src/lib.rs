//! The process core: everything exec-server does with operating-system
//! processes, independent of any protocol or transport.
//!
//! - [`spawn_process`] (in [`process`]) validates a [`ProcessConfig`],
//!   allocates pipes or a PTY ([`pty`]) and creates the child through the
//!   fork-free spawner in `spawn`, which also arms the parent-death signal.
//! - The output pump (`pump`) is one task per process: it reads stdout and
//!   stderr (or the PTY), keeps a bounded copy in [`retention`], sends
//!   [`ProcessEvent`]s with per-process sequence numbers through a bounded
//!   channel (backpressure, never loss), reaps the child through a pidfd and
//!   reports its exit after its output.
//! - The stdin writer (`stdin`) feeds queued writes to the child; its
//!   queue is bounded in bytes.
//! - The screen (`screen`) of a PTY process is a terminal emulator built
//!   from retention when a snapshot asks for it, or by the pump before
//!   retention drops output, and kept only within a server-wide
//!   [`ScreenBudget`]; a terminal size alone allocates nothing.
//! - [`limits`] raises the open-files limit for the server and restores
//!   the original one in every child.
//! - [`ProcessGroups`] (in [`groups`]) is the registry of live process
//!   groups, each under its owner (a session): killed with the owner, at
//!   shutdown with [`GracefulKill`] (SIGTERM, a grace, SIGKILL: the one
//!   implementation, also behind `ProcessHandle::terminate`), forgotten
//!   once empty. It alone feeds the watchdog (`watchdog`), a helper process
//!   that kills every group still registered if the server itself is
//!   killed without cleaning up.
//! - [`sandbox`] confines a process and its descendants (Landlock, seccomp,
//!   capabilities, read-only subpaths) when its config carries a
//!   [`SandboxPolicy`]; the child applies it before `execve`.
//!
//! Every child is the leader of its own process group (PTY children lead
//! their own session, with the PTY as controlling terminal), so signals and
//! kills reach grandchildren and background jobs too.

pub mod groups;
pub mod limits;
pub mod process;
pub mod pty;
pub mod retention;
pub mod sandbox;

mod screen;

mod pump;
mod spawn;
mod stdin;
mod watchdog;

pub use groups::{GracefulKill, GroupOwner, ProcessGroups};
pub use process::{
    ControlError, ExitStatus, OutputStream, Process, ProcessConfig, ProcessEvent, ProcessHandle,
    ScreenText, SpawnError, StdinMode, StdioMode, signal_name, signal_number, signal_process_group,
    spawn_process,
};
pub use pty::TerminalSize;
pub use pump::MAX_CHUNK_BYTES;
pub use retention::{RetainedChunk, RetainedRead};
pub use sandbox::{AppliedSandbox, FilesystemAccess, NetworkAccess, SandboxPolicy};
pub use screen::{DEFAULT_SCREEN_MEMORY_BYTES, ScreenBudget, screen_bytes};
pub use stdin::DEFAULT_STDIN_QUEUE_BYTES;
