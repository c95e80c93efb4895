// The browser terminal: login, one connection that resumes its session
// across reloads and dropped networks, and one tab per process on the
// server (own shells, and other sessions' processes to watch).
//
// Secrets, both in sessionStorage (this tab only, gone when it closes,
// kept across reloads; see docs/SECURITY.md for the trade-off):
// - the server's token, entered once (login form or `#token=...`, which is
//   removed from the address bar at once) and sent as a websocket
//   subprotocol, never in a URL;
// - the session id, which resumes this tab's shells after a reload.

import {ConnectionError, RpcError, TimeoutError, connect} from './client/index.js';
import {TerminalTab, tabKey} from './terminal.js';

const TOKEN_KEY = 'exec-server.token';
const SESSION_KEY = 'exec-server.session';
const SCROLLBACK_KEY = 'exec-server.scrollback';
const LIST_INTERVAL_MS = 2000;

const $ = (id) => document.getElementById(id);

class App {
  constructor() {
    this.client = null;
    /** @type {Map<string, TerminalTab>} */
    this.tabs = new Map();
    /** Tabs the person closed: not brought back by the next listing. */
    this.dismissed = new Set();
    this.active = null;
    this.shells = 0;
    this.scrollback = Number(sessionStorage.getItem(SCROLLBACK_KEY)) || 10_000;
    this.reconnectDelay = 250;
  }

