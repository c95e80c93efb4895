"""The browser terminal (`exec-server --web`) in a real browser.

Debian's Chromium, driven by Playwright for Python pointed at the system
browser (no browser download). Every scenario starts the real exec-server
binary on a loopback port; the agent scenario also drives
`exec-server mcp --connect` with the official MCP Python SDK.

Usage: python3 web_browser.py PATH/TO/exec-server SCREENSHOT_DIR [SCENARIO...]
Exits non-zero (with a traceback) on the first failed expectation. Run by
crates/cli/tests/web.rs, so `cargo test` covers it.

The page's own JavaScript is read through `page.evaluate`, which runs
outside the page's Content-Security-Policy; Playwright's
`wait_for_function` evaluates strings inside it and is refused by the
page's `script-src 'self'`, so waits poll with `evaluate` instead.
"""

import asyncio
import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from playwright.async_api import async_playwright

BINARY = os.path.abspath(sys.argv[1])
SHOTS = sys.argv[2]
ONLY = set(sys.argv[3:])
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "web-test-token/+="


class Server:
    """A real exec-server on 127.0.0.1, port 0."""

    def __init__(self, *args, token=None):
        self.dir = tempfile.mkdtemp(prefix="exec-server-web-")
        command = [BINARY, "--listen", "ws://127.0.0.1:0", "--web", *args]
        self.token_file = None
        if token:
            self.token_file = os.path.join(self.dir, "token")
            with open(self.token_file, "w") as f:
                f.write(token + "\n")
            os.chmod(self.token_file, 0o600)
            command += ["--auth-token-file", self.token_file]
        env = dict(os.environ, RUST_LOG="debug", SHELL="/bin/bash", HOME=self.dir, PS1="$ ")
        self.log = open(os.path.join(self.dir, "server.log"), "w+")
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
        banner = self.process.stderr.readline()
        match = re.search(r"ws://(\S+)", banner)
        assert match, f"no URL in banner {banner!r}"
        self.address = match.group(1)
        self.ws = f"ws://{self.address}"
        self.http = f"http://{self.address}/"
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.process.stderr:
            self.log.write(line)
            self.log.flush()

    def logged(self):
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


async def poll(page, expression, timeout=15.0, what=None):
    """Evaluates `expression` (a JS function) until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or expression}")
        await asyncio.sleep(0.05)


async def open_page(browser, url, viewport=(1000, 600)):
    context = await browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    page = await context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.errors = errors
    await page.goto(url)
    return context, page


ACTIVE = "window.execServer.activeTab()"


async def wait_attached(page):
    await poll(page, f"() => !!({ACTIVE} && {ACTIVE}.ready)", what="a tab attached to its process")


async def buffer_text(page):
    return await page.evaluate(f"() => {ACTIVE}.bufferText()")


async def wait_text(page, pattern, timeout=15.0):
    """Waits until the active terminal's buffer matches `pattern` (a regex)."""
    deadline = time.monotonic() + timeout
    while True:
        text = await buffer_text(page)
        if re.search(pattern, text, re.M):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for /{pattern}/ in:\n{text[-2000:]}")
        await asyncio.sleep(0.05)


async def new_shell(page):
    count = await page.evaluate("() => window.execServer.tabs.size")
    await poll(page, "() => document.body.dataset.connected === 'true'", what="connected")
    await page.click("#new-shell")
    await poll(page, f"() => window.execServer.tabs.size > {count}", what="a new tab")
    await wait_attached(page)
    await wait_text(page, r"[$#] $")


async def run(page, command):
    """Types a command line into the active terminal."""
    await page.keyboard.type(command)
    await page.keyboard.press("Enter")


async def terminal_size(page):
    return await page.evaluate(f"() => [{ACTIVE}.term.rows, {ACTIVE}.term.cols]")


async def shot(page, name):
    os.makedirs(SHOTS, exist_ok=True)
    await page.screenshot(path=os.path.join(SHOTS, f"{name}.png"))


# ---------------------------------------------------------------------------


