"""``GET /metrics`` scraped as Prometheus would, parsed by the reference
OpenMetrics parser (``prometheus_client``): it needs the token, and its
counters and gauges follow what clients do."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

import exec_server

from .conftest import ENV, WsServer, run

TOKEN = "metrics-s3cret"


def scrape(server: WsServer, token: str | None = TOKEN) -> dict[str, float]:
    """Every sample of one scrape, keyed ``name{label="value",...}``."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"http://{server.host}:{server.port}/metrics", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text"), response.headers
        text = response.read().decode()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):  # type: ignore[no-untyped-call]
        for sample in family.samples:
            labels = ",".join(f'{key}="{value}"' for key, value in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def moved(before: dict[str, float], after: dict[str, float], key: str) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metrics_need_the_token(ws_server: Callable[..., WsServer], tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    server = ws_server("--auth-token-file", str(tmp_path / "token"))
    for token in (None, "wrong"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            scrape(server, token)
        assert refused.value.code == 401
    assert "exec_server_spawns_total" in scrape(server)


def test_counters_follow_connections_spawns_requests_and_bytes(
    ws_server: Callable[..., WsServer], tmp_path: Path
) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    server = ws_server("--auth-token-file", str(tmp_path / "token"), "--detach-ttl-ms", "60000")
    before = scrape(server)
    assert before["exec_server_running_processes"] == 0
    assert before["exec_server_detached_processes"] == 0

    async def main() -> None:
        async with exec_server.connect(server.url, token=TOKEN) as client:
            during = scrape(server)
            assert during['exec_server_open_connections{transport="websocket"}'] == 1
            for _ in range(3):
                result = await client.run(["printf", "x%.0s", *["-"] * 1000], env=ENV)
                assert result.stdout == b"x" * 1000
            with pytest.raises(exec_server.ExecServerError):
                await client.run(["/nonexistent/program"], env=ENV)
            # A process left running when the connection goes: detached.
            await client.start(["sleep", "30"], env=ENV, on_disconnect="detach", detach_ttl=60)
            running = scrape(server)
            assert running["exec_server_running_processes"] == 1, running

    run(main())
    deadline = time.monotonic() + 10
    while True:
        after = scrape(server)
        if after['exec_server_open_connections{transport="websocket"}'] == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert after['exec_server_open_connections{transport="websocket"}'] == 0
    assert moved(before, after, 'exec_server_connections_total{transport="websocket"}') == 1
    assert moved(before, after, "exec_server_spawns_total") == 5
    assert moved(before, after, "exec_server_spawn_failures_total") == 1
    assert moved(before, after, "exec_server_spawn_duration_seconds_count") == 5
    assert moved(before, after, "exec_server_spawn_duration_seconds_sum") > 0
    assert moved(before, after, 'exec_server_requests_total{method="process/start"}') == 5
    assert moved(before, after, 'exec_server_request_errors_total{method="process/start"}') == 1
    assert moved(before, after, 'exec_server_request_duration_seconds_count{method="initialize"}') == 1
    # 3000 bytes of output went out as base64 inside JSON; requests came in.
    assert moved(before, after, 'exec_server_sent_bytes_total{transport="websocket"}') > 4000
    assert moved(before, after, 'exec_server_received_bytes_total{transport="websocket"}') > 500
    assert after["exec_server_detached_processes"] == 1
    assert after["exec_server_running_processes"] == 1
    assert after["exec_server_sessions"] == 1


def test_a_method_outside_the_table_is_counted_as_unknown(
    ws_server: Callable[..., WsServer], tmp_path: Path
) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    server = ws_server("--auth-token-file", str(tmp_path / "token"))

    async def main() -> None:
        async with exec_server.connect(server.url, token=TOKEN) as client:
            for index in range(20):
                with pytest.raises(exec_server.RpcError):
                    await client._call(f"made/up-{index}", {})

    run(main())
    after = scrape(server)
    assert after['exec_server_requests_total{method="unknown"}'] == 20
    assert after['exec_server_request_errors_total{method="unknown"}'] == 20
    assert not any("made/up" in key for key in after)
