//! The filesystem API (`fs/*`, SPEC section 7): method names, params,
//! results, the `fs/changed` notification and the error codes.
//!
//! Shapes follow upstream exec-server's where it has them (same names and
//! fields); everything else is an optional extension.
//!
//! **Paths** are absolute. A path is sent as `path` (a JSON string) or, for
//! names that are not UTF-8, as `pathBase64` (its raw bytes); exactly one
//! of the two. Paths and names the server reports come as text, with the
//! raw bytes added in a `…Base64` field only when they are not UTF-8 (the
//! text then has U+FFFD in place of the bad bytes): a client that ignores
//! the extra field still works for every UTF-8 name, and one that reads it
//! loses nothing.
//!
//! **Bytes** (file content) are base64, like every byte field.
//!
//! **Errors** carry a code per cause (see [`codes`]) and
//! `data: {kind, errno?}`, e.g. `{"kind": "notFound", "errno": "ENOENT"}`.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Method and notification names, exactly as they appear on the wire.
pub mod method {
    pub const READ_FILE: &str = "fs/readFile";
    pub const WRITE_FILE: &str = "fs/writeFile";
    pub const OPEN: &str = "fs/open";
    pub const READ_BLOCK: &str = "fs/readBlock";
    pub const WRITE_BLOCK: &str = "fs/writeBlock";
    pub const CLOSE: &str = "fs/close";
    pub const READ_DIRECTORY: &str = "fs/readDirectory";
    pub const GET_METADATA: &str = "fs/getMetadata";
    pub const CANONICALIZE: &str = "fs/canonicalize";
    pub const CREATE_DIRECTORY: &str = "fs/createDirectory";
    pub const REMOVE: &str = "fs/remove";
    pub const COPY: &str = "fs/copy";
    pub const RENAME: &str = "fs/rename";
    pub const WATCH: &str = "fs/watch";
    pub const UNWATCH: &str = "fs/unwatch";
    /// Notification.
    pub const CHANGED: &str = "fs/changed";
}

/// JSON-RPC error codes of the `fs/*` methods, one per [`FsErrorKind`].
/// A malformed path shares the standard invalid-params code; limits of the
/// connection (handles, watches) use `-32600` like every other limit.
pub mod codes {
    pub const NOT_FOUND: i64 = -32001;
    pub const ALREADY_EXISTS: i64 = -32002;
    pub const PERMISSION_DENIED: i64 = -32003;
    pub const IS_A_DIRECTORY: i64 = -32004;
    pub const NOT_A_DIRECTORY: i64 = -32005;
    pub const DIRECTORY_NOT_EMPTY: i64 = -32006;
    pub const TOO_LARGE: i64 = -32007;
    pub const OUTSIDE_ROOTS: i64 = -32008;
    pub const READ_ONLY: i64 = -32009;
    pub const NOT_A_FILE: i64 = -32010;
    pub const SYMLINK_LOOP: i64 = -32011;
    pub const NAME_TOO_LONG: i64 = -32012;
    pub const CROSSES_DEVICES: i64 = -32014;
    pub const NO_SPACE: i64 = -32015;
    pub const BUSY: i64 = -32016;
    pub const IO: i64 = -32017;
}

/// The cause of an `fs/*` error, as `data.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FsErrorKind {
    NotFound,
    AlreadyExists,
    PermissionDenied,
    IsADirectory,
    NotADirectory,
    DirectoryNotEmpty,
    TooLarge,
    OutsideRoots,
    ReadOnly,
    NotAFile,
    SymlinkLoop,
    NameTooLong,
    InvalidPath,
    CrossesDevices,
    NoSpace,
    Busy,
    Io,
}

