//! Protocol v0 over stdio against the real binary: handshake, every v0 error
//! message, the envelope rules, and process behaviour.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test]
async fn handshake_is_enforced_with_the_exact_v0_messages() {
    let mut rpc = Rpc::new(StdioTransport::start(&[]));
    let error = rpc.err("command/exec", sh("true")).await;
    assert_eq!(
        error,
        json!({"code": -32600, "message": "client must call initialize before using exec methods"})
    );
    // Even unknown methods get the handshake error first.
    let error = rpc.err("no/such/method", json!({})).await;
    assert_eq!(
        error["message"],
        "client must call initialize before using exec methods"
    );

    let result = rpc.ok("initialize", json!({"clientName": "t"})).await;
    assert_eq!(result["protocolVersion"], "exec-server.v0");
    let error = rpc.err("command/exec", sh("true")).await;
    assert_eq!(
        error,
        json!({"code": -32600, "message": "client must send initialized before using exec methods"})
    );
    let error = rpc.err("initialize", json!({"clientName": "t"})).await;
    assert_eq!(
        error,
        json!({"code": -32600, "message": "initialize may only be sent once per connection"})
    );

    rpc.send(json!({"method": "initialized"})).await;
    let session = rpc.exec(sh("exit 0")).await;
    assert_eq!(session, "session-1");
    let error = rpc.err("initialize", json!({"clientName": "t"})).await;
    assert_eq!(
        error["message"],
        "initialize may only be sent once per connection"
    );
}

#[tokio::test]
async fn initialized_before_initialize_closes_the_connection() {
    let mut rpc = Rpc::new(StdioTransport::start(&[]));
    rpc.send(json!({"method": "initialized"})).await;
    assert_eq!(rpc.recv().await, None, "the server closes the connection");
    let status = tokio::time::timeout(TIMEOUT, rpc.transport.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.success(),
        "a stdio server exits cleanly after its connection ends: {status}"
    );
}

#[tokio::test]
async fn unknown_methods_and_bad_params_get_exact_errors() {
    let mut rpc = stdio_client(&[]).await;
    assert_eq!(
        rpc.err("command/nope", json!({})).await,
        json!({"code": -32600, "message": "unknown method: command/nope"})
    );
    let mut empty = sh("true");
    empty["argv"] = json!([]);
    assert_eq!(
        rpc.err("command/exec", empty).await,
        json!({"code": -32602, "message": "argv must not be empty"})
    );
    let mut relative = sh("true");
    relative["cwd"] = json!("relative/dir");
    assert_eq!(
        rpc.err("command/exec", relative).await,
        json!({"code": -32602, "message": "cwd must be an absolute path"})
    );
    let error = rpc.err("command/exec", json!({"cwd": "/"})).await;
    assert_eq!(error["code"], -32602);
    assert!(
        error["message"].as_str().unwrap().contains("argv"),
        "{error}"
    );
    let error = rpc
        .err("command/exec", json!({"argv": "not-a-list", "cwd": "/"}))
        .await;
    assert_eq!(error["code"], -32602);

    let mut missing = sh("true");
    missing["argv"] = json!(["definitely-not-a-program-xyz"]);
    let error = rpc.err("command/exec", missing).await;
    assert_eq!(error["code"], -32603);
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("definitely-not-a-program-xyz") && message.contains("No such file"),
        "{message}"
    );
}

#[tokio::test]
async fn write_and_terminate_errors_match_v0() {
    let mut rpc = stdio_client(&[]).await;
    assert_eq!(
        rpc.err(
            "command/exec/write",
            json!({"sessionId": "session-9", "chunk": b64(b"x")})
        )
        .await,
        json!({"code": -32600, "message": "unknown session id session-9"})
    );
    let session = rpc.exec(sh("sleep 30")).await;
    assert_eq!(
        rpc.err(
            "command/exec/write",
            json!({"sessionId": session, "chunk": b64(b"x")})
        )
        .await,
        json!({"code": -32600, "message": "stdin is closed for session session-1"})
    );
    let error = rpc
        .err(
            "command/exec/write",
            json!({"sessionId": session, "chunk": "%%not base64%%"}),
        )
        .await;
    assert_eq!(error["code"], -32602);
    assert_eq!(
        rpc.ok("command/exec/terminate", json!({"sessionId": "session-42"}))
            .await,
        json!({"running": false})
    );
    assert_eq!(
        rpc.ok("command/exec/terminate", json!({"sessionId": session}))
            .await,
        json!({"running": true})
    );
    let out = rpc.collect(&session).await;
    assert_eq!(out.exit_code, 128 + 9, "killed by SIGKILL");
    // The id is forgotten once its exit was reported.
    assert_eq!(
        rpc.err(
            "command/exec/write",
            json!({"sessionId": session, "chunk": b64(b"x")})
        )
        .await["message"],
        "unknown session id session-1"
    );
    assert_eq!(
        rpc.ok("command/exec/terminate", json!({"sessionId": session}))
            .await,
        json!({"running": false})
    );
}