async def shell_echo_resize_and_utf8(browser):
    """`echo hi` shows `hi`; `stty size` follows the window; a character
    split across two output chunks renders as one."""
    server = Server()
    try:
        context, page = await open_page(browser, server.http)
        await new_shell(page)
        await run(page, "echo hi")
        await wait_text(page, r"^hi$")

        rows, cols = await terminal_size(page)
        await run(page, "stty size")
        await wait_text(page, rf"^{rows} {cols}$")
        await page.set_viewport_size({"width": 700, "height": 420})
        await poll(page, f"() => {ACTIVE}.term.cols < {cols} && {ACTIVE}.term.rows < {rows}", what="a smaller terminal")
        await asyncio.sleep(0.3)  # the resize request is debounced by nothing, but travels
        new_rows, new_cols = await terminal_size(page)
        await run(page, "stty size")
        await wait_text(page, rf"^{new_rows} {new_cols}$")

        # U+20AC (e2 82 ac) in two writes, far enough apart to be two chunks.
        await run(page, r"printf 'euro:\342\202'; sleep 0.5; printf '\254:end\n'")
        text = await wait_text(page, r"^euro:.*:end$")
        assert re.search(r"^euro:\u20ac:end$", text, re.M), text[-500:]
        assert "\ufffd" not in text
        # One cell wide, as a terminal draws it.
        cell = await page.evaluate(
            f"""() => {{
                const b = {ACTIVE}.term.buffer.active;
                for (let i = b.length - 1; i >= 0; i--) {{
                    const line = b.getLine(i);
                    if (line.translateToString(true).startsWith('euro:')) {{
                        const c = line.getCell(5);
                        return [c.getChars(), c.getWidth(), line.getCell(6).getChars()];
                    }}
                }}
                return null;
            }}"""
        )
        assert cell == ["\u20ac", 1, ":"], cell
        await shot(page, "shell")
        assert not page.errors, page.errors
        await context.close()
    finally:
        server.stop()


async def full_screen_first_paint(browser):
    """A full-screen program's screen appears on first paint after a reload,
    before it prints anything new, even when retention lost the output that
    drew it (the screen comes from `process/snapshot`)."""
    server = Server("--retained-output-bytes", "65536")
    try:
        context, page = await open_page(browser, server.http)
        await new_shell(page)
        script = os.path.join(server.dir, "draw.sh")
        with open(script, "w") as f:
            f.write(
                # 48 KiB of lines: more than retention's 32 KiB head.
                "i=0; while [ $i -lt 1500 ]; do echo 'scrolling text that fills the head of retention'; i=$((i+1)); done\n"
                # Draw with cursor moves on the alternate screen.
                "printf '\\033[?1049h\\033[2J\\033[5;10H\\033[1;32mFULL-SCREEN APP\\033[0m'\n"
                "printf '\\033[8;10Hcursor moved here'\n"
                "printf '\\033[12;1H\\033[7m status: ready \\033[0m'\n"
                # 100 KiB that change nothing on screen (save and restore the
                # cursor): the drawing falls in the middle retention drops.
                "e=$(printf '\\033'); i=0\n"
                "while [ $i -lt 200 ]; do printf \"${e}7${e}8%.0s\" $(seq 1 128); i=$((i+1)); done\n"
                "printf '\\033[5;26H'\n"
                f"touch {server.dir}/waiting\n"
                "read answer\n"
                "printf '\\033[?1049l'; echo answered-$answer\n"
            )
        await run(page, f"sh {script}")
        await poll(page, f"() => {ACTIVE}.screenLines().some(l => l.includes('status: ready'))", what="the drawing")
        # Reload once the program has printed everything and waits.
        deadline = time.monotonic() + 30
        while not os.path.exists(os.path.join(server.dir, "waiting")):
            assert time.monotonic() < deadline, "the program never reached `read`"
            await asyncio.sleep(0.05)
        key = await page.evaluate("() => window.execServer.active")
        await page.reload()
        await wait_attached(page)
        assert await page.evaluate("() => window.execServer.active") == key
        screen = await page.evaluate(f"() => {ACTIVE}.screenLines()")
        assert screen[4] == " " * 9 + "FULL-SCREEN APP", screen
        assert screen[7] == " " * 9 + "cursor moved here", screen
        assert screen[11].startswith(" status: ready"), screen
        cursor = await page.evaluate(f"() => [{ACTIVE}.term.buffer.active.cursorY, {ACTIVE}.term.buffer.active.cursorX]")
        assert cursor == [4, 25], cursor
        # Retention dropped the drawing, and the page says how much.
        dropped = await page.evaluate(f"() => {ACTIVE}.cursor.droppedBytes")
        assert dropped > 64 * 1024, dropped
        assert f"{dropped} bytes dropped by retention" in await page.evaluate(
            f"() => {{ const b = {ACTIVE}.term.buffer.normal; const out = []; for (let i = 0; i < b.length; i++) out.push(b.getLine(i).translateToString(true)); return out.join('\\n'); }}"
        )
        await shot(page, "full-screen-after-reload")
        await run(page, "yes")
        await wait_text(page, r"^answered-yes$")
        assert not page.errors, page.errors
        await context.close()
    finally:
        server.stop()


