"""The process API through the Python client, against the real binary:
over a local server on stdio and over a websocket."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

import pytest

import exec_server
from exec_server import Closed, Exited, Gap, Output, RpcError

from .conftest import ENV, WsServer, process_gone, run

@pytest.fixture(params=["stdio", "websocket"])
def client_factory(
    request: pytest.FixtureRequest, ws_server: Callable[..., WsServer]
) -> Callable[[], exec_server.Connecting[exec_server.Client]]:
    """Both ways of reaching a server give the same client."""
    if request.param == "stdio":
        return lambda: exec_server.spawn_local()
    server = ws_server()
    return lambda: exec_server.connect(server.url)


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def test_run_collects_output_and_exit(client_factory: Callable[[], exec_server.Connecting[exec_server.Client]]) -> None:
    async def main() -> None:
        async with client_factory() as client:
            result = await client.run(sh("echo out; echo err >&2; exit 3"), env=ENV)
            assert (result.stdout, result.stderr, result.exit_code) == (b"out\n", b"err\n", 3)
            assert result.signal is None and not result.timed_out
            killed = await client.run(sh("kill -TERM $$"), env=ENV)
            assert (killed.exit_code, killed.signal) == (128 + 15, "SIGTERM")
            slow = await client.run(["sleep", "30"], env=ENV, timeout=0.3)
            assert slow.timed_out and slow.signal == "SIGKILL", slow

    run(main())


def test_events_arrive_in_order_and_end_with_exit_then_closed(
    client_factory: Callable[[], exec_server.Connecting[exec_server.Client]],
) -> None:
    async def main() -> None:
        async with client_factory() as client:
            process = await client.start(sh("for i in 1 2 3; do echo $i; echo e$i >&2; done; exit 7"), env=ENV)
            events = [event async for event in process.events()]
        assert isinstance(events[-1], Closed)
        assert isinstance(events[-2], Exited) and events[-2].exit_code == 7
        outputs = [e for e in events if isinstance(e, Output)]
        seqs = [e.seq for e in outputs] + [events[-2].seq]
        assert seqs == sorted(set(seqs)), "seq increases strictly, exit last"
        assert b"".join(e.data for e in outputs if e.stream == "stdout") == b"1\n2\n3\n"
        assert b"".join(e.data for e in outputs if e.stream == "stderr") == b"e1\ne2\ne3\n"
        assert not any(isinstance(e, Gap) for e in events)

    run(main())


def test_stdin_write_and_close_with_megabytes_of_input(
    client_factory: Callable[[], exec_server.Connecting[exec_server.Client]],
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)

    async def main() -> None:
        async with client_factory() as client:
            # `cat` echoes while we write: input and output must flow together.
            result = await client.run(["cat"], input=data, env=ENV)
            assert result.exit_code == 0
            assert hashlib.sha256(result.stdout).digest() == hashlib.sha256(data).digest()
            counter = await client.start(["wc", "-c"], stdin="pipe", env=ENV)
            await counter.write(b"12345", write_id="w1")
            await counter.write(b"12345", write_id="w1")  # A retry: not written twice.
            await counter.write("678")
            await counter.close_stdin()
            output = await counter.output()
            assert output.stdout.strip() == b"8"
            with pytest.raises(RpcError) as closed:
                await counter.write(b"late")
            assert closed.value.code == -32600 and "stdin is closed" in closed.value.message

    run(main())


def test_terminal_resize_snapshot_and_eof(
    client_factory: Callable[[], exec_server.Connecting[exec_server.Client]],
) -> None:
    async def main() -> None:
        async with client_factory() as client:
            shell = await client.start(["sh"], tty=True, env={**ENV, "PS1": "$ "})
            await shell.write("stty size\n")
            assert (await shell.wait(match=r"24 80", timeout=10)).reason == "matched"
            await shell.resize(30, 100)
            await shell.write("stty size; echo marker-$((6*7))\n")
            assert (await shell.wait(match=r"marker-42", timeout=10)).reason == "matched"
            snapshot = await shell.snapshot()
            assert snapshot.running and snapshot.screen is not None
            # The prompt may share the line: it can come after the echo of
            # what was typed ahead.
            assert any(line.rstrip().endswith("30 100") for line in snapshot.screen), snapshot.screen
            assert snapshot.terminal is not None and b"marker-42" in snapshot.terminal
            await shell.close_stdin()  # ^D on an empty line: the shell exits.
            done = await shell.output(timeout=10)
            assert done.exit_code == 0 and b"marker-42" in done.terminal
            with pytest.raises(RpcError) as no_terminal:
                piped = await client.start(["sleep", "5"], env=ENV)
                await piped.resize(10, 10)
            assert "has no terminal" in no_terminal.value.message
            await piped.terminate()

    run(main())


def test_signals_and_graceful_terminate(
    client_factory: Callable[[], exec_server.Connecting[exec_server.Client]],
) -> None:
    script = "trap 'echo got-usr1' USR1; trap 'echo bye; exit 5' TERM; echo ready; while :; do sleep 0.02; done"

    async def main() -> None:
        async with client_factory() as client:
            process = await client.start(sh(script), env=ENV, stream_output=False)
            assert (await process.wait(match="ready", timeout=10)).reason == "matched"
            assert await process.signal("SIGUSR1")
            assert (await process.wait(match="got-usr1", timeout=10)).reason == "matched"
            assert await process.terminate(grace=5)
            exited = await process.wait(timeout=10)
            assert (exited.reason, exited.exit_code) == ("exited", 5)
            assert not await process.signal("SIGUSR1"), "the group is gone"
            stubborn = await client.start(sh("trap '' TERM; echo on; sleep 30"), env=ENV, stream_output=False)
            await stubborn.wait(match="on", timeout=10)
            await stubborn.terminate(grace=0.2)
            ended = await stubborn.wait(timeout=10)
            assert ended.signal == "SIGKILL", ended
            assert process_gone(stubborn.pid)

    run(main())


def test_wait_for_quiet_and_timeout_then_read_by_cursor(
    client_factory: Callable[[], exec_server.Connecting[exec_server.Client]],
) -> None:
    async def main() -> None:
        async with client_factory() as client:
            process = await client.start(sh("echo one; echo two >&2; sleep 30"), env=ENV, stream_output=False)
            quiet = await process.wait(quiet=0.3, timeout=10)
            assert quiet.reason == "quiet" and not quiet.exited
            timeout = await process.wait(timeout=0.2)
            assert timeout.reason == "timeout"
            first = await process.read()
            text = {c.stream: c.data for c in first.chunks}
            assert text == {"stdout": b"one\n", "stderr": b"two\n"}, first
            assert first.next_seq == max(c.seq for c in first.chunks) and first.dropped_bytes == 0
            again = await process.read(first.next_seq, wait=0.2)
            assert again.chunks == [] and not again.exited
            await process.terminate()
            final = await process.read(first.next_seq, wait=5)
            assert final.exited and final.exit_code == 128 + 9

    run(main())


def test_list_filters_by_labels_and_release_forgets(
    client_factory: Callable[[], exec_server.Connecting[exec_server.Client]],
) -> None:
    async def main() -> None:
        async with client_factory() as client:
            web = await client.start(["sleep", "30"], env=ENV, labels={"role": "web"}, process_id="web-1")
            await client.start(["true"], env=ENV, labels={"role": "job"}, process_id="job-1")
            assert web.process_id == "web-1"
            listed = await client.list(labels={"role": "web"})
            assert [(p.process_id, p.pid, p.running, p.argv) for p in listed] == [
                ("web-1", web.pid, True, ["sleep", "30"])
            ]
            status = await web.status()
            assert (status.process_id, status.pid, status.running, status.labels) == (
                "web-1",
                web.pid,
                True,
                {"role": "web"},
            )
            with pytest.raises(RpcError) as duplicate:
                await client.start(["true"], env=ENV, process_id="web-1")
            assert "already exists" in duplicate.value.message
            await web.terminate()
            await web.output()
            await web.release()
            assert [p.process_id for p in await client.list()] == ["job-1"]
            with pytest.raises(RpcError) as unknown:
                await web.snapshot()
            assert (unknown.value.code, unknown.value.message) == (-32600, "unknown process id web-1")

    run(main())


def test_closing_a_local_client_ends_the_server_and_its_processes() -> None:
    async def main() -> int:
        client = await exec_server.spawn_local()
        process = await client.start(sh("echo $$; exec sleep 60"), env=ENV, stream_output=False)
        await process.wait(match=r"\d", timeout=10)
        await client.close()
        with pytest.raises(exec_server.ConnectionClosed):
            await client.list()
        return process.pid

    pid = run(main())
    assert process_gone(pid)


def test_an_unread_dropped_handle_does_not_hold_up_the_connection() -> None:
    async def main() -> None:
        async with exec_server.spawn_local() as client:
            # Far more events than a handle queues, and nobody reads them.
            flood = await client.start(sh("seq 1 300000"), env=ENV)
            pid = flood.pid
            del flood
            for _ in range(3):
                assert (await client.run(["echo", "still here"], env=ENV)).stdout == b"still here\n"
            assert pid > 0

    run(main())


def test_the_sync_wrapper_mirrors_the_async_client() -> None:
    from exec_server.sync import spawn_local

    with spawn_local() as client:
        assert client.run(["echo", "hi"], env=ENV).stdout == b"hi\n"
        process = client.start(["cat"], stdin="pipe", env=ENV)
        process.write(b"typed")
        process.close_stdin()
        events = list(process.events())
        assert b"".join(e.data for e in events if isinstance(e, Output)) == b"typed"
        assert isinstance(events[-1], Closed)
        assert [p.process_id for p in client.list()] == ["proc-1", process.process_id]
        assert client.session_id