impl FsErrorKind {
    /// The JSON-RPC code of this kind.
    pub fn code(self) -> i64 {
        match self {
            FsErrorKind::NotFound => codes::NOT_FOUND,
            FsErrorKind::AlreadyExists => codes::ALREADY_EXISTS,
            FsErrorKind::PermissionDenied => codes::PERMISSION_DENIED,
            FsErrorKind::IsADirectory => codes::IS_A_DIRECTORY,
            FsErrorKind::NotADirectory => codes::NOT_A_DIRECTORY,
            FsErrorKind::DirectoryNotEmpty => codes::DIRECTORY_NOT_EMPTY,
            FsErrorKind::TooLarge => codes::TOO_LARGE,
            FsErrorKind::OutsideRoots => codes::OUTSIDE_ROOTS,
            FsErrorKind::ReadOnly => codes::READ_ONLY,
            FsErrorKind::NotAFile => codes::NOT_A_FILE,
            FsErrorKind::SymlinkLoop => codes::SYMLINK_LOOP,
            FsErrorKind::NameTooLong => codes::NAME_TOO_LONG,
            FsErrorKind::InvalidPath => crate::jsonrpc::codes::INVALID_PARAMS,
            FsErrorKind::CrossesDevices => codes::CROSSES_DEVICES,
            FsErrorKind::NoSpace => codes::NO_SPACE,
            FsErrorKind::Busy => codes::BUSY,
            FsErrorKind::Io => codes::IO,
        }
    }
}

/// `data` of an `fs/*` error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FsErrorData {
    pub kind: FsErrorKind,
    /// The errno's symbolic name (`"ENOENT"`) when the OS reported one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<String>,
}

/// The `fs/*` limits of the server, in the `initialize` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FsLimits {
    /// Most bytes one `fs/readFile` or `fs/readBlock` returns, or one
    /// `fs/writeBlock` carries.
    pub max_read_bytes: u64,
    pub max_handles: u64,
    pub max_watches: u64,
    pub max_entries: u64,
}

// ---- paths ------------------------------------------------------------

/// Decodes a path sent as text or as base64 bytes (exactly one).
pub fn path_from_wire(
    text: Option<&str>,
    bytes: Option<&Bytes>,
    field: &str,
) -> Result<PathBuf, String> {
    match (text, bytes) {
        (Some(text), None) => Ok(PathBuf::from(text)),
        (None, Some(bytes)) => Ok(PathBuf::from(OsString::from_vec(bytes.to_vec()))),
        (None, None) => Err(format!("missing field `{field}` (or `{field}Base64`)")),
        (Some(_), Some(_)) => Err(format!(
            "`{field}` and `{field}Base64` are exclusive: send one"
        )),
    }
}

/// A path as sent to clients: text, plus the raw bytes when the text
/// cannot hold them.
pub fn path_to_wire(path: &Path) -> (String, Option<Bytes>) {
    let bytes = path.as_os_str().as_bytes();
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_string(), None),
        Err(_) => (
            String::from_utf8_lossy(bytes).into_owned(),
            Some(Bytes::copy_from_slice(bytes)),
        ),
    }
}

/// An accessor decoding a path sent as `FIELD` or `FIELDBase64`.
macro_rules! path_accessor {
    ($ty:ty, $text:ident, $bytes:ident, $fn:ident, $field:literal) => {
        impl $ty {
            /// The path, decoded from its text or base64 form.
            pub fn $fn(&self) -> Result<PathBuf, String> {
                path_from_wire(self.$text.as_deref(), self.$bytes.as_ref(), $field)
            }
        }
    };
}

/// A params struct that is just a path (`getMetadata`, `canonicalize`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PathParams {
    /// Absolute path (UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The path's raw bytes, for names that are not UTF-8.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::wire::base64_opt_bytes"
    )]
    #[schemars(with = "Option<String>")]
    pub path_base64: Option<Bytes>,
}
path_accessor!(PathParams, path, path_base64, path, "path");

impl PathParams {
    /// Params for `path`, choosing the text or the base64 form.
    pub fn new(path: &Path) -> PathParams {
        let (path, path_base64) = split(path);
        PathParams { path, path_base64 }
    }
}

/// The wire fields for a path a client sends: text when it is UTF-8,
/// base64 otherwise.
pub fn split(path: &Path) -> (Option<String>, Option<Bytes>) {
    match path.to_str() {
        Some(text) => (Some(text.to_string()), None),
        None => (
            None,
            Some(Bytes::copy_from_slice(path.as_os_str().as_bytes())),
        ),
    }
}

