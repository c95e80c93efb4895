//! The filesystem API (`fs/*`): one typed call per method, helpers for
//! whole files, and streams for files of any size.
//!
//! - Typed calls (`fs_read_file`, `fs_open`, ..., `fs_watch`) send the
//!   protocol's params and return its results: each is one
//!   [`ExecServerClient::call`] of the method table's `fs/*` entry.
//! - [`ExecServerClient::read_file`] and [`ExecServerClient::write_file`]
//!   move a whole file, in blocks when it is larger than one call may carry.
//! - [`FsReader`] (an [`AsyncRead`]) and [`FsWriter`] (an [`AsyncWrite`])
//!   stream large files through `fs/open` handles, keeping a few block
//!   requests in flight so the network, the server's disk and the client
//!   all work at once. A writer replaces its target atomically at
//!   [`FsWriter::finish`] (or `shutdown`); a writer dropped unfinished
//!   discards what it wrote, and the target keeps its old content.
//!
//! `fs/changed` notifications arrive through
//! [`ExecServerClient::take_events`] as
//! `ClientEvent::Notification(ServerNotification::FsChanged(_))`.

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use exec_server_protocol::fs::{
    self, CanonicalizeResponse, CloseParams, CopyParams, CreateDirectoryParams, Metadata,
    OpenParams, OpenResponse, PathParams, ReadBlockParams, ReadBlockResponse, ReadDirectoryParams,
    ReadDirectoryResponse, ReadFileParams, ReadFileResponse, RemoveParams, RenameParams,
    UnwatchParams, WatchParams, WatchResponse, WriteBlockParams, WriteFileParams, WriteOptions,
};
use exec_server_protocol::methods::{
    FsCanonicalize, FsClose, FsCopy, FsCreateDirectory, FsGetMetadata, FsOpen, FsReadBlock,
    FsReadDirectory, FsReadFile, FsRemove, FsRename, FsUnwatch, FsWatch, FsWriteBlock, FsWriteFile,
};
use exec_server_protocol::process::EmptyResponse;
use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{ClientError, ExecServerClient};

/// Block size of streams when the server does not say its limit.
const DEFAULT_BLOCK: u64 = 4 * 1024 * 1024;
/// Block requests a stream keeps in flight.
const IN_FLIGHT: usize = 3;

impl ExecServerClient {
    /// `fs/readFile`.
    pub async fn fs_read_file(
        &self,
        params: ReadFileParams,
    ) -> Result<ReadFileResponse, ClientError> {
        self.call::<FsReadFile>(params).await
    }

    /// `fs/writeFile`.
    pub async fn fs_write_file(
        &self,
        params: WriteFileParams,
    ) -> Result<EmptyResponse, ClientError> {
        self.call::<FsWriteFile>(params).await
    }

    /// `fs/open`.
    pub async fn fs_open(&self, params: OpenParams) -> Result<OpenResponse, ClientError> {
        self.call::<FsOpen>(params).await
    }

    /// `fs/readBlock`.
    pub async fn fs_read_block(
        &self,
        params: ReadBlockParams,
    ) -> Result<ReadBlockResponse, ClientError> {
        self.call::<FsReadBlock>(params).await
    }

    /// `fs/writeBlock`.
    pub async fn fs_write_block(
        &self,
        params: WriteBlockParams,
    ) -> Result<EmptyResponse, ClientError> {
        self.call::<FsWriteBlock>(params).await
    }

    /// `fs/close`.
    pub async fn fs_close(&self, params: CloseParams) -> Result<EmptyResponse, ClientError> {
        self.call::<FsClose>(params).await
    }

    /// `fs/readDirectory`.
    pub async fn fs_read_directory(
        &self,
        params: ReadDirectoryParams,
    ) -> Result<ReadDirectoryResponse, ClientError> {
        self.call::<FsReadDirectory>(params).await
    }

    /// `fs/getMetadata`.
    pub async fn fs_get_metadata(&self, path: &Path) -> Result<Metadata, ClientError> {
        self.call::<FsGetMetadata>(PathParams::new(path)).await
    }