#[tokio::test]
async fn parse_errors_and_non_rpc_json_get_null_ids_and_the_connection_goes_on() {
    let mut rpc = stdio_client(&[]).await;
    rpc.transport.send_raw(b"this is not json\n").await;
    let response = rpc.response().await;
    assert_eq!(response["id"], json!(null));
    assert_eq!(response["error"]["code"], -32700);
    rpc.transport
        .send_raw(b"{\"id\":1,\"method\":\"\xff\xfe\"}\n")
        .await;
    assert_eq!(
        rpc.response().await["error"]["code"],
        -32700,
        "invalid UTF-8 is a parse error"
    );
    rpc.transport.send_raw(b"[1,2,3]\n\n   \n").await;
    let response = rpc.response().await;
    assert_eq!(
        (response["id"].clone(), response["error"]["code"].clone()),
        (json!(null), json!(-32600))
    );
    // Still usable.
    let session = rpc.exec(sh("printf ok")).await;
    assert_eq!(rpc.collect(&session).await.stdout, b"ok");
}

#[tokio::test]
async fn oversized_messages_are_refused_and_the_connection_goes_on() {
    let mut rpc = Rpc::new(StdioTransport::start(&["--max-message-bytes", "1024"]));
    rpc.handshake().await;
    let huge = json!({"id": 5, "method": "command/exec/write", "params": {"sessionId": "s", "chunk": "A".repeat(5000)}});
    rpc.send(huge).await;
    let response = rpc.response().await;
    assert_eq!(response["id"], json!(null));
    assert_eq!(response["error"]["code"], -32600);
    assert!(
        response["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit"),
        "{response}"
    );
    let session = rpc.exec(sh("printf still-works")).await;
    assert_eq!(rpc.collect(&session).await.stdout, b"still-works");
}

#[tokio::test]
async fn jsonrpc_member_is_echoed_when_the_first_message_carries_it() {
    let mut strict = Rpc::new(StdioTransport::start(&[]));
    strict.send(json!({"jsonrpc": "2.0", "id": "a", "method": "initialize", "params": {"clientName": "s"}})).await;
    let response = strict.response().await;
    assert_eq!(response["jsonrpc"], "2.0");
    assert_eq!(response["id"], "a", "string ids are echoed exactly");
    strict
        .send(json!({"jsonrpc": "2.0", "method": "initialized"}))
        .await;
    let session = strict.exec(sh("echo hi")).await;
    let notification = strict.next_notification().await;
    assert_eq!(
        notification["jsonrpc"], "2.0",
        "notifications carry it too: {notification}"
    );
    strict.collect(&session).await;

    let mut plain = stdio_client(&[]).await;
    let response = plain.call("command/exec", sh("echo hi")).await;
    assert!(response.get("jsonrpc").is_none(), "{response}");
    let notification = plain.next_notification().await;
    assert!(notification.get("jsonrpc").is_none(), "{notification}");
}

#[tokio::test]
async fn pipes_separate_stdout_and_stderr_and_report_exit_codes() {
    let mut rpc = stdio_client(&[]).await;
    let session = rpc.exec(sh("echo to-out; echo to-err >&2; exit 7")).await;
    let out = rpc.collect(&session).await;
    assert_eq!(out.stdout, b"to-out\n");
    assert_eq!(out.stderr, b"to-err\n");
    assert_eq!(out.exit_code, 7);
    let session = rpc.exec(sh("kill -INT $$")).await;
    assert_eq!(rpc.collect(&session).await.exit_code, 128 + 2);
}