async def seq_with_a_reload(browser):
    """`seq 1 200000` with a reload in the middle: every number exactly once
    in xterm's buffer."""
    # Retention large enough to hold it all: the page replays it after the
    # reload (the default 1 MiB would drop the middle, and say so).
    server = Server("--retained-output-bytes", "8388608")
    try:
        context, page = await open_page(browser, server.http + "#scrollback=250000", viewport=(360, 500))
        assert "#" not in page.url, page.url
        await new_shell(page)
        # `read` in a loop paces seq's numbers so the reload lands mid-way.
        await run(page, "seq 1 200000 | while read -r n; do echo $n; done; echo seq-done")
        await poll(page, f"() => /^2000$/m.test({ACTIVE}.bufferText())", timeout=60, what="output under way")
        await page.reload()
        await wait_attached(page)
        before = await page.evaluate(f"() => {ACTIVE}.bufferText().match(/^\\d+$/gm)?.length ?? 0")
        assert 0 < before < 200000, f"the reload did not land mid-way ({before} numbers already shown)"
        await wait_text(page, r"^seq-done$", timeout=180)
        numbers = await page.evaluate(f"() => {ACTIVE}.bufferText().match(/^\\d+$/gm).map(Number)")
        expected = list(range(1, 200001))
        if numbers != expected:
            missing = sorted(set(expected) - set(numbers))[:10]
            seen, twice = set(), []
            for n in numbers:
                if n in seen:
                    twice.append(n)
                seen.add(n)
            raise AssertionError(f"{len(numbers)} numbers; missing {missing}; twice {twice[:10]}")
        assert "dropped by retention" not in await buffer_text(page)
        await shot(page, "seq-after-reload")
        assert not page.errors, page.errors
        await context.close()
    finally:
        server.stop()


async def ctrl_c_during_a_flood(browser):
    """Ctrl-C stops `yes` and `cat /dev/urandom | base64` within a second,
    and the page stays responsive during the flood."""
    server = Server()
    try:
        context, page = await open_page(browser, server.http)
        await new_shell(page)
        for index, flood in enumerate(["yes", "cat /dev/urandom | base64"]):
            stamp = os.path.join(server.dir, f"stopped-{index}")
            # The subshell's trap runs when Ctrl-C reaches the foreground
            # process group, after the flood died from the same signal.
            await run(page, f"(trap 'date +%s.%N > {stamp}' INT; {flood})")
            await wait_text(page, r"^(y|[A-Za-z0-9+/]{76})$")
            await asyncio.sleep(1.0)
            started = time.monotonic()
            await page.evaluate("() => 1")
            assert time.monotonic() - started < 1.0, "the page answers during the flood"
            pressed = time.time()
            await page.keyboard.press("Control+C")
            deadline = time.monotonic() + 5
            while not os.path.exists(stamp) or not open(stamp).read().strip():
                assert time.monotonic() < deadline, "Ctrl-C did not stop the flood"
                await asyncio.sleep(0.02)
            stopped = float(open(stamp).read())
            assert stopped - pressed < 1.0, f"the flood stopped {stopped - pressed:.3f} s after Ctrl-C"
            # The rest of the flood drains, then the shell's prompt is last.
            deadline = time.monotonic() + 10
            while not re.search(r"\^C\s*[^\n]*[$#]\Z", (await buffer_text(page)).rstrip()):
                assert time.monotonic() < deadline, repr((await buffer_text(page)).rstrip()[-300:])
                await asyncio.sleep(0.05)
            await run(page, f"echo still-responsive-{index}")
            await wait_text(page, rf"^still-responsive-{index}$", timeout=5)
        await shot(page, "after-flood")
        assert not page.errors, page.errors
        await context.close()
    finally:
        server.stop()


