//! The machine-readable contract: one JSON Schema document (draft 2020-12)
//! describing every request's params and result and every notification's
//! params, generated from the Rust types in this crate.
//!
//! The committed copy lives at `schema/exec-server.schema.json`; a test
//! fails when it differs from what the types generate. Regenerate it with
//! `UPDATE_SCHEMA=1 cargo test -p exec-server-protocol schema`.

use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use crate::{process, v0};

/// Builds the schema document.
pub fn document() -> Value {
    let mut generator = SchemaGenerator::new(SchemaSettings::draft2020_12());
    let mut methods = Map::new();
    let mut method = |name: &str, params: Value, result: Value| {
        methods.insert(
            name.to_string(),
            json!({"params": params, "result": result}),
        );
    };
    fn s<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
        generator.subschema_for::<T>().to_value()
    }
    let g = &mut generator;
    method(
        v0::method::INITIALIZE,
        s::<v0::InitializeParams>(g),
        s::<v0::InitializeResponse>(g),
    );
    method(
        v0::method::EXEC,
        s::<v0::ExecParams>(g),
        s::<v0::ExecResponse>(g),
    );
    method(
        v0::method::EXEC_WRITE,
        s::<v0::WriteParams>(g),
        s::<v0::WriteResponse>(g),
    );
    method(
        v0::method::EXEC_TERMINATE,
        s::<v0::TerminateParams>(g),
        s::<v0::TerminateResponse>(g),
    );
    method(
        process::method::START,
        s::<process::StartParams>(g),
        s::<process::StartResponse>(g),
    );
    method(
        process::method::WRITE,
        s::<process::WriteParams>(g),
        s::<process::WriteResponse>(g),
    );
    method(
        process::method::CLOSE_STDIN,
        s::<process::ProcessIdParams>(g),
        s::<process::EmptyResponse>(g),
    );
    method(
        process::method::RESIZE,
        s::<process::ResizeParams>(g),
        s::<process::EmptyResponse>(g),
    );
    method(
        process::method::SIGNAL,
        s::<process::SignalParams>(g),
        s::<process::SignalResponse>(g),
    );
    method(
        process::method::TERMINATE,
        s::<process::TerminateParams>(g),
        s::<process::TerminateResponse>(g),
    );
    method(
        process::method::WAIT,
        s::<process::WaitParams>(g),
        s::<process::WaitResponse>(g),
    );
    method(
        process::method::READ,
        s::<process::ReadParams>(g),
        s::<process::ReadResponse>(g),
    );
    method(
        process::method::SNAPSHOT,
        s::<process::ProcessIdParams>(g),
        s::<process::SnapshotResponse>(g),
    );
    method(
        process::method::LIST,
        s::<process::ListParams>(g),
        s::<process::ListResponse>(g),
    );
    method(
        process::method::RELEASE,
        s::<process::ProcessIdParams>(g),
        s::<process::EmptyResponse>(g),
    );

    let mut notifications = Map::new();
    let mut notification = |name: &str, params: Value| {
        notifications.insert(name.to_string(), json!({"params": params}));
    };
    notification(
        v0::method::EXEC_OUTPUT_DELTA,
        s::<v0::ExecOutputDeltaNotification>(g),
    );
    notification(v0::method::EXEC_EXITED, s::<v0::ExecExitedNotification>(g));
    notification(process::method::OUTPUT, s::<process::OutputNotification>(g));
    notification(process::method::EXITED, s::<process::ExitedNotification>(g));
    notification(process::method::CLOSED, s::<process::ClosedNotification>(g));
    // `initialized` is the one notification a client sends; it has no params.
    notification(v0::method::INITIALIZED, json!({}));

    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "exec-server protocol",
        "description": "Params and results of every method, and params of every notification. Byte fields are base64 strings. Generated from the Rust types in crates/protocol; do not edit by hand.",
        "methods": methods,
        "notifications": notifications,
        "$defs": generator.take_definitions(true),
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    fn committed_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schema/exec-server.schema.json")
    }

    #[test]
    fn schema_file_is_up_to_date() {
        let generated = serde_json::to_string_pretty(&super::document()).unwrap() + "\n";
        let path = committed_path();
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(&path, &generated).unwrap();
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{} is stale: run `UPDATE_SCHEMA=1 cargo test -p exec-server-protocol schema` and commit it",
            path.display()
        );
    }

    #[test]
    fn every_method_and_notification_is_described() {
        let doc = super::document();
        let methods = doc["methods"].as_object().unwrap();
        for name in [
            "initialize",
            "command/exec",
            "process/start",
            "process/wait",
            "process/read",
            "process/release",
        ] {
            assert!(methods.contains_key(name), "{name} missing");
        }
        assert_eq!(methods.len(), 15);
        assert_eq!(doc["notifications"].as_object().unwrap().len(), 6);
        // The wait pattern is on the wire as `match`.
        let wait = &doc["$defs"]["WaitParams"]["properties"];
        assert!(wait.get("match").is_some(), "{wait}");
    }
}
