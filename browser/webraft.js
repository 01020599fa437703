// webraft for web developers: boots Pyodide and the webraft wheel, joins a room through the
// relay, and exposes the seed's camelCase API (propose, listen/unlisten/listenOnce/emit,
// isLeader, leader, state, term, ...). Nothing is fetched from a CDN: Pyodide, the wheel and
// the port exchange (tabs of one browser trade MessagePorts through it) are found next to
// this module (pyodide/, dist/ and webraft-ports.js, as the relay serves them), wherever it is
// served, unless the pyodideURL / distURL / portsURL options say otherwise.
//
//   import { connect } from "./webraft.js";
//   const raft = await connect({
//     room: "demo",
//     listeners: { apply: (entry, index, cb) => { apply(entry.command); cb(); } },
//   });
//   await raft.propose({ op: "put", key: "x", value: 1 });

/** Raised when Pyodide or the wheel cannot be loaded; the message says which file. */
export class WebRaftLoadError extends Error {
  constructor(message) {
    super(message);
    this.name = "WebRaftLoadError";
  }
}

/** A webraft error: `name` is webraft's exception class (RoomFull, RelayUnreachable,
 * RelayClosed, NoLeaderError, ProposalTimeout, ...), `message` says what happened. Failed
 * proposals also carry `mayHaveCommitted`. */
export class WebRaftError extends Error {
  constructor(name, message, fields = {}) {
    super(message);
    this.name = name;
    Object.assign(this, fields);
  }
}

/** This module's directory: relative URLs (the defaults among them) resolve against it, so
 * the library works at any path, not only at the root of the relay. */
const here = new URL(".", import.meta.url);
/** Where Pyodide may be, relative to this module, tried in order: beside its package
 * (node_modules/pyodide/ of an npm install; the relay's /pyodide/, for /webraft.js and
 * /webraft/webraft.js alike) or next to it (a copied tree). */
const DEFAULT_PYODIDE_URLS = ["../pyodide/", "pyodide/"];
/** Where the wheel and its manifest.json are, relative to this module. */
const DEFAULT_DIST_URL = "dist/";
/** The port exchange (a SharedWorker script), relative to this module. */
const DEFAULT_PORTS_URL = "webraft-ports.js";

/** Default bound (ms) on getting a member slot from the relay. */
const DEFAULT_CONNECT_TIMEOUT = 15000;
/** What an apply adapter tells Python (bridge.py's APPLIED and WAITING). */
const APPLIED = 0;
const WAITING = 1;

/** When this page's start-up steps ended, in ms since navigation (performance.now()), for
 * the first node of the page: `start` (createNode called), `pyodideReady` (Pyodide booted),
 * `wheelFetched`, `webraftImported` (the wheel unpacked and imported), `nodeCreated` (a member
 * slot claimed and storage loaded). The wheel is fetched while Pyodide boots. */
export const timings = {};

function mark(name) {
  if (timings[name] === undefined) timings[name] = performance.now();
}

/** Fetch a URL or fail with a message that names it. */
async function fetchOK(url) {
  let response;
  try {
    response = await fetch(url, { cache: "no-cache" });
  } catch (err) {
    throw new WebRaftLoadError(`cannot fetch ${url}: ${err.message}`);
  }
  if (!response.ok) {
    throw new WebRaftLoadError(`cannot fetch ${url}: HTTP ${response.status}`);
  }
  return response;
}

/** The files of the pinned Pyodide that must be served; checked up front because a missing
 * one otherwise surfaces as an opaque failure (or a hang) deep inside loadPyodide. */
const PYODIDE_FILES = ["pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm",
  "python_stdlib.zip", "pyodide-lock.json"];

/** The files of PYODIDE_FILES missing at `base`, as "name (why)". */
async function missingPyodideFiles(base) {
  const missing = [];
  await Promise.all(PYODIDE_FILES.map(async (name) => {
    try {
      const response = await fetch(new URL(name, base).href, { method: "HEAD" });
      if (!response.ok) missing.push(`${name} (HTTP ${response.status})`);
    } catch (err) {
      missing.push(`${name} (${err.message})`);
    }
  }));
  return missing.sort();
}

/** The first of `urls` (resolved against this module) where Pyodide is complete. */
async function findPyodide(urls) {
  const bases = [...new Set(urls.map((url) => new URL(url, here).href))];
  const why = [];
  for (const base of bases) {
    const missing = await missingPyodideFiles(base);
    if (missing.length === 0) return base;
    why.push(`${base}: ${missing.join(", ")}`);
  }
  throw new WebRaftLoadError(`Pyodide files missing at ${why.join("; ")}`);
}

