// One tab: an xterm.js terminal showing one process, own or watched.
//
// Attaching (first time, or after a reload):
//   1. read the retained output from the start, in one answer that reaches
//      the newest output (so a gap's count is exact), and write it: the
//      scrollback comes back, and without a gap so does the screen, exactly;
//   2. follow: long-poll reads from the cursor, each written before the
//      next is asked for, so the page reads at the pace the terminal draws
//      and the process is never held back (what the page cannot keep up
//      with is dropped by retention and shown as a marker with the count);
//   3. whenever retention dropped output (on attach or live), the bytes
//      written cannot have rebuilt the screen: paint the screen of
//      `process/snapshot`, which the server rendered from everything, and
//      go on after its `seq`. A full-screen program is thus shown right on
//      first paint, before it prints anything new.
// After a dropped connection the tab goes on from its cursor: no byte is
// shown twice or lost.

import {OutputCursor} from './client/index.js';
import {FitAddon} from './vendor/addon-fit/addon-fit.mjs';
import {Unicode11Addon} from './vendor/addon-unicode11/addon-unicode11.mjs';
import {WebLinksAddon} from './vendor/addon-web-links/addon-web-links.mjs';
import {WebglAddon} from './vendor/addon-webgl/addon-webgl.mjs';
import {Terminal} from './vendor/xterm/xterm.mjs';

const THEME = {
  background: '#1e1e2e',
  foreground: '#cdd6f4',
  cursor: '#f5e0dc',
  selectionBackground: '#585b70',
};

/** How long a read waits for new output before asking again. */
const WAIT_MS = 20_000;

export class TerminalTab {
  /**
   * @param {object} app the page (app.js)
   * @param {object} info an `observe/list` entry
   * @param {HTMLElement} parent
   */
  constructor(app, info, parent) {
    this.app = app;
    this.info = info;
    this.key = tabKey(info);
    /** Watched tabs type only after "Take over typing". */
    this.typing = info.mine;
    this.cursor = null;
    /** Set once the first paint (replay, and a repaint after a gap) is done. */
    this.ready = false;
    this.exitShown = false;
    this.generation = 0;
    this.element = document.createElement('div');
    this.element.className = 'terminal';
    this.element.hidden = true;
    parent.append(this.element);

    this.term = new Terminal({
      scrollback: app.scrollback,
      convertEol: !info.tty,
      cursorBlink: true,
      allowProposedApi: true,
      fontFamily: '"DejaVu Sans Mono", "Cascadia Mono", Menlo, Consolas, monospace',
      fontSize: 14,
      theme: THEME,
    });
    this.fit = new FitAddon();
    this.term.loadAddon(this.fit);
    this.term.loadAddon(new Unicode11Addon());
    this.term.unicode.activeVersion = '11';
    this.term.loadAddon(new WebLinksAddon());
    this.term.open(this.element);
    this.renderer = 'dom';
    try {
      const webgl = new WebglAddon();
      webgl.onContextLoss(() => {
        webgl.dispose();
        this.renderer = 'dom';
      });
      this.term.loadAddon(webgl);
      this.renderer = 'webgl';
    } catch {
      // No WebGL here (e.g. no GPU): xterm's DOM renderer draws instead.
    }
    this.term.attachCustomKeyEventHandler((event) => this.#key(event));
    this.term.onData((data) => this.#input(data));
    this.resizeObserver = new ResizeObserver(() => this.#layout());
    this.resizeObserver.observe(this.element);
  }

  /** The process this tab shows, through `client`. */
  target(client) {
    return client.target(this.info.mine ? {processId: this.info.processId} : this.info);
  }

  /** Shows or hides the tab. */
  show(visible) {
    this.element.hidden = !visible;
    if (visible) {
      this.#layout();
      this.term.focus();
    }
  }

  /** New `observe/list` facts: exit status, size, ownership. */
  update(info) {
    const becameMine = info.mine && !this.info.mine;
    this.info = info;
    if (becameMine) this.typing = true;
    if (!this.typing && info.size && (info.size.rows !== this.term.rows || info.size.cols !== this.term.cols)) {
      // A watched terminal keeps the owner's size, so its output lands
      // where the owner's program put it.
      this.term.resize(info.size.cols, info.size.rows);
    }
  }

  /** Lets a person type into a watched process (and size it to this window). */
  takeOver() {
    this.typing = true;
    this.#layout();
    this.term.focus();
  }

  /**
   * Shows the process through `client` until it is closed or the
   * connection ends; call again with the next connection to go on.
   */
  async attach(client) {
    // One reader per connection: a second call for the same connection
    // would read the same output twice.
    if (this.attachedTo === client) return;
    this.attachedTo = client;
    const generation = ++this.generation;
    const target = this.target(client);
    if (this.cursor === null) {
      this.#layout(client);
      if (!this.typing && this.info.size) this.term.resize(this.info.size.cols, this.info.size.rows);
      await this.#replay(client, target);
      this.ready = true;
    }
    await target.follow(this.cursor, (segments) => {
      if (generation !== this.generation) throw new Error('superseded');
      return this.#show(segments, target);
    }, {waitMs: WAIT_MS});
    this.#exited();
  }

  async #replay(client, target) {
    const retained = client.limits?.retainedOutputBytes ?? 1 << 20;
    const cursor = new OutputCursor({headBytes: Math.floor(retained / 2)});
    const history = await target.read({afterSeq: 0, maxBytes: 2 * retained + 65_536});
    this.cursor = cursor;
    await this.#show(cursor.acceptRead(history), target);
  }

  /**
   * After a gap, the bytes written cannot have rebuilt the screen (the
   * sequences that drew it may be among those lost): paint the screen the
   * server rendered from everything, and go on after its seq.
   */
  async #repaint(target) {
    const snapshot = await target.snapshot();
    if (!snapshot.screenAnsi || snapshot.seq < this.cursor.afterSeq) return;
    if (snapshot.size && !this.typing) this.term.resize(snapshot.size.cols, snapshot.size.rows);
    // Leave the alternate screen and scroll what the main one shows into
    // the scrollback (gap markers included), so the painted screen starts
    // from a blank one.
    await this.#write(`\x1b[0m\x1b[?1049l${'\r\n'.repeat(this.term.rows)}\x1b[H`);
    await this.#write(decodeBytes(snapshot.screenAnsi));
    this.cursor.acceptSnapshot(snapshot);
  }

  /** Writes segments in order; resolves once xterm has parsed them. */
  async #show(segments, target) {
    for (const segment of coalesce(segments)) {
      if (segment.type === 'gap') {
        await this.#write(`\r\n\x1b[0;30;43m ⋯ ${segment.bytes} bytes dropped by retention ⋯ \x1b[0m\r\n`);
      } else if (segment.stream === 'stderr') {
        await this.#write('\x1b[31m');
        await this.#write(segment.bytes);
        await this.#write('\x1b[39m');
      } else {
        await this.#write(segment.bytes);
      }
    }
    if (this.info.tty && segments.some((segment) => segment.type === 'gap')) await this.#repaint(target);
    if (this.cursor?.exited) this.#exited();
  }