    /// `fs/canonicalize`.
    pub async fn fs_canonicalize(&self, path: &Path) -> Result<CanonicalizeResponse, ClientError> {
        self.call::<FsCanonicalize>(PathParams::new(path)).await
    }

    /// `fs/createDirectory`.
    pub async fn fs_create_directory(
        &self,
        params: CreateDirectoryParams,
    ) -> Result<EmptyResponse, ClientError> {
        self.call::<FsCreateDirectory>(params).await
    }

    /// `fs/remove`.
    pub async fn fs_remove(&self, params: RemoveParams) -> Result<EmptyResponse, ClientError> {
        self.call::<FsRemove>(params).await
    }

    /// `fs/copy`.
    pub async fn fs_copy(&self, params: CopyParams) -> Result<EmptyResponse, ClientError> {
        self.call::<FsCopy>(params).await
    }

    /// `fs/rename`.
    pub async fn fs_rename(&self, params: RenameParams) -> Result<EmptyResponse, ClientError> {
        self.call::<FsRename>(params).await
    }

    /// `fs/watch`: changes come as `fs/changed` through
    /// [`take_events`](Self::take_events).
    pub async fn fs_watch(&self, params: WatchParams) -> Result<WatchResponse, ClientError> {
        self.call::<FsWatch>(params).await
    }

    /// `fs/unwatch`.
    pub async fn fs_unwatch(&self, watch_id: &str) -> Result<EmptyResponse, ClientError> {
        let params = UnwatchParams {
            watch_id: watch_id.to_string(),
        };
        self.call::<FsUnwatch>(params).await
    }

    /// The most bytes one block call may carry on this server.
    fn block_size(&self) -> u64 {
        let limits = self.server_info().and_then(|info| info.limits);
        let read = limits
            .as_ref()
            .and_then(|l| l.fs.as_ref())
            .map_or(DEFAULT_BLOCK, |fs| fs.max_read_bytes);
        // A write block travels as base64 inside one incoming message.
        let write = limits.map_or(DEFAULT_BLOCK, |l| {
            l.max_message_bytes.saturating_sub(4096) / 4 * 3
        });
        read.min(write).clamp(1, DEFAULT_BLOCK)
    }

    /// The whole file, read in blocks.
    pub async fn read_file(&self, path: &Path) -> Result<Vec<u8>, ClientError> {
        let mut reader = self.open_reader(path).await?;
        let mut data = Vec::with_capacity(reader.size().unwrap_or(0) as usize);
        while let Some(chunk) = reader.next_chunk().await? {
            data.extend_from_slice(&chunk);
        }
        Ok(data)
    }

    /// Replaces a file with `data`, atomically, in one call or in blocks.
    pub async fn write_file(&self, path: &Path, data: impl Into<Bytes>) -> Result<(), ClientError> {
        let data = data.into();
        if (data.len() as u64) <= self.block_size() {
            let (path, path_base64) = fs::split(path);
            self.fs_write_file(WriteFileParams {
                path,
                path_base64,
                data_base64: data,
                options: WriteOptions::default(),
            })
            .await?;
            return Ok(());
        }
        let mut writer = self.create_writer(path, WriteOptions::default()).await?;
        writer.write_chunk(data).await?;
        writer.finish().await
    }

    /// Opens a remote file for streaming reads.
    pub async fn open_reader(&self, path: &Path) -> Result<FsReader, ClientError> {
        let (path, path_base64) = fs::split(path);
        let opened = self
            .fs_open(OpenParams {
                path,
                path_base64,
                ..Default::default()
            })
            .await?;
        Ok(FsReader {
            client: self.clone(),
            handle_id: opened.handle_id,
            size: opened.size,
            block: self.block_size(),
            next_offset: 0,
            in_flight: VecDeque::new(),
            eof: false,
            buffer: Bytes::new(),
            closed: false,
        })
    }

