// The demo: a replicated key-value store and a live view of this tab's Raft node.
// It also documents the JavaScript API: the application keeps its state machine in
// localStorage through the seed's `apply` and `refresh` handlers, and gives webraft its state
// through `snapshot`, so the log can be compacted. Tabs join and leave the cluster as they
// open and close (`?members=a,b,c` pins fixed member slots instead).
import { createNode } from "./webraft.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const room = params.get("room") ?? "demo";
const members = params.get("members")?.split(",").filter(Boolean);
// Another relay (default: this page's own) and how long to wait for it, in ms (default 15 s).
const relay = params.get("relay") ?? undefined;
const connectTimeout = Number(params.get("connectTimeout")) || undefined;
// The membership and compaction policy (see createNode's options), e.g. for experiments.
const tuning = {};
for (const name of ["memberGrace", "snapshotEntries", "snapshotBytes", "snapshotTail"]) {
  if (params.has(name)) tuning[name] = Number(params.get(name));
}

// ---- the application's state machine, persisted the seed's way ---------------------------
let store = {};
let stateKey = null; // set once we know our address

function loadState() {
  try {
    const saved = JSON.parse(localStorage.getItem(stateKey) ?? "null");
    if (saved && typeof saved.data === "object") return saved;
  } catch { /* a corrupt record: start over from the log */ }
  return { data: {}, term: 0, index: 0 };
}

// apply(entry, index, cb): change the state machine, persist it with the entry's term and
// index, and only then call cb (the seed's "fully committed" rule).
function apply(entry, index, cb) {
  const cmd = entry.command;
  if (cmd && cmd.op === "put" && typeof cmd.key === "string") store[cmd.key] = cmd.value;
  if (cmd && cmd.op === "del" && typeof cmd.key === "string") delete store[cmd.key];
  try {
    localStorage.setItem(stateKey, JSON.stringify({ data: store, term: entry.term, index }));
    cb();
  } catch (err) {
    cb(err); // e.g. QuotaExceededError: webraft retries and reports it as an `error` event
  }
  renderStore();
}

// refresh(cb, snap): load the state from persistent storage and report where it stands, so
// that after a reload only newer entries are applied. When the node must load a snapshot (it
// fell behind the leader's compaction, or our own record is older than the node's snapshot),
// `snap` is the newer state: take it, persist it, report its term and index.
function refresh(cb, snap) {
  let saved = loadState();
  if (snap !== null && snap.index > saved.index) {
    saved = { data: snap.data?.data ?? {}, term: snap.term, index: snap.index };
    localStorage.setItem(stateKey, JSON.stringify(saved));
    refreshes += 1;
  }
  store = saved.data;
  renderStore();
  cb(saved.term, saved.index);
}
let refreshes = 0; // snapshots loaded (shown on the page)

// snapshot(index, term): the state machine's state, which webraft keeps instead of the log.
// The same shape as webraft-node's key-value store (webraft/member/kv.py), so a CPython
// member can join a cluster of tabs and load its snapshots, and the other way round.
function snapshot() {
  return { data: store };
}

// ---- the page -------------------------------------------------------------------------
function setStatus(text) { $("status").textContent = text; }

function showError(err) {
  const box = $("error");
  box.hidden = false;
  box.textContent = `${err.name ?? "Error"}: ${err.message ?? err}`;
}

function renderStore() {
  const body = $("store").querySelector("tbody");
  body.replaceChildren(...Object.keys(store).sort().map((key) => {
    const row = document.createElement("tr");
    const k = document.createElement("td");
    k.textContent = key;
    const v = document.createElement("td");
    v.textContent = JSON.stringify(store[key]);
    const del = document.createElement("td");
    const button = document.createElement("button");
    button.textContent = "delete";
    button.addEventListener("click", () => propose({ op: "del", key }));
    del.append(button);
    row.append(k, v, del);
    return row;
  }));
}

let raft = null;

async function propose(command) {
  const out = $("propose-result");
  const t0 = performance.now();
  try {
    const index = await raft.propose(command);
    out.textContent = `committed at index ${index} in ${(performance.now() - t0).toFixed(1)} ms`;
  } catch (err) {
    out.textContent = `${err.name}: ${err.message}` +
      (err.mayHaveCommitted ? " (it may still commit)" : " (it did not commit)");
  }
}

