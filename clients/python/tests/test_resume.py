"""Resume after a dropped connection, through a proxy that cuts it: every
byte arrives exactly once, or a gap says exactly how many are missing."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest

import exec_server
from exec_server import Closed, ConnectionLost, Exited, Gap, Output, Reconnect

from .conftest import ENV, WsServer, run
from .proxy import CuttingProxy

FAST = Reconnect(attempts=50, delay=0.05)


def expected_seq(count: int) -> bytes:
    return "".join(f"{i}\n" for i in range(1, count + 1)).encode()


async def collect(
    process: exec_server.Process, until: dict[str, int] | None = None, then: Path | None = None
) -> tuple[dict[str, bytes], list[exec_server.ProcessEvent]]:
    """Every event until Closed. Once the streams hold ``until`` bytes,
    creates the file ``then`` (the processes here wait for it to exit)."""
    streams: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
    sizes = {"stdout": 0, "stderr": 0}
    events = []
    while (event := await process.next_event(timeout=20)) is not None:
        events.append(event)
        if isinstance(event, Output):
            streams[event.stream].append(event.data)
            sizes[event.stream] += len(event.data)
            if then is not None and until is not None and all(sizes[k] >= n for k, n in until.items()):
                then.touch()
    return {name: b"".join(parts) for name, parts in streams.items()}, events


# A process that ends with its output is reaped, and a session whose
# detached processes are all closed ends when its connection does, taking
# the output still on its way to the client with it. The processes of these
# tests stay alive until the client has everything, so the drops exercise
# the client's replay, not that server rule.
WAIT_FOR = "while [ ! -e {0} ]; do sleep 0.01; done"


TRICKLE = "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); echo $i; done"


@pytest.mark.parametrize(
    ("stdout_script", "stdout", "cut_after", "replay_buffer"),
    [
        # A burst: all output is produced while the client is away, and
        # comes back through `process/read`.
        ("seq 1 400000", expected_seq(400_000), [300_000, 900_000, 1_500_000], None),
        # A trickle (about 1 MB/s): output keeps coming live while the
        # client replays, so live notifications and replayed chunks overlap.
        (TRICKLE, expected_seq(300_000), [100_000, 400_000, 800_000], None),
        # The same with a replay buffer of 2 KiB: live notifications are
        # dropped during the replay and must be read back (seq holes).
        (TRICKLE, expected_seq(300_000), [100_000, 400_000, 800_000], 2048),
    ],
    ids=["burst", "trickle", "trickle-overflowing-buffer"],
)
def test_output_survives_three_cuts_mid_stream_with_no_byte_lost_or_repeated(
    ws_server: Callable[..., WsServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stdout_script: str,
    stdout: bytes,
    cut_after: list[int],
    replay_buffer: int | None,
) -> None:
    if replay_buffer is not None:
        monkeypatch.setattr(exec_server.client, "REPLAY_BUFFER_BYTES", replay_buffer)
    # Retention large enough to hold everything: no gap is acceptable.
    server = ws_server("--retained-output-bytes", str(64 * 1024 * 1024))

    async def main() -> None:
        proxy = CuttingProxy(server.host, server.port, cut_after=cut_after)
        url = await proxy.start()
        try:
            async with exec_server.connect(url, reconnect=FAST) as client:
                finish = tmp_path / "finish"
                script = f"{stdout_script}; seq 1 5000 >&2; {WAIT_FOR.format(finish)}; exit 4"
                process = await client.start(["sh", "-c", script], env=ENV)
                sizes = {"stdout": len(stdout), "stderr": len(expected_seq(5000))}
                streams, events = await collect(process, until=sizes, then=finish)
                assert proxy.cuts == 3 and client.resumes == 3, (proxy.cuts, client.resumes)
        finally:
            await proxy.close()
        assert not [e for e in events if isinstance(e, Gap)]
        assert streams["stdout"] == stdout, "stdout arrived exactly once, in order"
        assert streams["stderr"] == expected_seq(5000)
        exits = [e for e in events if isinstance(e, Exited)]
        assert len(exits) == 1 and exits[0].exit_code == 4
        assert isinstance(events[-1], Closed) and events[-2] is exits[0]
        seqs = [e.seq for e in events if isinstance(e, (Output, Exited))]
        assert seqs == sorted(set(seqs)), "no seq delivered twice, none out of order"

    run(main())


def test_a_gap_reports_exactly_the_bytes_retention_dropped(
    ws_server: Callable[..., WsServer], tmp_path: Path
) -> None:
    # 64 KiB of retention per stream: most of what is printed while the
    # client is away is dropped, and the client must say how much.
    server = ws_server("--retained-output-bytes", str(64 * 1024))
    go, done, finish = tmp_path / "go", tmp_path / "done", tmp_path / "finish"
    script = f"echo start; {WAIT_FOR.format(go)}; seq 1 200000; touch {done}; {WAIT_FOR.format(finish)}"

    async def main() -> None:
        proxy = CuttingProxy(server.host, server.port)
        url = await proxy.start()
        try:
            async with exec_server.connect(url, reconnect=Reconnect(attempts=400, delay=0.05)) as client:
                process = await client.start(["sh", "-c", script], env=ENV)
                first = await process.next_event(timeout=10)
                assert isinstance(first, Output) and first.data == b"start\n"
                # Away while the process prints 1.3 MB.
                proxy.refuse = True
                proxy.cut_all()
                go.touch()
                for _ in range(1000):
                    if done.exists():
                        break
                    await asyncio.sleep(0.01)
                assert done.exists()
                proxy.refuse = False
                for _ in range(1000):
                    if client.resumes:
                        break
                    await asyncio.sleep(0.01)
                assert client.resumes == 1
                finish.touch()
                streams, events = await collect(process)
        finally:
            await proxy.close()
        expected = b"start\n" + expected_seq(200_000)
        got = first.data + streams["stdout"]
        gaps = [e for e in events if isinstance(e, Gap)]
        assert gaps, "a gap must be reported"
        dropped = sum(g.dropped_bytes for g in gaps)
        assert all(g.stream in (None, "stdout") for g in gaps)
        assert len(got) + dropped == len(expected), (len(got), dropped, len(expected))
        # What arrived is the head and the tail, the gap exactly between.
        head = os.path.commonprefix([got, expected])
        assert len(head) >= 32 * 1024 - 6, len(head)
        assert got[len(head) :] == expected[len(head) + dropped :]
        assert isinstance(events[-1], Closed) and isinstance(events[-2], Exited)

    run(main())


def test_a_request_in_flight_fails_with_connection_lost_and_is_not_resent(
    ws_server: Callable[..., WsServer], tmp_path: Path
) -> None:
    server = ws_server()
    counter = tmp_path / "writes"

    async def main() -> None:
        proxy = CuttingProxy(server.host, server.port)
        url = await proxy.start()
        try:
            async with exec_server.connect(url, reconnect=FAST) as client:
                sleeper = await client.start(["sleep", "30"], env=ENV, stream_output=False)
                waiting = asyncio.create_task(sleeper.wait(timeout=20))
                await asyncio.sleep(0.2)
                proxy.cut_all()
                with pytest.raises(ConnectionLost):
                    await waiting
                # The session is back: the same process, new requests work.
                assert (await sleeper.wait(timeout=0.1)).reason == "timeout"
                appender = await client.start(
                    ["sh", "-c", f"cat >> {counter}"], env=ENV, stdin="pipe", stream_output=False
                )
                await appender.write(b"x", write_id="once")
                proxy.cut_all()
                # A retry with the same write id is acknowledged, not written twice.
                for _ in range(100):
                    try:
                        await appender.write(b"x", write_id="once")
                        break
                    except ConnectionLost:
                        await asyncio.sleep(0.05)
                await appender.close_stdin()
                await appender.wait(timeout=10)
                assert counter.read_bytes() == b"x"
                await sleeper.terminate()
        finally:
            await proxy.close()

    run(main())


def test_a_session_that_cannot_be_resumed_ends_the_handles_with_an_error(
    ws_server: Callable[..., WsServer],
) -> None:
    # Detached processes live 200 ms; the client stays away longer.
    server = ws_server("--detach-ttl-ms", "200")

    async def main() -> None:
        proxy = CuttingProxy(server.host, server.port)
        url = await proxy.start()
        try:
            async with exec_server.connect(url, reconnect=Reconnect(attempts=3, delay=0.5)) as client:
                process = await client.start(["sleep", "30"], env=ENV)
                proxy.cut_all()
                with pytest.raises(exec_server.ConnectionClosed) as ended:
                    await process.next_event(timeout=20)
                assert "resume" in str(ended.value) or "closed" in str(ended.value)
                with pytest.raises(exec_server.ConnectionClosed):
                    await client.list()
        finally:
            await proxy.close()

    run(main())


def test_the_resume_url_routes_to_the_sessions_owner() -> None:
    def url(connect_url: str) -> str:
        return exec_server.resume_url(connect_url, "owner-path", "h2")

    assert url("ws://lb:8080/exec/") == "ws://lb:8080/exec/h2/"
    assert url("ws://lb:8080/exec") == "ws://lb:8080/exec/h2/"
    assert url("ws://lb:8080") == "ws://lb:8080/h2/"
    assert url("wss://lb/exec/?token=t") == "wss://lb/exec/h2/?token=t"
    assert url("ws://lb/exec/h2") == "ws://lb/exec/h2/", "appended once"
    assert exec_server.resume_url("ws://lb/", "owner-path", None) == "ws://lb/"
    assert exec_server.resume_url("ws://lb/x", "same-url", "h2") == "ws://lb/x"
    assert exec_server.resume_url("ws://lb/", "wss://{serverId}.example.com/", "h2") == "wss://h2.example.com/"


def test_an_unreachable_owner_ends_the_client_with_server_unavailable(ws_server: Callable[..., WsServer]) -> None:
    server = ws_server()

    async def main() -> None:
        proxy = CuttingProxy(server.host, server.port)
        url = await proxy.start()
        try:
            async with exec_server.connect(url, reconnect=Reconnect(attempts=3, delay=0.05)) as client:
                owner = client.server_info.get("serverId")
                assert owner, client.server_info
                process = await client.start(["sleep", "30"], env=ENV)
                proxy.refuse = True
                proxy.cut_all()
                with pytest.raises(exec_server.ServerUnavailable) as gone:
                    await process.next_event(timeout=20)
                assert gone.value.server_id == owner and "3 reconnect attempts failed" in str(gone.value)
                with pytest.raises(exec_server.ServerUnavailable):
                    await client.list()
        finally:
            await proxy.close()

    run(main())