    /// Opens a remote file for streaming writes with `options` (atomic
    /// unless `atomic: Some(false)`).
    pub async fn create_writer(
        &self,
        path: &Path,
        options: WriteOptions,
    ) -> Result<FsWriter, ClientError> {
        let (path, path_base64) = fs::split(path);
        let opened = self
            .fs_open(OpenParams {
                path,
                path_base64,
                write: Some(true),
                options,
                ..Default::default()
            })
            .await?;
        Ok(FsWriter {
            client: self.clone(),
            handle_id: Some(opened.handle_id),
            block: self.block_size() as usize,
            offset: 0,
            pending: Vec::new(),
            in_flight: VecDeque::new(),
            closing: None,
        })
    }
}

type Block = BoxFuture<'static, Result<ReadBlockResponse, ClientError>>;

/// A remote file read in blocks, a few requests ahead. Also an
/// [`AsyncRead`]. Dropping it closes the handle in the background.
pub struct FsReader {
    client: ExecServerClient,
    handle_id: String,
    size: Option<u64>,
    block: u64,
    next_offset: u64,
    in_flight: VecDeque<Block>,
    eof: bool,
    buffer: Bytes,
    closed: bool,
}

impl FsReader {
    /// The file's size when it was opened.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    fn top_up(&mut self) {
        while !self.eof && self.in_flight.len() < IN_FLIGHT {
            let client = self.client.clone();
            let params = ReadBlockParams {
                handle_id: self.handle_id.clone(),
                offset: self.next_offset,
                len: self.block,
            };
            self.next_offset += self.block;
            self.in_flight
                .push_back(Box::pin(async move { client.fs_read_block(params).await }));
        }
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, ClientError>> {
        if self.eof && self.in_flight.is_empty() {
            return Poll::Ready(Ok(None));
        }
        self.top_up();
        let front = self.in_flight.front_mut().expect("a block is in flight");
        let block = ready!(front.as_mut().poll(cx));
        self.in_flight.pop_front();
        let block = block?;
        if block.eof {
            // Blocks asked for beyond the end are empty: drop them.
            self.eof = true;
            self.in_flight.clear();
        }
        Poll::Ready(Ok(Some(block.chunk)))
    }

    /// The next chunk of the file, `None` at its end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        if !self.buffer.is_empty() {
            return Ok(Some(std::mem::take(&mut self.buffer)));
        }
        loop {
            match std::future::poll_fn(|cx| self.poll_chunk(cx)).await? {
                Some(chunk) if chunk.is_empty() && !self.eof => continue,
                Some(chunk) if chunk.is_empty() => return Ok(None),
                other => return Ok(other),
            }
        }
    }

    /// Closes the handle now (dropping the reader does it in the background).
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.closed = true;
        self.in_flight.clear();
        let params = CloseParams {
            handle_id: self.handle_id.clone(),
            discard: None,
        };
        self.client.fs_close(params).await.map(|_| ())
    }
}

impl Drop for FsReader {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        let client = self.client.clone();
        let params = CloseParams {
            handle_id: self.handle_id.clone(),
            discard: None,
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { client.fs_close(params).await });
        }
    }
}

fn io_error(error: ClientError) -> io::Error {
    io::Error::other(error)
}

impl AsyncRead for FsReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.buffer.is_empty() {
            match ready!(self.poll_chunk(cx)).map_err(io_error)? {
                Some(chunk) => self.buffer = chunk,
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = self.buffer.len().min(buf.remaining());
        buf.put_slice(&self.buffer.split_to(n));
        Poll::Ready(Ok(()))
    }
}

type Written = BoxFuture<'static, Result<EmptyResponse, ClientError>>;

/// A remote file written in blocks, a few requests in flight. Also an
/// [`AsyncWrite`] whose `shutdown` commits the file. Dropped unfinished,
/// it discards what it wrote (in the background).
pub struct FsWriter {
    client: ExecServerClient,
    /// `None` once finished or discarded.
    handle_id: Option<String>,
    block: usize,
    offset: u64,
    pending: Vec<u8>,
    in_flight: VecDeque<Written>,
    closing: Option<Written>,
}

