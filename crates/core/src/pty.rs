//! Pseudo-terminal allocation with rustix: a non-blocking master for the
//! server and a slave that becomes the child's controlling terminal.

use std::io;
use std::os::fd::OwnedFd;

use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::Winsize;

/// A terminal size in character cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TerminalSize {
    pub rows: u16,
    pub cols: u16,
}

impl Default for TerminalSize {
    /// 24 rows by 80 columns, the v0 default.
    fn default() -> Self {
        TerminalSize { rows: 24, cols: 80 }
    }
}

pub(crate) struct PtyPair {
    /// Non-blocking, close-on-exec; read for output, written for input.
    pub master: OwnedFd,
    /// Close-on-exec; handed to the child as fd 0, 1 and 2, then closed here
    /// so that the master sees end-of-file (EIO) once the child side is gone.
    pub slave: OwnedFd,
}

pub(crate) fn open_pty(size: TerminalSize) -> io::Result<PtyPair> {
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    set_size(&slave, size)?;
    rustix::io::ioctl_fionbio(&master, true)?;
    Ok(PtyPair { master, slave })
}

/// Sets the window size; the kernel delivers SIGWINCH to the foreground
/// process group when it changes.
pub(crate) fn set_size(fd: &OwnedFd, size: TerminalSize) -> io::Result<()> {
    rustix::termios::tcsetwinsize(
        fd,
        Winsize {
            ws_row: size.rows,
            ws_col: size.cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )?;
    Ok(())
}

/// The window size the kernel holds for the terminal.
pub(crate) fn get_size(fd: &OwnedFd) -> io::Result<TerminalSize> {
    let size = rustix::termios::tcgetwinsize(fd)?;
    Ok(TerminalSize {
        rows: size.ws_row,
        cols: size.ws_col,
    })
}