// ---- reading ----------------------------------------------------------

/// `fs/readFile`: the whole file, or `length` bytes from `offset`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadFileParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::wire::base64_opt_bytes"
    )]
    #[schemars(with = "Option<String>")]
    pub path_base64: Option<Bytes>,
    /// Start here (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// At most this many bytes (fewer at the end of the file); absent: to
    /// the end. Either way at most the server's `maxReadBytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
}
path_accessor!(ReadFileParams, path, path_base64, path, "path");

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadFileResponse {
    #[serde(with = "crate::wire::base64_bytes")]
    #[schemars(with = "String")]
    pub data_base64: Bytes,
}

/// `fs/open`: a handle for block reads (default) or block writes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenParams {
    /// Client-chosen id (at most 256 bytes); the server assigns `file-N`
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::wire::base64_opt_bytes"
    )]
    #[schemars(with = "Option<String>")]
    pub path_base64: Option<Bytes>,
    /// Open for `fs/writeBlock`; the write takes effect at `fs/close`
    /// (atomically, unless `atomic: false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write: Option<bool>,
    /// Write options, as in `fs/writeFile` (only with `write: true`).
    #[serde(flatten)]
    pub options: WriteOptions,
}
path_accessor!(OpenParams, path, path_base64, path, "path");

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenResponse {
    pub handle_id: String,
    /// Read handles: the file's size when it was opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// `fs/readBlock`: up to `len` bytes at `offset` of a read handle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadBlockParams {
    pub handle_id: String,
    pub offset: u64,
    pub len: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadBlockResponse {
    #[serde(with = "crate::wire::base64_bytes")]
    #[schemars(with = "String")]
    pub chunk: Bytes,
    /// The block reaches the end of the file.
    pub eof: bool,
}

/// `fs/writeBlock`: bytes at `offset` of a write handle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WriteBlockParams {
    pub handle_id: String,
    pub offset: u64,
    #[serde(with = "crate::wire::base64_bytes")]
    #[schemars(with = "String")]
    pub chunk: Bytes,
}

/// `fs/close`: closes a handle; a write handle commits its file, or with
/// `discard: true` throws it away (the target keeps its old content).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloseParams {
    pub handle_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discard: Option<bool>,
}

// ---- writing ----------------------------------------------------------

/// How `fs/writeFile` and write handles write.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WriteOptions {
    /// Add to the end instead of replacing (never atomic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub append: Option<bool>,
    /// Permission bits as a number (e.g. 420 for 0644). Default: an
    /// existing file keeps its mode, a new one gets 0666 less the umask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// Create missing parent directories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_parents: Option<bool>,
    /// Default true: write a temp file in the same directory and rename it
    /// over the target, so readers never see a partial file and a failed
    /// write leaves the old content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atomic: Option<bool>,
    /// `fsync` before the file replaces its target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<bool>,
}

/// `fs/writeFile`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WriteFileParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::wire::base64_opt_bytes"
    )]
    #[schemars(with = "Option<String>")]
    pub path_base64: Option<Bytes>,
    #[serde(with = "crate::wire::base64_bytes")]
    #[schemars(with = "String")]
    pub data_base64: Bytes,
    #[serde(flatten)]
    pub options: WriteOptions,
}
path_accessor!(WriteFileParams, path, path_base64, path, "path");

// ---- directories and metadata ----------------------------------------

