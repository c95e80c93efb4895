//! One `async fn` per method of the table, grouped by area: the router
//! calls `handlers::area::name(cx, params)` for the entry
//! `area::name => Type = "wire/name", Params => Result` of
//! [`exec_server_protocol::for_each_method!`].
//!
//! A handler takes the connection's [`Context`](crate::context::Context)
//! and its typed params and returns `Result<M::Result, ApiError>`; the two
//! that answer from a task of their own (`process/wait`, a long-poll
//! `process/read`) return a [`Reply`](crate::router::Reply) instead.
//! Handlers never pick JSON-RPC codes: they name the fault with an
//! [`ApiError`](crate::error::ApiError) variant.

pub(crate) mod fs;
pub(crate) mod handshake;
pub(crate) mod observe;
pub(crate) mod process;
pub(crate) mod v0;