  start() {
    this.#readFragment();
    $('login').addEventListener('submit', (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $('token').value);
      $('token').value = '';
      $('login').hidden = true;
      this.connect();
    });
    $('new-shell').addEventListener('click', () => this.newShell());
    $('take-over').addEventListener('click', () => {
      this.tabs.get(this.active)?.takeOver();
      this.renderTabs();
    });
    this.connect();
  }

  /** `#token=...&scrollback=N`: taken in, then removed from the address bar. */
  #readFragment() {
    const fragment = new URLSearchParams(location.hash.slice(1));
    if (fragment.has('token')) sessionStorage.setItem(TOKEN_KEY, fragment.get('token'));
    const scrollback = Number(fragment.get('scrollback'));
    if (scrollback >= 100 && scrollback <= 1_000_000) {
      sessionStorage.setItem(SCROLLBACK_KEY, String(scrollback));
      this.scrollback = scrollback;
    }
    if (location.hash) history.replaceState(null, '', location.pathname + location.search);
  }

  status(text) {
    $('status').textContent = text;
  }

  /** Connects, resuming this tab's session when it has one. */
  async connect() {
    // The websocket endpoint is the page's own path (`/`, or a prefix a
    // balancer routes by).
    const url = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}${location.pathname}`;
    const token = sessionStorage.getItem(TOKEN_KEY) ?? undefined;
    let resumeSessionId = sessionStorage.getItem(SESSION_KEY) ?? undefined;
    this.status('connecting…');
    // A reload may reach the server before it saw the old page's socket
    // close: "attached to another connection" is retried for a while.
    for (let attempt = 0; ; attempt++) {
      try {
        this.client = await connect(url, {token, clientName: 'browser', resumeSessionId});
        break;
      } catch (error) {
        if (error instanceof RpcError && /attached to another connection/.test(error.rpcMessage) && attempt < 30) {
          await sleep(200);
          continue;
        }
        if (error instanceof RpcError && resumeSessionId) {
          // Expired, or still held by another tab: start afresh. Its
          // processes, if alive, show up as someone else's to watch.
          resumeSessionId = undefined;
          sessionStorage.removeItem(SESSION_KEY);
          continue;
        }
        if (error instanceof ConnectionError && (await this.#refused(token))) return;
        this.status(`disconnected; retrying in ${Math.round(this.reconnectDelay / 1000)} s`);
        setTimeout(() => this.connect(), this.reconnectDelay);
        this.reconnectDelay = Math.min(this.reconnectDelay * 2, 5000);
        return;
      }
    }
    this.reconnectDelay = 250;
    sessionStorage.setItem(SESSION_KEY, this.client.sessionId);
    this.status(this.client.resumed ? 'connected (session resumed)' : 'connected');
    document.body.dataset.connected = 'true';
    const client = this.client;
    client.onClose(() => {
      if (this.client !== client) return;
      this.client = null;
      document.body.dataset.connected = 'false';
      clearInterval(this.listTimer);
      this.status('connection lost; reconnecting…');
      setTimeout(() => this.connect(), 100);
    });
    await this.refresh();
    for (const tab of this.tabs.values()) this.#attach(tab);
    this.listTimer = setInterval(() => this.refresh(), LIST_INTERVAL_MS);
  }

  /** After a failed handshake: was it the token? Shows the login form if so. */
  async #refused(token) {
    let response;
    try {
      response = await fetch('auth', {headers: token ? {Authorization: `Bearer ${token}`} : {}});
    } catch {
      return false;
    }
    if (response.status !== 401) return false;
    sessionStorage.removeItem(TOKEN_KEY);
    $('login-error').textContent = token ? 'The server refused this token.' : '';
    $('login').hidden = false;
    $('token').focus();
    this.status('token required');
    return true;
  }

  /** Lists every process on the server; opens tabs for new ones. */
  async refresh() {
    const client = this.client;
    if (!client) return;
    let listed;
    try {
      listed = await client.observeList();
    } catch {
      return;
    }
    const seen = new Set();
    for (const info of listed.processes) {
      const key = tabKey(info);
      seen.add(key);
      if (this.dismissed.has(key)) continue;
      const tab = this.tabs.get(key);
      if (tab) {
        tab.update(info);
        continue;
      }
      const created = new TerminalTab(this, info, $('terminals'));
      this.tabs.set(key, created);
      if (this.client === client) this.#attach(created);
      if (!this.active || (info.mine && !this.tabs.get(this.active)?.info.mine)) this.select(key);
    }
    // Released or evicted processes: their tabs go, unless still drawing.
    for (const [key, tab] of this.tabs) {
      if (!seen.has(key) && tab.exitShown) this.#remove(key);
    }
    this.renderTabs();
  }

  #attach(tab) {
    const client = this.client;
    tab.attach(client).catch((error) => {
      if (error instanceof ConnectionError || error?.message === 'superseded') return;
      if (error instanceof TimeoutError) {
        // A long poll that never came back: the connection is dead without
        // the browser knowing. Close it; the close handler reconnects.
        if (this.client === client) client.close();
        return;
      }
      if (error instanceof RpcError && /unknown (process id|owner)/.test(error.rpcMessage)) return;
      this.status(`${tab.info.processId}: ${error.message}`);
    });
  }

  async newShell() {
    const client = this.client;
    if (!client) return;
    this.shells += 1;
    const area = $('terminals').getBoundingClientRect();
    try {
      const {processId} = await client.start({
        // The user's login shell, in their home directory.
        argv: ['/bin/sh', '-c', 'cd ~ 2>/dev/null; exec "${SHELL:-$(command -v bash || echo /bin/sh)}" -l'],
        cwd: '/',
        inheritEnv: true,
        env: {TERM: 'xterm-256color', COLORTERM: 'truecolor'},
        tty: true,
        size: {rows: Math.max(2, Math.floor(area.height / 17)), cols: Math.max(10, Math.floor(area.width / 8.4))},
        streamOutput: false,
        onDisconnect: 'detach',
        labels: {'exec-server.web': 'shell', title: `shell ${this.shells}`},
      });
      await this.refresh();
      const mine = [...this.tabs.values()].find((tab) => tab.info.mine && tab.info.processId === processId);
      if (mine) this.select(mine.key);
    } catch (error) {
      this.status(`new shell failed: ${error.message}`);
    }
  }

  select(key) {
    this.active = key;
    for (const [k, tab] of this.tabs) tab.show(k === key);
    this.renderTabs();
  }

  async close(key) {
    const tab = this.tabs.get(key);
    if (!tab) return;
    const client = this.client;
    if (tab.info.mine && client) {
      if (tab.info.running) {
        if (!confirm(`Terminate ${tabTitle(tab.info)}?`)) return;
        await client.terminate(tab.info.processId, 500).catch(() => {});
        await client.wait(tab.info.processId, {timeoutMs: 2000}).catch(() => {});
      }
      await client.release(tab.info.processId).catch(() => {});
    }
    this.dismissed.add(key);
    this.#remove(key);
    this.renderTabs();
  }

  #remove(key) {
    this.tabs.get(key)?.dispose();
    this.tabs.delete(key);
    if (this.active === key) {
      const next = this.tabs.keys().next();
      this.active = null;
      if (!next.done) this.select(next.value);
    }
  }

  renderTabs() {
    const bar = $('tabs');
    bar.replaceChildren();
    for (const [key, tab] of this.tabs) {
      const info = tab.info;
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'tab';
      button.setAttribute('role', 'tab');
      button.setAttribute('aria-selected', String(key === this.active));
      button.dataset.key = key;
      button.dataset.running = String(info.running);
      const title = document.createElement('span');
      title.className = 'title';
      title.textContent = info.mine ? tabTitle(info) : `${info.ownerClient || 'session'} · ${tabTitle(info)}`;
      const state = document.createElement('span');
      state.className = 'state';
      state.textContent = info.running ? (info.mine ? '' : 'watching') : `exit ${info.exitCode}`;
      const close = document.createElement('span');
      close.className = 'close';
      close.textContent = '×';
      close.title = info.mine ? 'Close (terminates a running process)' : 'Stop watching';
      close.addEventListener('click', (event) => {
        event.stopPropagation();
        this.close(key);
      });
      button.append(title, state, close);
      button.addEventListener('click', () => this.select(key));
      bar.append(button);
    }
    const active = this.tabs.get(this.active);
    const watching = active && !active.typing;
    $('watch-banner').hidden = !watching;
    if (watching) {
      $('watch-owner').textContent = active.info.ownerClient || 'another session';
    }
  }

  /** For tests and the curious: the tab shown now. */
  activeTab() {
    return this.tabs.get(this.active) ?? null;
  }
}

/** @param {{labels?: Record<string, string>, argv: string[]}} info */
function tabTitle(info) {
  const title = info.labels?.title ?? info.argv.join(' ');
  return title.length > 40 ? `${title.slice(0, 39)}…` : title;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const app = new App();
window.execServer = app;
app.start();