/// `fs/readDirectory`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadDirectoryParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::wire::base64_opt_bytes"
    )]
    #[schemars(with = "Option<String>")]
    pub path_base64: Option<Bytes>,
    /// List subdirectories too (breadth first, never through symlinks);
    /// `fileName` is then the path below the listed directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursive: Option<bool>,
    /// With `recursive`: levels to list, 1 = only the directory's entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<u32>,
    /// Stop after this many entries (at most the server's `maxEntries`)
    /// and set `truncated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_entries: Option<u64>,
}
path_accessor!(ReadDirectoryParams, path, path_base64, path, "path");

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryEntry {
    pub file_name: String,
    /// The name's raw bytes, present only when it is not UTF-8.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::wire::base64_opt_bytes"
    )]
    #[schemars(with = "Option<String>")]
    pub file_name_base64: Option<Bytes>,
    /// The entry (a symlink's target, when inside the roots) is a directory.
    pub is_directory: bool,
    pub is_file: bool,
    #[serde(default)]
    pub is_symlink: bool,
    #[serde(default)]
    pub size: u64,
    /// Permission bits (`st_mode & 07777`).
    #[serde(default)]
    pub mode: u32,
    #[serde(default)]
    pub modified_at_ms: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadDirectoryResponse {
    pub entries: Vec<DirectoryEntry>,
    /// The entry cap ended the listing early.
    #[serde(default)]
    pub truncated: bool,
}

/// `fs/getMetadata` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub is_directory: bool,
    pub is_file: bool,
    pub is_symlink: bool,
    pub size: u64,
    /// Birth time where the file system keeps one, else 0.
    pub created_at_ms: i64,
    pub modified_at_ms: i64,
    #[serde(default)]
    pub mode: u32,
}

/// `fs/canonicalize` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanonicalizeResponse {
    pub path: String,
    /// The raw bytes, present only when the path is not UTF-8.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::wire::base64_opt_bytes"
    )]
    #[schemars(with = "Option<String>")]
    pub path_base64: Option<Bytes>,
}

impl CanonicalizeResponse {
    /// The path, lossless.
    pub fn path(&self) -> PathBuf {
        lossless(&self.path, self.path_base64.as_ref())
    }
}

/// A reported path: the bytes when given, else the text.
pub fn lossless(text: &str, bytes: Option<&Bytes>) -> PathBuf {
    match bytes {
        Some(bytes) => PathBuf::from(OsString::from_vec(bytes.to_vec())),
        None => PathBuf::from(text),
    }
}

/// `fs/createDirectory`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateDirectoryParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::wire::base64_opt_bytes"
    )]
    #[schemars(with = "Option<String>")]
    pub path_base64: Option<Bytes>,
    /// Create missing parents; an existing directory is then fine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursive: Option<bool>,
    /// Permission bits, set exactly (no umask), also on an existing
    /// directory (like `install -d -m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}
path_accessor!(CreateDirectoryParams, path, path_base64, path, "path");

/// `fs/remove`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoveParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::wire::base64_opt_bytes"
    )]
    #[schemars(with = "Option<String>")]
    pub path_base64: Option<Bytes>,
    /// Remove a directory with its content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursive: Option<bool>,
    /// A missing path is success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
}
path_accessor!(RemoveParams, path, path_base64, path, "path");

/// `fs/copy` (files; trees with `recursive`), keeping modes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CopyParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_path: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::wire::base64_opt_bytes"
    )]
    #[schemars(with = "Option<String>")]
    pub source_path_base64: Option<Bytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_path: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::wire::base64_opt_bytes"
    )]
    #[schemars(with = "Option<String>")]
    pub destination_path_base64: Option<Bytes>,
    #[serde(default)]
    pub recursive: bool,
}
path_accessor!(
    CopyParams,
    source_path,
    source_path_base64,
    source,
    "sourcePath"
);
path_accessor!(
    CopyParams,
    destination_path,
    destination_path_base64,
    destination,
    "destinationPath"
);

/// `fs/rename`: within one file system, replacing the destination.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RenameParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_path: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::wire::base64_opt_bytes"
    )]
    #[schemars(with = "Option<String>")]
    pub source_path_base64: Option<Bytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_path: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::wire::base64_opt_bytes"
    )]
    #[schemars(with = "Option<String>")]
    pub destination_path_base64: Option<Bytes>,
}
path_accessor!(
    RenameParams,
    source_path,
    source_path_base64,
    source,
    "sourcePath"
);
path_accessor!(
    RenameParams,
    destination_path,
    destination_path_base64,
    destination,
    "destinationPath"
);

