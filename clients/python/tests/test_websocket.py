"""The websocket transport against the real server's security: a bearer
token, TLS with a private CA file, and clear errors when either is wrong."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import exec_server

from .conftest import ENV, WsServer, run


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key, by openssl."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=exec-server test", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_wss_with_a_token_and_a_ca_file(ws_server: Callable[..., WsServer], tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    (tmp_path / "token").write_text("s3cret\n")
    server = ws_server(
        "--tls-cert", str(cert), "--tls-key", str(key), "--auth-token-file", str(tmp_path / "token"),
        listen="wss://127.0.0.1:0",
    )  # fmt: skip
    assert server.url.startswith("wss://")

    async def main() -> None:
        async with exec_server.connect(server.url, token="s3cret", ca_file=cert) as client:
            result = await client.run(["echo", "over tls"], env=ENV)
            assert result.stdout == b"over tls\n"
            assert client.session_id and client.server_info["protocolVersion"] == "exec-server.v0"
        with pytest.raises(exec_server.ConnectionClosed, match="401"):
            await exec_server.connect(server.url, token="wrong", ca_file=cert)
        with pytest.raises(exec_server.ConnectionClosed, match="401"):
            await exec_server.connect(server.url, ca_file=cert)
        with pytest.raises(exec_server.ConnectionClosed, match="CERTIFICATE_VERIFY_FAILED"):
            await exec_server.connect(server.url, token="s3cret")

    run(main())


def test_unreachable_and_malformed_urls_fail_clearly(ws_server: Callable[..., WsServer]) -> None:
    server = ws_server()
    closed_port = server.port
    server.stop()

    async def main() -> None:
        with pytest.raises(exec_server.ConnectionClosed, match=f"cannot connect to ws://127.0.0.1:{closed_port}"):
            await exec_server.connect(f"ws://127.0.0.1:{closed_port}")
        with pytest.raises(ValueError, match="expected ws://"):
            await exec_server.connect("http://127.0.0.1:1")

    run(main())


def test_resuming_a_session_from_a_new_client(ws_server: Callable[..., WsServer]) -> None:
    # A program that restarts can take its detached processes back.
    server = ws_server()

    async def main() -> None:
        first = await exec_server.connect(server.url)
        process = await first.start(
            ["sh", "-c", "echo before; read line; echo got $line"], env=ENV, stdin="pipe", on_disconnect="detach"
        )
        assert (await process.wait(match="before", timeout=10)).reason == "matched"
        session = first.session_id
        assert session is not None
        await first.close()
        async with exec_server.connect(server.url, resume_session_id=session) as second:
            assert second.server_info.get("resumed") is True
            [info] = await second.list()
            assert info.process_id == process.process_id and info.running
            again = await second.attach(info.process_id)
            assert again.pid == info.pid
            await again.write(b"hello\n")
            assert (await again.wait(timeout=10)).exit_code == 0
            with pytest.raises(exec_server.ExecServerError, match="unknown process id nope"):
                await second.attach("nope")
            read = await again.read()
            assert b"".join(c.data for c in read.chunks) == b"before\ngot hello\n"

    run(main())
