//! Reading: whole files or ranges, and handles for block reads.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, OFlags};

use crate::FileSystem;
use crate::error::{ErrorKind, FsError, FsResult, OnPath};
use crate::resolve::Access;

/// Opens a regular file for reading beneath its root. `O_NONBLOCK` keeps a
/// FIFO from blocking the open until a writer appears; it is refused right
/// after as not a file (reads of regular files ignore the flag).
fn open_regular(fs: &FileSystem, path: &Path) -> FsResult<(File, u64)> {
    let located = fs.locate(path, Access::Read)?;
    let fd = located.open(OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY)?;
    let stat = rustix::fs::fstat(&fd).on(path)?;
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => {}
        FileType::Directory => {
            return Err(FsError::os(rustix::io::Errno::ISDIR, path));
        }
        _ => {
            return Err(FsError::at(
                ErrorKind::NotAFile,
                path,
                "not a regular file (a FIFO, socket or device)",
            ));
        }
    }
    Ok((File::from(fd), stat.st_size as u64))
}

pub(crate) fn too_large(path: &Path, size: u64, max: u64) -> FsError {
    FsError::at(
        ErrorKind::TooLarge,
        path,
        format!(
            "{size} bytes is more than the limit of {max} bytes per call; read it in ranges (offset and length) or with fs/open and fs/readBlock"
        ),
    )
}

/// Reads up to `want` bytes at `offset`, fewer only at end of file.
fn read_at(file: &File, offset: u64, want: u64, path: &Path) -> FsResult<Vec<u8>> {
    let mut buffer = vec![0u8; want as usize];
    let mut filled = 0usize;
    while filled < buffer.len() {
        match file.read_at(&mut buffer[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error).on(path),
        }
    }
    buffer.truncate(filled);
    Ok(buffer)
}

pub(crate) fn read_file(
    fs: &FileSystem,
    path: &Path,
    offset: u64,
    length: Option<u64>,
    max: u64,
) -> FsResult<Vec<u8>> {
    let (file, size) = open_regular(fs, path)?;
    match length {
        Some(length) if length > max => Err(too_large(path, length, max)),
        Some(length) => read_at(&file, offset, length, path),
        None => {
            let available = size.saturating_sub(offset);
            if available > max {
                return Err(too_large(path, available, max));
            }
            // One byte more than the size tells a file that grew since the
            // fstat from one that did not; a grown file is read on, up to
            // one byte more than allowed.
            let mut data = read_at(&file, offset, available + 1, path)?;
            if data.len() as u64 > available {
                let at = offset + data.len() as u64;
                let rest = (max + 1).saturating_sub(data.len() as u64);
                data.extend(read_at(&file, at, rest, path)?);
            }
            if data.len() as u64 > max {
                return Err(too_large(path, data.len() as u64, max));
            }
            Ok(data)
        }
    }
}

/// An open regular file for reads at any offset. The file stays the one
/// that was opened even if its path is replaced meanwhile.
#[derive(Debug)]
pub struct ReadHandle {
    file: File,
    size: u64,
    path: PathBuf,
}

pub(crate) fn open(fs: &FileSystem, path: &Path) -> FsResult<ReadHandle> {
    let (file, size) = open_regular(fs, path)?;
    Ok(ReadHandle {
        file,
        size,
        path: path.to_path_buf(),
    })
}

impl ReadHandle {
    /// The file's size when it was opened.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Up to `len` bytes at `offset`, and whether they reach the end of the
    /// file (as it is now).
    pub fn read_block(&self, offset: u64, len: u64) -> FsResult<(Vec<u8>, bool)> {
        let data = read_at(&self.file, offset, len, &self.path)?;
        let end = offset.saturating_add(data.len() as u64);
        let eof = (data.len() as u64) < len || {
            let now = self.file.metadata().on(&self.path)?.len();
            end >= now
        };
        Ok((data, eof))
    }
}