impl FsWriter {
    fn launch(&mut self, chunk: Bytes) {
        let Some(handle_id) = self.handle_id.clone() else {
            return;
        };
        let client = self.client.clone();
        let params = WriteBlockParams {
            handle_id,
            offset: self.offset,
            chunk,
        };
        self.offset += params.chunk.len() as u64;
        self.in_flight
            .push_back(Box::pin(async move { client.fs_write_block(params).await }));
    }

    /// Waits until at most `keep` writes are in flight.
    fn poll_drain(&mut self, cx: &mut Context<'_>, keep: usize) -> Poll<Result<(), ClientError>> {
        while self.in_flight.len() > keep {
            let front = self.in_flight.front_mut().expect("a write is in flight");
            let written = ready!(front.as_mut().poll(cx));
            self.in_flight.pop_front();
            written?;
        }
        Poll::Ready(Ok(()))
    }

    /// Sends `data`, in blocks, waiting while too many are in flight.
    pub async fn write_chunk(&mut self, data: impl Into<Bytes>) -> Result<(), ClientError> {
        let mut data: Bytes = data.into();
        if !self.pending.is_empty() {
            self.pending.extend_from_slice(&data);
            data = Bytes::from(std::mem::take(&mut self.pending));
        }
        while !data.is_empty() {
            std::future::poll_fn(|cx| self.poll_drain(cx, IN_FLIGHT - 1)).await?;
            let n = data.len().min(self.block);
            self.launch(data.split_to(n));
        }
        Ok(())
    }

    /// Writes what is left and commits: an atomic writer replaces its
    /// target now.
    pub async fn finish(mut self) -> Result<(), ClientError> {
        std::future::poll_fn(|cx| self.poll_finish(cx)).await
    }

    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
        if self.closing.is_none() {
            if !self.pending.is_empty() {
                let rest = Bytes::from(std::mem::take(&mut self.pending));
                self.launch(rest);
            }
            ready!(self.poll_drain(cx, 0))?;
            let Some(handle_id) = self.handle_id.take() else {
                return Poll::Ready(Ok(()));
            };
            let client = self.client.clone();
            let params = CloseParams {
                handle_id,
                discard: None,
            };
            self.closing = Some(Box::pin(async move { client.fs_close(params).await }));
        }
        let closing = self.closing.as_mut().expect("closing");
        let result = ready!(closing.as_mut().poll(cx));
        self.closing = None;
        Poll::Ready(result.map(|_| ()))
    }

    /// Throws away what was written; the target keeps its old content.
    pub async fn discard(mut self) -> Result<(), ClientError> {
        self.in_flight.clear();
        let Some(handle_id) = self.handle_id.take() else {
            return Ok(());
        };
        let params = CloseParams {
            handle_id,
            discard: Some(true),
        };
        self.client.fs_close(params).await.map(|_| ())
    }
}

impl Drop for FsWriter {
    fn drop(&mut self) {
        let Some(handle_id) = self.handle_id.take() else {
            return;
        };
        let client = self.client.clone();
        let params = CloseParams {
            handle_id,
            discard: Some(true),
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { client.fs_close(params).await });
        }
    }
}

impl AsyncWrite for FsWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.pending.len() >= self.block {
            ready!(self.poll_drain(cx, IN_FLIGHT - 1)).map_err(io_error)?;
            let block = self.block;
            let chunk: Vec<u8> = self.pending.drain(..block).collect();
            self.launch(Bytes::from(chunk));
        }
        let room = self.block - self.pending.len().min(self.block);
        let n = buf.len().min(room.max(1));
        self.pending.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.pending.is_empty() {
            let rest = Bytes::from(std::mem::take(&mut self.pending));
            self.launch(rest);
        }
        self.poll_drain(cx, 0).map_err(io_error)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_finish(cx).map_err(io_error)
    }
}