function renderNode() {
  const s = raft.status();
  const role = s.paused ? "paused" : (s.online ? s.state : "offline");
  $("role").textContent = role;
  $("role").className = `pill role ${role}`;
  $("address").textContent = `${s.room}/${s.address}`;
  $("term").textContent = s.term;
  $("leader").textContent = s.leader ?? "none";
  $("commit").textContent = s.commitIndex;
  $("applied").textContent = s.lastApplied;
  $("connection").textContent = s.connected ? `connected (${s.connections} connection(s) so far)`
    : (s.online ? "reconnecting…" : "offline");
  $("members").textContent = s.members.join(", ") +
    (s.learners.length ? ` (learners: ${s.learners.join(", ")})` : "");
  $("snapshot").textContent = s.snapshotIndex ?
    `at index ${s.snapshotIndex}; ${refreshes} loaded from the leader` : "none yet";
  $("peers").textContent = s.peers.length ? s.peers.join(", ") : "none";
  const sent = Object.values(s.sent).reduce((a, b) => a + b, 0);
  const received = Object.values(s.received).reduce((a, b) => a + b, 0);
  $("traffic").textContent = `${sent} sent, ${received} received` +
    (s.storageChars === null ? "" : `; ${s.storageChars} chars in localStorage`);
  $("log").replaceChildren(...s.log.map((e) => {
    const li = document.createElement("li");
    li.value = e.index;
    const what = e.kind === 1 ? "no-op" : e.kind === 2 ? "config" : JSON.stringify(e.command);
    li.textContent = `term ${e.term}: ${what}`;
    return li;
  }));
  $("flow").replaceChildren(...s.recent.slice(-14).reverse().map((m) => {
    const li = document.createElement("li");
    li.className = m.dir;
    li.textContent = m.dir === "out" ? `→ ${m.peer}  ${m.type}` : `← ${m.peer}  ${m.type}`;
    return li;
  }));
  $("pause").textContent = s.paused ? "Resume node" : "Pause node";
  $("offline").textContent = s.online ? "Go offline" : "Go online";
  $("stepdown").disabled = s.state !== "leader";
}

async function main() {
  try {
    raft = await createNode({ room, members, relay, connectTimeout, onStatus: setStatus,
      ...tuning });
  } catch (err) {
    setStatus("failed to start");
    showError(err);
    throw err;
  }
  // The node exists (its address claimed) but is not started: register the handlers first,
  // so that `refresh` runs before any entry is applied.
  stateKey = `webraft-demo/${room}/${raft.address}`;
  raft.listen("apply", apply);
  raft.listen("refresh", refresh);
  raft.listen("snapshot", snapshot);
  // Errors (a full localStorage, a refused frame, ...) are shown, not only logged.
  raft.listen("error", (err) => {
    console.warn("webraft:", err.name, err.message);
    $("last-error").textContent = `${err.name}: ${err.message}`;
  });
  raft.start();
  window.webraft = raft; // for curious people and for the e2e tests
  window.demo = { get refreshes() { return refreshes; }, get store() { return store; } };
  setStatus(`member ${raft.address} of room "${room}" — booted in ` +
    `${(raft.timings.pyodideBoot / 1000).toFixed(1)} s + ` +
    `${(raft.timings.webraftReady / 1000).toFixed(1)} s`);
  document.querySelector("main").hidden = false;
  $("put").addEventListener("submit", (event) => {
    event.preventDefault();
    let value = $("value").value;
    try { value = JSON.parse(value); } catch { /* plain text */ }
    propose({ op: "put", key: $("key").value, value });
  });
  $("pause").addEventListener("click", () => raft.setPaused(!raft.status().paused));
  $("offline").addEventListener("click", () => raft.setOnline(!raft.status().online));
  $("stepdown").addEventListener("click", () => raft.stepDown());
  $("read").addEventListener("click", async () => {
    const out = $("propose-result");
    try {
      const index = await raft.readIndex();
      renderStore();
      out.textContent = `linearizable read at index ${index}: the table is up to date`;
    } catch (err) {
      out.textContent = `${err.name}: ${err.message}`;
    }
  });
  renderStore();
  renderNode();
  setInterval(renderNode, 250);
}

main();