async function bootPyodide(urls) {
  const base = await findPyodide(urls);
  let module;
  try {
    module = await import(new URL("pyodide.mjs", base).href);
  } catch (err) {
    throw new WebRaftLoadError(`cannot load Pyodide from ${base}: ${err.message}`);
  }
  try {
    return await module.loadPyodide({ indexURL: base });
  } catch (err) {
    throw new WebRaftLoadError(`Pyodide failed to start from ${base}: ${err.message}`);
  }
}

/** The files of a zip archive (an ArrayBuffer from our own dist/: the wheel, or the
 * bytecode zip), as [path, Uint8Array] pairs, inflated by the browser's DecompressionStream.
 * It runs while Pyodide boots, so that only writing the files is left after the boot
 * (Python's own unpacking took about 40 ms per archive, a file at a time). Rejects an archive
 * it cannot read, an entry whose size is not the one the archive records, and a path that
 * would leave the directory it is unpacked into. */
async function unzip(buffer) {
  const view = new DataView(buffer);
  const bytes = new Uint8Array(buffer);
  // The end of the central directory: its signature, searched back over a trailing comment.
  let end = buffer.byteLength - 22;
  while (end >= 0 && view.getUint32(end, true) !== 0x06054b50) end -= 1;
  if (end < 0) throw new Error("not a zip archive");
  const count = view.getUint16(end + 10, true);
  let at = view.getUint32(end + 16, true);
  const names = new TextDecoder("utf-8", { fatal: true });
  const files = [];
  for (let i = 0; i < count; i += 1) {
    if (at + 46 > end || view.getUint32(at, true) !== 0x02014b50) {
      throw new Error("malformed central directory");
    }
    const method = view.getUint16(at + 10, true);
    const size = view.getUint32(at + 20, true);
    const expected = view.getUint32(at + 24, true); // its uncompressed size
    const nameLength = view.getUint16(at + 28, true);
    const local = view.getUint32(at + 42, true);
    const name = names.decode(bytes.subarray(at + 46, at + 46 + nameLength));
    at += 46 + nameLength + view.getUint16(at + 30, true) + view.getUint16(at + 32, true);
    if (name.endsWith("/")) continue; // a directory: made with its files
    // A leading "/" makes an empty first part.
    if (name.split("/").some((part) => part === "" || part === "..")) {
      throw new Error(`unsafe path ${JSON.stringify(name)}`);
    }
    if (local + 30 > buffer.byteLength || view.getUint32(local, true) !== 0x04034b50) {
      throw new Error(`malformed entry ${name}`);
    }
    const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    if (start + size > buffer.byteLength) throw new Error(`truncated entry ${name}`);
    const raw = bytes.subarray(start, start + size);
    const whole = (data) => {
      if (data.byteLength !== expected) throw new Error(`damaged entry ${name}`);
      return [name, data];
    };
    if (method === 0) {
      files.push(whole(raw));
    } else if (method === 8) {
      const inflated = new Blob([raw]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
      files.push(new Response(inflated).arrayBuffer().then((data) => whole(new Uint8Array(data))));
    } else {
      throw new Error(`entry ${name}: compression method ${method} is not supported`);
    }
  }
  return Promise.all(files);
}

/** Write `files` ([path, bytes] pairs of unzip) under `dir` of Pyodide's file system. */
function writeFiles(pyodide, dir, files) {
  for (const [name, data] of files) {
    const path = `${dir}/${name}`;
    pyodide.FS.mkdirTree(path.slice(0, path.lastIndexOf("/")));
    pyodide.FS.writeFile(path, data);
  }
}

/** The wheel that dist/manifest.json names ({name, url, files}) and the bytecode compiled
 * from it for the pinned Pyodide (files, or null: the manifest names none, or it cannot be
 * fetched or read, and then Python compiles the sources itself, only slower); files are
 * those of unzip. */
async function fetchWheel(distURL) {
  const base = new URL(distURL, here).href;
  const manifestURL = new URL("manifest.json", base).href;
  let manifest;
  try {
    manifest = await (await fetchOK(manifestURL)).json();
  } catch (err) {
    if (err instanceof WebRaftLoadError) throw err;
    throw new WebRaftLoadError(`${manifestURL} is not JSON: ${err.message}`);
  }
  const fileName = (name, suffix) => typeof name === "string"
    && /^[\w.+-]+$/.test(name) && name.endsWith(suffix);
  if (!fileName(manifest?.wheel, ".whl")) {
    throw new WebRaftLoadError(`${manifestURL} names no wheel`);
  }
  const url = new URL(manifest.wheel, base).href;
  const bytecodeURL = fileName(manifest.bytecode, ".zip")
    ? new URL(manifest.bytecode, base).href : null;
  const [files, bytecode] = await Promise.all([
    fetchOK(url).then((response) => response.arrayBuffer()).then((bytes) => unzip(bytes)
      .catch((err) => { throw new WebRaftLoadError(`cannot unpack ${url}: ${err.message}`); })),
    bytecodeURL === null ? null : fetchOK(bytecodeURL)
      .then((response) => response.arrayBuffer()).then(unzip)
      .catch((err) => {
        console.warn(`webraft: no precompiled bytecode (${err.message}); compiling instead`);
        return null;
      }),
  ]);
  return { name: manifest.wheel, url, files, bytecode };
}

/** What webraft's Python calls on a tab's hot paths, registered as the module
 * `_webraft_page` (webraft/browser/page.py says why each one is here): crossing into Python
 * with a string or a JavaScript object costs more than the work these do. */
const PAGE = {
  /** A `message` listener handing `handler` only the event's data. */
  onData: (handler) => (event) => handler(event.data),
  /** `(key, text) => true` when `storage` holds exactly `text` under `key`. */
  holdsIn: (storage) => (key, text) => storage.getItem(key) === text,
  /** Watch this page's event loop with a timer every `periodMs`: `check()` returns how many
   * times it ran more than `thresholdMs` late while the page was visible (a hidden page's
   * timers are throttled on purpose), counting the time since the last check; `stop()`. */
  stallWatch: (periodMs, thresholdMs) => {
    let last = performance.now();
    let stalls = 0;
    const check = () => {
      const now = performance.now();
      if (now - last - periodMs > thresholdMs && !document.hidden) stalls += 1;
      last = now;
      return stalls;
    };
    const timer = setInterval(check, periodMs);
    return { check, stop: () => clearInterval(timer) };
  },
  /** The page's link to the port exchange at `url` (webraft-ports.js), shared by its
   * nodes; undefined (Python's None; null would be a JsNull) where there can be none: no
   * SharedWorker in this browser, or a script of another origin (a page importing
   * webraft.js from afar), which a SharedWorker may not run. */
  portExchange: (url) => {
    if (typeof SharedWorker === "undefined") return undefined;
    if (new URL(url, location.href).origin !== location.origin) {
      console.warn(`webraft: no port exchange at ${url}, of another origin: tabs talk over `
        + "BroadcastChannel");
      return undefined;
    }
    if (!exchanges.has(url)) exchanges.set(url, openExchange(url));
    return exchanges.get(url);
  },
};

/** The page's port exchanges, by URL. */
const exchanges = new Map();

/** A link to the SharedWorker at `url` (webraft-ports.js says what it does): `register(room,
 * address, instance, handler)` has `handler(from, fromInstance, port)` called with each port
 * offered to that node; `unregister(room, address, instance)`; `offer(room, to, toInstance,
 * from, fromInstance)` returns the local end of a new MessageChannel whose other end goes
 * to node `to`, if its instance is `toInstance` (else nothing ever answers on the port).
 * The worker starts at the first register (a tab alone in its browser never needs it). One
 * that fails to start or load is reported once: its nodes keep their BroadcastChannels. */
function openExchange(url) {
  let worker = null; // false: it failed
  const handlers = new Map();
  const key = (room, address, instance) => `${room}\n${address}\n${instance}`;
  const failed = (why) => {
    console.warn(`webraft: no port exchange at ${url} (${why}): tabs talk over `
      + "BroadcastChannel");
  };
  const deliver = (event) => {
    const d = event.data;
    const port = event.ports[0];
    const handler = d?.op === "offer" ? handlers.get(key(d.room, d.to, d.instance)) : undefined;
    if (handler === undefined || port === undefined) port?.close();
    else handler(d.from, d.fromInstance, port);
  };
  const start = () => {
    try {
      const started = new SharedWorker(url, { name: "webraft-ports" });
      started.addEventListener("error", () => failed("it did not load"));
      started.port.onmessage = deliver;
      return started;
    } catch (err) {
      failed(err.message);
      return false;
    }
  };
  const post = (message, transfer = []) => {
    worker ??= start();
    if (worker) worker.port.postMessage(message, transfer);
  };
  return {
    register(room, address, instance, handler) {
      handlers.set(key(room, address, instance), handler);
      post({ op: "register", room, address, instance });
    },
    unregister(room, address, instance) {
      handlers.delete(key(room, address, instance));
      post({ op: "unregister", room, address, instance });
    },
    offer(room, to, toInstance, from, fromInstance) {
      const channel = new MessageChannel();
      post({ op: "offer", room, to, instance: toInstance, from, fromInstance },
           [channel.port2]);
      return channel.port1;
    },
  };
}

/** One Pyodide (with the wheel) per page and bundle, shared by every node the page creates;
 * a failed load is forgotten, so a later call tries again. */
const runtimes = new Map();

function loadRuntime(pyodideURLs, distURL, status) {
  const key = `${pyodideURLs.join(" ")}\n${distURL}`;
  if (!runtimes.has(key)) {
    const loading = (async () => {
      const t0 = performance.now();
      status("starting Pyodide");
      // The wheel downloads while Pyodide boots (which is mostly compiling WebAssembly).
      const wheel = fetchWheel(distURL).then((got) => { mark("wheelFetched"); return got; });
      wheel.catch(() => {}); // reported below, once Pyodide is up (or failed first)
      const pyodide = await bootPyodide(pyodideURLs);
      const tBoot = performance.now();
      mark("pyodideReady");
      status("loading webraft");
      const { name, url, files, bytecode } = await wheel;
      // site is imported already; sysconfig would cost half a second to import.
      const sitePackages = pyodide.runPython("__import__('site').getsitepackages()[0]");
      try {
        // A pure-Python wheel is a zip to unpack into site-packages: no package manager
        // (loadPackage would fetch it again and resolve dependencies it has none of).
        writeFiles(pyodide, sitePackages, files);
      } catch (err) {
        throw new WebRaftLoadError(`cannot install ${url}: ${err.message}`);
      }
      if (bytecode !== null) {
        try {
          writeFiles(pyodide, sitePackages, bytecode);
        } catch (err) {
          console.warn(`webraft: cannot unpack the bytecode (${err.message}); compiling instead`);
        }
      }
      // The import system may have listed site-packages before these files were there: its
      // finder must look again. (importlib.invalidate_caches() would also import
      // importlib.metadata, compiled from source: 40-140 ms.)
      pyodide.runPython("(lambda finder: finder and finder.invalidate_caches())"
        + `(__import__("sys").path_importer_cache.get(${JSON.stringify(sitePackages)}))`);
      pyodide.registerJsModule("_webraft_page", PAGE);
      const bridge = pyodide.pyimport("webraft.browser.bridge");
      mark("webraftImported");
      return { pyodide, wheel: name, bridge, pyodideBoot: tBoot - t0 };
    })();
    runtimes.set(key, loading);
    loading.catch(() => runtimes.delete(key));
  }
  return runtimes.get(key);
}

function defaultRelay() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

/**
 * Boot Pyodide and webraft, claim a member slot in the room through the relay, and build the
 * node without starting it: register `apply` / `refresh` handlers, then call `start()`.
 *
 * options: room (required: the cluster's name), relay (ws URL; default: this page's host + /ws),
 * members (fixed member slots, e.g. ["n1","n2","n3"]: a tab takes the first free one; default:
 * none, the room's membership follows the tabs that come and go, see docs/browser.md), address
 * (force one), token (a string, or a function returning one or a Promise of one, called before each
 * connection: with a function, a token the relay finds expired is renewed), connectTimeout (ms to
 * get an address from the relay, default 15000), memberGrace (ms a member may be gone before it is
 * removed, default 20000), electionTimeout ([min, max] ms), heartbeatFrequency (ms),
 * heartbeatTimeout (ms), proposalTimeout (ms), lazyInterval (ms between a lazy follower's batched
 * appends, default 40, 0 off), snapshotEntries, snapshotBytes, snapshotTail (the compaction
 * policy), handover (hand leadership over when the page is hidden or closed, default true),
 * hiddenElectionDelay (ms a hidden follower waits longer before campaigning, default 1000),
 * broadcast (talk to this browser's tabs of the room directly, default true), pyodideURL (default
 * "pyodide/"), distURL (default "dist/") and portsURL (default "webraft-ports.js"; false: none),
 * resolved against this module's URL (so an absolute URL may point elsewhere), onStatus(text). The
 * tab's address is kept in sessionStorage, so a reload is the same node.
 *
 * Rejects with a WebRaftError named ValueError when `room` is missing or an option is of
 * the wrong kind (a string where milliseconds belong, say; before any slot is claimed), with a
 * WebRaftLoadError when Pyodide or the wheel cannot be loaded, and with a
 * WebRaftError named RoomFull (every slot is taken), RelayUnreachable (no slot granted
 * within connectTimeout) or RelayClosed (refused, e.g. a wrong token; `code` says why).
 * Pyodide is booted once per page: further nodes of the same page share it.
 */
export async function createNode(options = {}) {
  // Checked before anything loads: a forgotten room must not join someone else's cluster
  // (and receive its commands), which a default room would do.
  if (typeof options.room !== "string" || options.room === "") {
    throw new WebRaftError("ValueError", "createNode/connect needs a room: the name of "
      + "your cluster, the same in every tab of your app, e.g. { room: \"my-app\" }");
  }
  let portsURL = null;
  if (options.portsURL !== false) {
    try {
      portsURL = new URL(options.portsURL ?? DEFAULT_PORTS_URL, here).href;
    } catch {
      throw new WebRaftError("ValueError", `portsURL ${JSON.stringify(options.portsURL)} is `
        + "not a URL (or false: no port exchange)");
    }
  }
  const status = options.onStatus ?? (() => {});
  const t0 = performance.now();
  mark("start");
  const pyodideURLs = options.pyodideURL == null ? DEFAULT_PYODIDE_URLS : [options.pyodideURL];
  const runtime = await loadRuntime(pyodideURLs, options.distURL ?? DEFAULT_DIST_URL, status);
  const tReady = performance.now();
  const config = {
    room: options.room,
    relay: options.relay ?? defaultRelay(),
    members: options.members ?? null,
    address: options.address ?? null,
    // A function (returning the token or a Promise of it) is asked before each connection,
    // so an expired token (4002) is renewed; it cannot travel in JSON.
    token: typeof options.token === "function" ? null : options.token ?? null,
    connectTimeout: options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT,
    electionTimeout: options.electionTimeout ?? null,
    heartbeatFrequency: options.heartbeatFrequency ?? null,
    heartbeatTimeout: options.heartbeatTimeout ?? null,
    proposalTimeout: options.proposalTimeout ?? null,
    memberGrace: options.memberGrace ?? null,
    lazyInterval: options.lazyInterval ?? null,
    snapshotEntries: options.snapshotEntries ?? null,
    snapshotBytes: options.snapshotBytes ?? null,
    snapshotTail: options.snapshotTail ?? null,
    hiddenElectionDelay: options.hiddenElectionDelay ?? null,
    broadcast: options.broadcast ?? null,
    portsURL,
  };
  status(`claiming a member slot in room "${config.room}" through ${config.relay}`);
  const made = typeof options.token === "function"
    ? await runtime.bridge.create_for_js(JSON.stringify(config), options.token)
    : await runtime.bridge.create_for_js(JSON.stringify(config));
  if (typeof made === "string") throw answerError(JSON.parse(made));
  mark("nodeCreated");
  const raft = new WebRaft(runtime.pyodide, made, runtime.wheel);
  if (options.handover ?? true) raft._watchPage();
  // Booting Pyodide is shared by the page's nodes: a later node's share is what it waited.
  const pyodideBoot = Math.min(runtime.pyodideBoot, tReady - t0);
  raft.timings = { pyodideBoot, webraftReady: performance.now() - t0 - pyodideBoot };
  return raft;
}

/** createNode, attach `options.state` (a persistentState), register `options.listeners`
 * ({event: handler}), then start. */
export async function connect(options = {}) {
  const raft = await createNode(options);
  options.state?.attach(raft);
  for (const [type, handler] of Object.entries(options.listeners ?? {})) {
    raft.listen(type, handler);
  }
  raft.start();
  return raft;
}

/** Application state replicated through the log and kept in localStorage: the app declares its
 * state and how a command changes it; this does the bookkeeping of the `apply`, `refresh` and
 * `snapshot` handlers (which entry the saved state is at, loading a newer snapshot, handing
 * the state out as the snapshot). See docs/guide.md. */
export class PersistentState {
  constructor({ key = "webraft-state", initial = {}, apply, onChange = () => {} } = {}) {
    if (typeof apply !== "function") {
      throw new TypeError("persistentState needs apply(state, command, entry)");
    }
    this._prefix = key;
    this._initial = initial;
    this._apply = apply;
    this._onChange = onChange;
    /** The localStorage key, once attached: one per room and node, as tabs share storage. */
    this.storageKey = null;
    this.state = this._fresh();
    /** Index and term of the last entry the state includes (0: none). */
    this.index = 0;
    this.term = 0;
    this._saving = false;
    this._started = false; // the first refresh came
  }

  /** Register the handlers on `raft` (before `raft.start()`; connect({state}) does it). */
  attach(raft) {
    if (this.storageKey !== null) throw new Error("this persistentState is attached already");
    this.storageKey = `${this._prefix}:${raft.room}:${raft.address}`;
    raft.listen("refresh", (cb, snapshot) => this._refresh(cb, snapshot));
    raft.listen("apply", (entry, index, cb) => {
      this._applyEntry(entry);
      cb();
    });
    raft.listen("snapshot", () => this.state);
    return this;
  }

  _fresh() {
    return typeof this._initial === "function" ? this._initial() : structuredClone(this._initial);
  }

  /** The saved {term, index, state}, or null: storage is untrusted (another script, an older
   * version of the app), so anything else is dropped with a warning. */
  _load() {
    const text = localStorage.getItem(this.storageKey);
    if (text === null) return null;
    let saved;
    try {
      saved = JSON.parse(text);
    } catch {
      saved = null;
    }
    const whole = (n) => Number.isSafeInteger(n) && n >= 0;
    if (saved === null || typeof saved !== "object" || !whole(saved.index)
        || !whole(saved.term) || !("state" in saved)) {
      console.warn(`webraft: localStorage[${this.storageKey}] is not a saved state; ignored`);
      return null;
    }
    return saved;
  }

  _refresh(cb, snapshot) {
    const first = !this._started;
    this._started = true;
    const saved = first ? this._load() : null;
    if (saved !== null) {
      this.term = saved.term;
      this.index = saved.index;
      this.state = saved.state;
    }
    // At start: the saved state, unless the node's snapshot is newer (the entries in between
    // are gone). Later the node asks again only to load a snapshot a leader sent.
    if (snapshot !== null && (!first || snapshot.index > this.index)) {
      this.term = snapshot.term;
      this.index = snapshot.index;
      this.state = snapshot.data;
      this._save();
    }
    this._onChange(this.state, null);
    cb(this.term, this.index);
  }

  _applyEntry(entry) {
    const next = this._apply(this.state, entry.command, entry);
    if (next !== undefined) this.state = next;
    this.term = entry.term;
    this.index = entry.index;
    this._save();
    this._onChange(this.state, entry);
  }

  /** Saved once per JavaScript turn, however many entries it applied: state, index and term
   * go in one item, so the saved state is always exactly that of its index. */
  _save() {
    if (this._saving) return;
    this._saving = true;
    queueMicrotask(() => {
      this._saving = false;
      try {
        localStorage.setItem(this.storageKey, JSON.stringify(
          { term: this.term, index: this.index, state: this.state }));
      } catch (err) {
        // Kept in memory; the next apply tries again. The node re-applies from the saved
        // index after a reload, so nothing is lost, only replayed.
        console.error(`webraft: cannot save localStorage[${this.storageKey}]: ${err.message}`);
      }
    });
  }
}

/** A PersistentState: `initial` (a value, copied, or a function making it), `apply(state,
 * command, entry)` returning the new state (or undefined after changing `state` in place),
 * `onChange(state, entry)` after each change (entry null: loaded from storage or a snapshot),
 * `key`: the localStorage key's prefix (default "webraft-state"). */
export function persistentState(options) {
  return new PersistentState(options);
}

/** Adapt an `apply` handler to the bridge: Python calls it with plain values (the command as
 * JSON text) and learns from the return value whether `cb` was already called, so a
 * synchronous handler costs one call. A handler that returns a promise is done when the
 * promise settles (as in the Python API); otherwise when it calls `cb` (with an error: the
 * entry is retried and the error reported as an `error` event). */
function applyAdapter(node, handler) {
  return (term, index, text, token) => {
    const entry = { term, index, command: JSON.parse(text) };
    let inline = true; // still inside the handler call
    let outcome = WAITING; // what `cb` said while inline
    let finished = false;
    const cb = (error) => {
      if (finished) return;
      finished = true;
      if (inline) outcome = error == null ? APPLIED : errorFields(error);
      else if (error == null) node.apply_done(token);
      else node.apply_done(token, ...errorFields(error));
    };
    let returned;
    try {
      returned = handler(entry, index, cb);
    } catch (error) {
      finished = true;
      return errorFields(error);
    } finally {
      inline = false;
    }
    if (returned !== null && typeof returned === "object" && typeof returned.then === "function") {
      finished = true; // the promise decides, not cb
      returned.then(() => node.apply_done(token),
        (error) => node.apply_done(token, ...errorFields(error)));
      return WAITING;
    }
    return outcome;
  };
}

/** Adapt a `snapshot` handler `(index, term) => state` (or a promise of it): Python gets the
 * state as JSON text. */
function snapshotAdapter(handler) {
  return (index, term) => {
    const state = handler(index, term);
    if (state !== null && typeof state === "object" && typeof state.then === "function") {
      return state.then((value) => JSON.stringify(value ?? null));
    }
    return JSON.stringify(state ?? null);
  };
}

/** [name, message] of whatever was thrown or given to cb (Errors, DOMExceptions, ...). */
function errorFields(error) {
  if (error !== null && typeof error === "object" && typeof error.name === "string") {
    return [error.name, String(error.message ?? "")];
  }
  return ["Error", String(error)];
}

/** The JSON text of a command; throws an InvalidCommand WebRaftError if it has none. */
function commandText(command) {
  const invalid = (message) => new WebRaftError("InvalidCommand", message,
    { mayHaveCommitted: false });
  let text;
  try {
    text = JSON.stringify(command);
  } catch (err) {
    throw invalid(`command is not JSON-serializable: ${err.message}`);
  }
  if (text === undefined) throw invalid("command is not JSON-serializable");
  return text;
}

/** The error of a `{name, message, ...fields}` answer from Python (bridge.py). */
function answerError(answer) {
  const { name, message, ...fields } = answer; // e.g. mayHaveCommitted, seq, code
  return new WebRaftError(name, message, fields);
}

/** A client session (WebRaft.openSession/resumeSession): each command gets the next sequence
 * number and is retried under that number until its outcome is known, so it is applied
 * exactly once even across leader changes and lost answers. */
export class WebRaftSession {
  constructor(session) {
    this._session = session; // bridge.py's JsSession
  }

  /** The session's id (every node knows it; keep it with nextSeq to resume). */
  get id() { return this._session.id; }
  /** The number the next proposal will use. */
  get nextSeq() { return this._session.next_seq; }

  /** Apply `command` exactly once; resolves to the index where it was applied. Rejects with
   * SessionExpired if the cluster forgot this session, ProposalTimeout if no outcome came
   * within `timeout` ms (default: 6 proposal timeouts; the command may still apply, so
   * proposing it again as new could apply it twice: retry it exactly once with
   * `raft.resumeSession(session.id, error.seq)`), InvalidCommand for a command that is not
   * JSON. */
  async propose(command, { timeout = null } = {}) {
    const text = commandText(command);
    if (timeout != null && !(timeout > 0)) throw new TypeError("timeout must be positive");
    // undefined, not null, is None in Python
    const answer = JSON.parse(await this._session.propose(text, timeout ?? undefined));
    if (answer.name) throw answerError(answer);
    return answer.index;
  }
}

/** One node, with the seed's API. Times are milliseconds. */
export class WebRaft {
  constructor(pyodide, node, wheel) {
    this.pyodide = pyodide;
    this._node = node;
    this.wheel = wheel;
    this._subs = new Map(); // handler -> [{type, off}], off unsubscribes on the Python side
    // Proposals of one JavaScript turn cross to Python together (see propose), and their
    // outcomes come back together: id -> {resolve, reject} until then.
    this._nextId = 1;
    this._outbox = []; // JSON texts of this turn's proposals
    this._outboxFirst = 1; // id of _outbox[0]
    this._waiting = new Map();
    this._settling = []; // JSON texts of outcomes not yet taken up
    node.bind((text) => this._settle(text));
  }

  /** Replicate a JSON-serializable command; resolves to its log index once it is committed
   * and applied here. Rejects with a WebRaftError whose name is the webraft exception class
   * (NoLeaderError, ProposalTimeout, ...) and whose mayHaveCommitted says if a retry could
   * apply it twice. */
  propose(command) {
    let text;
    try {
      text = commandText(command);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      const id = this._nextId++;
      this._waiting.set(id, { resolve, reject });
      if (this._outbox.length === 0) {
        this._outboxFirst = id;
        queueMicrotask(() => this._sendOutbox());
      }
      this._outbox.push(text);
    });
  }

  _sendOutbox() {
    const texts = this._outbox;
    const first = this._outboxFirst;
    this._outbox = [];
    try {
      this._node.propose_many(first, texts.length, `[${texts.join(",")}]`);
    } catch (err) {
      const failed = texts.map((_, k) => [first + k, "RaftClosed", String(err.message ?? err),
        false]);
      this._settle(JSON.stringify(failed));
    }
  }

  /** Outcomes from Python (see bridge.py's JsNode.bind). They are taken up in a microtask,
   * once Python has returned: settling promises (and building Errors) while Python frames
   * are on the stack costs several times more. */
  _settle(text) {
    this._settling.push(text);
    if (this._settling.length === 1) queueMicrotask(() => this._settleNow());
  }

  _settleNow() {
    const batches = this._settling;
    this._settling = [];
    for (const text of batches) {
      for (const [id, indexOrName, message, mayHaveCommitted] of JSON.parse(text)) {
        const waiter = this._waiting.get(id);
        if (waiter === undefined) continue;
        this._waiting.delete(id);
        if (typeof indexOrName === "number") waiter.resolve(indexOrName);
        else waiter.reject(new WebRaftError(indexOrName, message, { mayHaveCommitted }));
      }
    }
  }

  /** Listen for an event. `apply` handlers get (entry, index, cb) with entry = {term, index,
   * command}; `refresh` handlers get (cb, snapshot): load your state, or `snapshot.data`
   * when `snapshot` ({index, term, data} or null) is newer, and call cb(term, index) of what
   * you loaded (an index below the snapshot the node must load is an `error` event, named
   * SnapshotNotLoaded, and the handler is asked again); `snapshot` handlers
   * get (index, term) and return the state machine's state (JSON-serializable, or a promise
   * of it). Returns a function that unsubscribes. */
  listen(type, handler) {
    return this._subscribe(type, handler, false);
  }

  listenOnce(type, handler) {
    return this._subscribe(type, handler, true);
  }

  unlisten(type, handler) {
    const subs = this._subs.get(handler) ?? [];
    const at = subs.findLastIndex((sub) => sub.type === type);
    if (at < 0) return;
    const [{ off }] = subs.splice(at, 1);
    off();
    off.destroy();
  }

  /** Emit an event to every listener, Python and JavaScript alike (args must be JSON). */
  emit(type, ...args) {
    this._node.emit(type, JSON.stringify(args));
  }

  _subscribe(type, handler, once) {
    if (typeof handler !== "function") throw new TypeError("handler must be a function");
    const target = type === "apply" ? applyAdapter(this._node, handler)
      : type === "snapshot" ? snapshotAdapter(handler)
        : type === "refresh" ? (cb, snapshot) => handler(cb, JSON.parse(snapshot)) : handler;
    const off = this._node.listen(type, target, once);
    if (!this._subs.has(handler)) this._subs.set(handler, []);
    this._subs.get(handler).push({ type, off });
    return () => this.unlisten(type, handler);
  }

  get address() { return this._node.address; }
  get room() { return this._node.room; }
  get isLeader() { return this._node.is_leader; }
  get leader() { return this._node.leader ?? null; }
  get state() { return this._node.state; }
  get term() { return this._node.term; }
  get commitIndex() { return this._node.commit_index; }
  get lastApplied() { return this._node.last_applied; }
  get members() { return this._node.members_json ? JSON.parse(this._node.members_json) : []; }
  /** {index, term, data} of the snapshot a `refresh` handler must load (otherwise the newest
   * one), or null. */
  get snapshot() { return JSON.parse(this._node.snapshot_json()); }

  /** A linearizable read: resolves to an index once this tab's state machine reflects every
   * write completed before the call (ReadIndex; rejects with NoLeaderError if no leader
   * confirmed in time). */
  async readIndex() {
    const answer = JSON.parse(await this._node.read_index());
    if (answer.name) throw answerError(answer);
    return answer.index;
  }

  /** Open a client session: its proposals are applied exactly once, however often they are
   * retried (Raft thesis §6.3). Resolves to a WebRaftSession. */
  async openSession() {
    const session = await this._node.open_session();
    if (typeof session === "string") throw answerError(JSON.parse(session));
    return new WebRaftSession(session);
  }

  /** A session opened earlier, e.g. by this tab before a reload (keep `id` and `nextSeq`
   * in sessionStorage) or by another node. `nextSeq` is the number of the next proposal:
   * past every number used for new commands, or the `seq` of a ProposalTimeout to retry
   * that command exactly once. */
  resumeSession(id, nextSeq) {
    if (![id, nextSeq].every((n) => Number.isSafeInteger(n) && n > 0)) {
      throw new TypeError("resumeSession(id, nextSeq) takes two positive integers");
    }
    return new WebRaftSession(this._node.resume_session(id, nextSeq));
  }

  /** Browsers throttle hidden tabs' timers: a hidden leader hands over, a hidden follower
   * campaigns later (BrowserRaft.hidden_election_delay), and a page being closed hands over
   * first, so failover takes milliseconds rather than an election timeout. */
  _watchPage() {
    const update = () => this._node.set_hidden(document.visibilityState === "hidden");
    document.addEventListener("visibilitychange", update);
    window.addEventListener("pagehide", () => { this._node.hand_over_now(); });
    update();
  }

  /** A snapshot of the node for dashboards: peers, log tail, message counters, recent
   * messages, connection state. */
  status() { return JSON.parse(this._node.status_json()); }

  /** The demo's cluster view (webraft/browser/view.py): every member as this tab knows it.
   * Create it before start() to see every message; each snapshot() drains the messages. */
  clusterView() {
    const view = this.pyodide.pyimport("webraft.browser.view").ClusterView(this._node.node);
    return { snapshot: () => JSON.parse(view.snapshot_json()) };
  }

  /** Freeze this node (no timers, messages dropped) or thaw it. */
  setPaused(paused) { this._node.set_paused(!!paused); }
  /** Disconnect from the relay (and stay away) or reconnect. */
  setOnline(online) { this._node.set_online(!!online); }
  /** If leading, hand leadership to the most up-to-date member. */
  stepDown() { return this._node.step_down() ?? null; }

  /** Start timers and applying (after registering `apply` and `refresh` handlers). */
  start() { this._node.start(); }

  /** Stop the node; storage keeps everything. */
  async close() {
    await this._node.close();
  }
}