// ---- watching ---------------------------------------------------------

/// `fs/watch`: a directory (or one file) for `fs/changed` notifications.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WatchParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::wire::base64_opt_bytes"
    )]
    #[schemars(with = "Option<String>")]
    pub path_base64: Option<Bytes>,
    /// Watch the whole tree below, following it as it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursive: Option<bool>,
}
path_accessor!(WatchParams, path, path_base64, path, "path");

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WatchResponse {
    pub watch_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnwatchParams {
    pub watch_id: String,
}

/// What happened, in `fs/changed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ChangeKind {
    Created,
    Modified,
    /// Permissions, owner, timestamps or link count.
    Metadata,
    Deleted,
    /// Renamed inside the watched tree; `oldPath` says from where.
    Renamed,
    /// Changes were lost (the client read too slowly, or the tree outgrew
    /// the server's directory limit): rescan `path`.
    Overflow,
}

/// `fs/changed` notification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangedNotification {
    pub watch_id: String,
    pub path: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::wire::base64_opt_bytes"
    )]
    #[schemars(with = "Option<String>")]
    pub path_base64: Option<Bytes>,
    pub kind: ChangeKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::wire::base64_opt_bytes"
    )]
    #[schemars(with = "Option<String>")]
    pub old_path_base64: Option<Bytes>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_travel_as_text_or_bytes() {
        let params: PathParams = serde_json::from_value(json!({"path": "/a/b"})).unwrap();
        assert_eq!(params.path().unwrap(), PathBuf::from("/a/b"));
        let params: PathParams = serde_json::from_value(json!({"pathBase64": "L2H/"})).unwrap();
        assert_eq!(params.path().unwrap().as_os_str().as_bytes(), b"/a\xff");
        let both: PathParams =
            serde_json::from_value(json!({"path": "/a", "pathBase64": "L2E="})).unwrap();
        assert!(both.path().unwrap_err().contains("exclusive"));
        let neither: PathParams = serde_json::from_value(json!({})).unwrap();
        assert!(neither.path().unwrap_err().contains("missing field `path`"));
        let odd = Path::new(std::ffi::OsStr::from_bytes(b"/x\xe9"));
        let (text, bytes) = path_to_wire(odd);
        assert_eq!(text, "/x\u{fffd}");
        assert_eq!(lossless(&text, bytes.as_ref()), odd);
        assert_eq!(path_to_wire(Path::new("/ok")), ("/ok".to_string(), None));
        assert_eq!(
            serde_json::to_value(PathParams::new(odd)).unwrap(),
            json!({"pathBase64": "L3jp"})
        );
    }

    #[test]
    fn upstream_shapes_decode() {
        let open: OpenParams =
            serde_json::from_value(json!({"handleId": "h1", "path": "/f", "sandbox": null}))
                .unwrap();
        assert_eq!(open.handle_id.as_deref(), Some("h1"));
        assert_eq!(open.write, None);
        let write: WriteFileParams =
            serde_json::from_value(json!({"path": "/f", "dataBase64": "aGk=", "mode": 493}))
                .unwrap();
        assert_eq!(write.data_base64, Bytes::from_static(b"hi"));
        assert_eq!(write.options.mode, Some(0o755));
        let copy: CopyParams = serde_json::from_value(
            json!({"sourcePath": "/a", "destinationPath": "/b", "recursive": true}),
        )
        .unwrap();
        assert_eq!(copy.source().unwrap(), PathBuf::from("/a"));
        assert_eq!(copy.destination().unwrap(), PathBuf::from("/b"));
        assert_eq!(
            serde_json::to_value(ChangeKind::Renamed).unwrap(),
            json!("renamed")
        );
        assert_eq!(FsErrorKind::NotFound.code(), codes::NOT_FOUND);
        assert_eq!(
            serde_json::to_value(FsErrorKind::IsADirectory).unwrap(),
            json!("isADirectory")
        );
    }
}