#[tokio::test]
async fn env_cwd_and_arg0_are_exact() {
    let mut rpc = stdio_client(&[]).await;
    let session = rpc
        .exec(json!({"argv": ["/usr/bin/env"], "cwd": "/", "env": {"A": "1", "B": "two words"}, "tty": false}))
        .await;
    let out = rpc.collect(&session).await;
    let mut lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        vec!["A=1", "B=two words"],
        "nothing inherited from the server"
    );

    let session = rpc
        .exec(json!({"argv": ["/bin/sh", "-c", "pwd; echo $0"], "cwd": "/tmp", "env": {}, "tty": false, "arg0": "renamed"}))
        .await;
    assert_eq!(rpc.collect(&session).await.stdout, b"/tmp\nrenamed\n");
}

#[tokio::test]
async fn pty_sessions_echo_typed_lines_and_use_a_24x80_terminal() {
    let mut rpc = stdio_client(&[]).await;
    let script = "stty size; while read -r line; do echo \"got:$line\"; done";
    let session = rpc.exec(json!({"argv": ["/bin/bash", "--noprofile", "--norc", "-c", script], "cwd": "/", "env": {"PATH": "/usr/bin:/bin"}, "tty": true})).await;
    rpc.read_until(&session, "24 80").await;
    for word in ["first", "second", "third"] {
        let accepted = rpc
            .ok(
                "command/exec/write",
                json!({"sessionId": session, "chunk": b64(format!("{word}\n").as_bytes())}),
            )
            .await;
        assert_eq!(accepted, json!({"accepted": true}));
        rpc.read_until(&session, &format!("got:{word}")).await;
    }
    // Ctrl-D ends `read`; the loop ends and bash exits 0.
    rpc.ok(
        "command/exec/write",
        json!({"sessionId": session, "chunk": b64(b"\x04")}),
    )
    .await;
    let out = rpc.collect(&session).await;
    assert_eq!(out.exit_code, 0);
}

#[tokio::test]
async fn exit_is_reported_after_all_output_every_time() {
    let mut rpc = stdio_client(&[]).await;
    for round in 0..20 {
        let session = rpc
            .exec(sh("head -c 300000 /dev/zero; printf end >&2; exit 3"))
            .await;
        let out = rpc.collect(&session).await;
        assert_eq!(out.stdout.len(), 300_000, "round {round}");
        assert_eq!(out.stderr, b"end", "round {round}");
        assert_eq!(out.exit_code, 3);
    }
}

#[tokio::test]
async fn a_background_job_holding_stdout_does_not_delay_the_exit() {
    let mut rpc = stdio_client(&[]).await;
    let started = std::time::Instant::now();
    let session = rpc
        .exec(sh("echo parent; (sleep 5; echo late) & exit 4"))
        .await;
    let out = rpc.collect(&session).await;
    assert_eq!(out.stdout, b"parent\n");
    assert_eq!(out.exit_code, 4);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "exit waited {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn notifications_from_the_client_and_client_responses_close_the_connection() {
    for message in [
        json!({"method": "something/else"}),
        json!({"id": 1, "result": {}}),
    ] {
        let mut rpc = stdio_client(&[]).await;
        rpc.send(message.clone()).await;
        assert_eq!(rpc.recv().await, None, "{message} closes the connection");
    }
}

#[tokio::test]
async fn sessions_are_numbered_per_connection_and_run_concurrently() {
    let mut rpc = stdio_client(&[]).await;
    let a = rpc.exec(sh("sleep 0.3; echo a")).await;
    let b = rpc.exec(sh("echo b")).await;
    assert_eq!((a.as_str(), b.as_str()), ("session-1", "session-2"));
    let out_b = rpc.collect(&b).await;
    assert_eq!(out_b.stdout, b"b\n");
    let out_a = rpc.collect(&a).await;
    assert_eq!(out_a.stdout, b"a\n");
}

#[tokio::test]
async fn the_process_limit_is_a_clear_error() {
    let mut rpc = Rpc::new(StdioTransport::start(&[
        "--max-processes-per-connection",
        "2",
    ]));
    rpc.handshake().await;
    rpc.exec(sh("sleep 30")).await;
    rpc.exec(sh("sleep 30")).await;
    let error = rpc.err("command/exec", sh("sleep 30")).await;
    assert_eq!(error["code"], -32600);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("too many processes"),
        "{error}"
    );
}