async def an_agents_shell_is_watched_and_taken_over(browser):
    """A process an agent started through `exec-server mcp --connect` is
    listed, its output visible, and a person may take over typing. Also:
    the token is entered once, never in the address bar; a wrong one is
    refused."""
    from mcp import ClientSession, StdioServerParameters, stdio_client

    server = Server(token=TOKEN)
    try:
        params = StdioServerParameters(
            command=BINARY,
            args=["mcp", "--connect", server.ws, "--token-file", server.token_file],
            env={"SHELL": "/bin/sh", "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            cwd="/tmp",
        )
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                result = await session.call_tool(
                    "exec_command",
                    {
                        "cmd": "echo agent-was-here; read line; echo agent-got-$line; sleep 60",
                        "tty": True,
                        "yield_time_ms": 1000,
                    },
                )
                text = "".join(getattr(b, "text", "") for b in result.content)
                assert "agent-was-here" in text, text
                agent_session = result.structured_content["session_id"]

                # A wrong token: refused, the login form says so.
                context, page = await open_page(browser, server.http + "#token=not-the-token")
                await poll(page, "() => !document.getElementById('login').hidden", what="the login form")
                assert "refused" in await page.text_content("#login-error")
                assert "token" not in page.url, page.url
                # The browser logs the refused handshake and the 401 of /auth.
                assert all("401" in e or "Authentication" in e for e in page.errors), page.errors
                page.errors.clear()
                # The right one, typed once into the form.
                await page.fill("#token", TOKEN)
                await page.click("#login button")
                await poll(page, "() => document.body.dataset.connected === 'true'", what="connected")
                assert "token" not in page.url and TOKEN not in page.url, page.url
                await poll(
                    page,
                    "() => [...window.execServer.tabs.values()].some(t => !t.info.mine && t.info.ownerClient === 'exec-server mcp')",
                    what="the agent's process listed",
                )
                key = await page.evaluate(
                    "() => [...window.execServer.tabs.values()].find(t => t.info.ownerClient === 'exec-server mcp').key"
                )
                await page.click(f'.tab[data-key="{key}"]')
                await wait_attached(page)
                await wait_text(page, r"agent-was-here")
                assert await page.is_visible("#watch-banner")
                # Keys go nowhere until the person takes over.
                await page.keyboard.type("ignored")
                await page.click("#take-over")
                assert not await page.is_visible("#watch-banner")
                await page.keyboard.type("from-a-person")
                await page.keyboard.press("Enter")
                await wait_text(page, r"agent-got-from-a-person")
                await shot(page, "agent-watched")
                # The picture in the README: the agent's tab and a shell.
                await new_shell(page)
                await run(page, "ls --color=always -F /usr /usr/share | head -n 20; printf '\\033[1;32mok\\033[0m\\n'")
                await wait_text(page, r"^ok$")
                await shot(page, "overview")
                # The agent sees what the person typed.
                result = await session.call_tool(
                    "write_stdin", {"session_id": agent_session, "chars": "", "yield_time_ms": 500}
                )
                text = "".join(getattr(b, "text", "") for b in result.content)
                assert "agent-got-from-a-person" in text and "ignored" not in text, text
                # A reload keeps the token (this tab's sessionStorage) and
                # comes back connected without asking again.
                await page.reload()
                await poll(page, "() => document.body.dataset.connected === 'true'", what="reconnected")
                assert await page.is_hidden("#login")
                assert not page.errors, page.errors
                await context.close()
        logged = server.logged()
        assert TOKEN not in logged, "the token appears in the server's log"
    finally:
        server.stop()


class CuttableProxy:
    """A TCP proxy in front of the server whose connections the test can
    cut at once (reset, both sides), like a network that drops."""

    def __init__(self, target):
        self.target = target
        self.connections = set()

    async def start(self):
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.http = f"http://127.0.0.1:{port}/"

    async def _accept(self, reader, writer):
        host, port = self.target.rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        pair = (writer, up_writer)
        self.connections.add(pair)

        async def pump(source, sink):
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self.connections.discard(pair)

    def cut(self):
        for client, upstream in list(self.connections):
            client.transport.abort()
            upstream.transport.abort()
        self.connections.clear()

    async def stop(self):
        self.cut()
        self.server.close()


async def a_dropped_network_resumes(browser):
    """The network drops in the middle of output: the page reconnects,
    resumes its session and shows every line exactly once."""
    server = Server()
    proxy = CuttableProxy(server.address)
    await proxy.start()
    try:
        context, page = await open_page(browser, proxy.http)
        await new_shell(page)
        await run(page, "i=1; while [ $i -le 3000 ]; do echo line-$i; i=$((i+1)); [ $((i % 100)) = 0 ] && sleep 0.05; done; echo lines-done")
        await wait_text(page, r"^line-500$")
        session = await page.evaluate("() => window.execServer.client.sessionId")
        proxy.cut()
        await poll(page, "() => document.body.dataset.connected === 'false'", what="the drop noticed")
        await poll(page, "() => document.body.dataset.connected === 'true'", timeout=20, what="reconnected")
        assert await page.evaluate("() => window.execServer.client.resumed")
        assert await page.evaluate("() => window.execServer.client.sessionId") == session
        text = await wait_text(page, r"^lines-done$", timeout=60)
        lines = re.findall(r"^line-(\d+)$", text, re.M)
        assert [int(n) for n in lines] == list(range(1, 3001)), f"{len(lines)} lines"
        await run(page, "echo after-the-drop")
        await wait_text(page, r"^after-the-drop$")
        assert not [e for e in page.errors if "WebSocket" not in e and "ERR_CONNECTION" not in e], page.errors
        await context.close()
    finally:
        await proxy.stop()
        server.stop()


class ForeignSite(BaseHTTPRequestHandler):
    """A page on another origin that tries to use the exec-server."""

    target = None

    def do_GET(self):
        body = f"""<!doctype html><script>
          const ws = new WebSocket('{self.target}', ['exec-server', 'exec-server.bearer.' + btoa('{TOKEN}').replace(/\\+/g,'-').replace(/\\//g,'_').replace(/=+$/,'')]);
          ws.onopen = () => document.title = 'opened';
          ws.onclose = () => document.title = document.title === 'opened' ? 'opened' : 'refused';
        </script>""".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def upgrade_status(address, headers):
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    base = {
        "Host": address,
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    connection.request("GET", "/", headers={**base, **headers})
    status = connection.getresponse().status
    connection.close()
    return status


async def refusals_and_headers(browser):
    """Wrong token: 401. Foreign Origin: 403, also from a real page on
    another origin. The page carries a strict Content-Security-Policy."""
    import base64

    server = Server(token=TOKEN)
    try:
        good = "exec-server, exec-server.bearer." + base64.urlsafe_b64encode(TOKEN.encode()).decode().rstrip("=")
        own = f"http://{server.address}"
        assert upgrade_status(server.address, {"Sec-WebSocket-Protocol": good, "Origin": own}) == 101
        bad = "exec-server, exec-server.bearer." + base64.urlsafe_b64encode(b"wrong").decode().rstrip("=")
        assert upgrade_status(server.address, {"Sec-WebSocket-Protocol": bad, "Origin": own}) == 401
        assert upgrade_status(server.address, {"Sec-WebSocket-Protocol": good, "Origin": "http://evil.example"}) == 403

        host, port = server.address.rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("GET", "/")
        response = connection.getresponse()
        csp = response.getheader("Content-Security-Policy")
        assert response.status == 200 and "script-src 'self';" in csp and "connect-src 'self'" in csp, csp
        assert "<script>" not in response.read().decode(), "no inline script"
        connection.close()

        ForeignSite.target = server.ws + "/"
        foreign = ThreadingHTTPServer(("127.0.0.1", 0), ForeignSite)
        threading.Thread(target=foreign.serve_forever, daemon=True).start()
        try:
            context = await browser.new_context()
            page = await context.new_page()
            await page.goto(f"http://127.0.0.1:{foreign.server_address[1]}/")
            await poll(page, "() => document.title", what="the foreign page's attempt")
            assert await page.title() == "refused"
            await context.close()
        finally:
            foreign.shutdown()
    finally:
        server.stop()


SCENARIOS = [
    shell_echo_resize_and_utf8,
    full_screen_first_paint,
    seq_with_a_reload,
    a_dropped_network_resumes,
    ctrl_c_during_a_flood,
    an_agents_shell_is_watched_and_taken_over,
    refusals_and_headers,
]


async def main():
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            for scenario in SCENARIOS:
                if ONLY and scenario.__name__ not in ONLY:
                    continue
                started = time.monotonic()
                await scenario(browser)
                print(f"OK: {scenario.__name__} ({time.monotonic() - started:.1f} s)", flush=True)
        finally:
            await browser.close()


asyncio.run(main())