  #write(data) {
    return new Promise((resolve) => this.term.write(data, resolve));
  }

  #exited() {
    const cursor = this.cursor;
    if (!cursor?.exited || this.exitShown) return;
    this.exitShown = true;
    this.info = {...this.info, running: false, exitCode: cursor.exitCode};
    this.term.write(`\r\n\x1b[2m[process exited with code ${cursor.exitCode}]\x1b[0m\r\n`);
    this.app.renderTabs();
  }

  #input(data) {
    if (!this.typing || !this.info.running || !this.app.client) return;
    this.target(this.app.client).write(data).catch((error) => this.app.status(`typing failed: ${error.message}`));
  }

  /** Copy with Ctrl+Shift+C; paste (Ctrl+Shift+V, Shift+Insert) goes
   * through the browser's paste event, which xterm turns into input. */
  #key(event) {
    if (event.type !== 'keydown') return true;
    const copy = (event.ctrlKey && event.shiftKey && event.code === 'KeyC') || (event.ctrlKey && event.code === 'Insert');
    if (copy) {
      const selection = this.term.getSelection();
      if (selection) navigator.clipboard?.writeText(selection).catch(() => {});
      return false;
    }
    const paste = (event.ctrlKey && event.shiftKey && event.code === 'KeyV') || (event.shiftKey && event.code === 'Insert');
    return !paste;
  }

  /** Fits the terminal to its box and tells the process (own or taken over). */
  #layout(client = this.app.client) {
    if (this.element.hidden || !this.typing) return;
    const {rows, cols} = this.term;
    this.fit.fit();
    if (!this.info.tty || !client || !this.info.running) return;
    if (this.term.rows === rows && this.term.cols === cols && this.sized) return;
    this.sized = true;
    this.target(client)
      .resize(this.term.rows, this.term.cols)
      .catch(() => {});
  }

  /** The terminal's buffer as text, wrapped lines joined (tests read it). */
  bufferText() {
    const buffer = this.term.buffer.active;
    const lines = [];
    for (let i = 0; i < buffer.length; i++) {
      const line = buffer.getLine(i);
      const text = line.translateToString(true);
      if (line.isWrapped && lines.length) lines[lines.length - 1] += text;
      else lines.push(text);
    }
    return lines.join('\n');
  }

  /** The visible screen, one string per row (tests read it). */
  screenLines() {
    const buffer = this.term.buffer.active;
    const lines = [];
    for (let row = 0; row < this.term.rows; row++) {
      lines.push(buffer.getLine(buffer.viewportY + row)?.translateToString(true) ?? '');
    }
    return lines;
  }

  dispose() {
    this.generation++;
    this.resizeObserver.disconnect();
    this.term.dispose();
    this.element.remove();
  }
}

/** @param {{owner: string, processId: string}} info */
export function tabKey(info) {
  return `${info.owner}/${info.processId}`;
}

/** @param {string} base64 */
function decodeBytes(base64) {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/**
 * Adjacent data segments of one stream as one segment: each write to xterm
 * is parsed in its own turn, and a replay can hold tens of thousands of
 * one-line chunks (a shell loop echoing numbers), which written one by one
 * take minutes to show. xterm keeps its UTF-8 decoder state across writes,
 * so joining bytes never splits or joins a character differently.
 */
function coalesce(segments) {
  const out = [];
  let run = [];
  const flush = () => {
    if (run.length === 1) out.push(run[0]);
    if (run.length > 1) {
      const bytes = new Uint8Array(run.reduce((total, segment) => total + segment.bytes.length, 0));
      let at = 0;
      for (const segment of run) {
        bytes.set(segment.bytes, at);
        at += segment.bytes.length;
      }
      out.push({type: 'data', stream: run[0].stream, bytes});
    }
    run = [];
  };
  for (const segment of segments) {
    if (segment.type === 'data' && (run.length === 0 || run[0].stream === segment.stream)) {
      run.push(segment);
      continue;
    }
    flush();
    if (segment.type === 'data') run.push(segment);
    else out.push(segment);
  }
  flush();
  return out;
}
