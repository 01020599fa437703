// The demo: a replicated key-value store and a picture of the cluster as this tab knows it
// (members, election timers, logs, messages in flight; webraft/browser/view.py gathers it).
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
for (const name of ["memberGrace", "snapshotEntries", "snapshotBytes", "snapshotTail",
  "heartbeatFrequency", "heartbeatTimeout", "lazyInterval"]) {
  if (params.has(name)) tuning[name] = Number(params.get(name));
}
// ?broadcast=0: every message through the relay, none over BroadcastChannel.
if (params.get("broadcast") === "0") tuning.broadcast = false;
// ?ports=0: over BroadcastChannel only, no MessagePort through the port exchange.
if (params.get("ports") === "0") tuning.portsURL = false;
// Slow motion, e.g. ?heartbeatFrequency=400&heartbeatTimeout=2000&electionTimeout=1500,3000
if (params.has("electionTimeout")) tuning.electionTimeout = params.get("electionTimeout")
  .split(",").map(Number);

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

/** An element with a class and text (the view is rebuilt from plain data, never from HTML). */
function el(tag, className = "", text = "") {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== "") node.textContent = text;
  return node;
}

function renderStore() {
  const body = $("store").querySelector("tbody");
  body.replaceChildren(...Object.keys(store).sort().map((key) => {
    const row = document.createElement("tr");
    const k = el("td", "", key);
    const v = el("td", "", JSON.stringify(store[key]));
    const del = document.createElement("td");
    const button = el("button", "", "delete");
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
    return true;
  } catch (err) {
    out.textContent = `${err.name}: ${err.message}` +
      (err.mayHaveCommitted ? " (it may still commit)" : " (it did not commit)");
    return false;
  }
}

// ---- boot progress ------------------------------------------------------------------------
const BOOT_STEPS = ["pyodide", "wheel", "claim", "node", "member"];
const bootStarted = performance.now();
let bootStep = -1;

/** Mark `step` as the one in progress (those before it done, with the time they ended). */
function bootAt(step) {
  const at = BOOT_STEPS.indexOf(step);
  if (at <= bootStep) return;
  const seconds = ((performance.now() - bootStarted) / 1000).toFixed(1);
  for (const li of $("boot-steps").children) {
    const i = BOOT_STEPS.indexOf(li.dataset.step);
    if (i < at && !li.classList.contains("done")) {
      li.classList.add("done");
      li.classList.remove("active");
      li.dataset.time = `${seconds} s`;
    } else if (i === at) {
      li.classList.add("active");
    }
  }
  bootStep = at;
  $("boot-progress").value = at;
}

function bootDone() {
  bootAt("member");
  const li = $("boot-steps").lastElementChild;
  li.classList.replace("active", "done");
  li.dataset.time = `${((performance.now() - bootStarted) / 1000).toFixed(1)} s`;
  $("boot-progress").value = BOOT_STEPS.length;
  $("boot").classList.add("finished");
}

function onBootStatus(text) {
  setStatus(text);
  if (text.startsWith("starting Pyodide")) bootAt("pyodide");
  else if (text.startsWith("loading webraft")) bootAt("wheel");
  else if (text.startsWith("claiming")) bootAt("claim");
}

// ---- the cluster view: data pulled 5 times a second, drawn per animation frame ------------
const PULL_MS = 200; // view snapshots (webraft/browser/view.py)
const STATUS_EVERY = 5; // every fifth pull also reads status() for the "This tab" panel
// A pull this late means the page's thread is busy (tabs of one browser share it, and one
// booting Pyodide holds it for seconds): the diagram then stands still, leaving the thread to
// the node's heartbeats, until pulls are on time again.
const BUSY_LATE_MS = 100;
const FLIGHT_MS = 700; // how long a message dot takes to cross (slowed down to be seen)
const MAX_FLIGHTS = 60;
const LOG_CELLS = 24;
const ROLE_TEXT = { waiting: "waiting to be added", unknown: "?" };
const BEAT_FRESH_MS = 1000; // a link without heartbeats for longer is not drawn
const MESSAGE_COLOURS = {
  append: "#3a62c4", append_resp: "#8aa4e0", vote: "#c27c0e", vote_resp: "#e3b25c",
  timeout_now: "#b3261e", snapshot: "#7b3fb0", snapshot_resp: "#b895d6", commit: "#1f8f4e",
};

let view = null; // raft.clusterView()
let snap = null; // its latest snapshot
let pulledAt = 0; // performance.now() of that snapshot
let pulls = 0;
let lastPull = 0;
let busy = false;
// The view's own cost (ms in all, of which Python's snapshot), for whoever measures it.
const cost = { pullMs: 0, snapshotMs: 0, drawMs: 0, pulls: 0, frames: 0 };
const flights = []; // {from, to, type, label, count, start}
const beats = new Map(); // "from>to" -> {rate (per second), seenAt}

const termColour = (term) => `hsl(${(term * 67) % 360} 55% 55%)`;

function pull() {
  if (document.hidden) return; // nothing is drawn; the view keeps a bounded backlog
  const t0 = performance.now();
  busy = lastPull > 0 && t0 - lastPull - PULL_MS > BUSY_LATE_MS;
  lastPull = t0;
  snap = view.snapshot();
  pulledAt = performance.now();
  cost.snapshotMs += pulledAt - t0;
  for (const m of snap.messages) {
    flights.push({ ...m, start: pulledAt - Math.min(m.ageMs, PULL_MS) });
  }
  flights.splice(0, Math.max(0, flights.length - MAX_FLIGHTS));
  for (const b of snap.heartbeats) {
    const link = `${b.from}>${b.to}`;
    const rate = beats.get(link)?.rate ?? b.perSecond; // smoothed over a few pulls
    beats.set(link, { rate: 0.7 * rate + 0.3 * b.perSecond, seenAt: pulledAt - b.ageMs });
  }
  renderView();
  drawLayer();
  if (pulls++ % STATUS_EVERY === 0) renderNode();
  cost.pullMs += performance.now() - t0;
  cost.pulls += 1;
}

function renderView() {
  const me = snap.members.find((m) => m.self);
  const role = me.presence === "online" ? me.role : me.presence;
  $("role").textContent = ROLE_TEXT[role] ?? role;
  $("role").className = `pill role ${role}`;
  $("term").textContent = snap.term;
  $("leader").textContent = snap.leader ?? "none";
  $("waiting").hidden = snap.member;
  if (snap.member && !$("boot").classList.contains("finished")) bootDone();
  $("stepdown").disabled = snap.role !== "leader";
  const log = snap.log.map((e) => [e.index, e.term, e.committed]);
  changed("members", snap.members.map(memberCells), renderMembers);
  changed("beats", liveBeats(performance.now()).map(([link, b]) => [link, Math.round(b.rate)]),
    renderBeats);
  changed("logs", [log, snap.snapshot.index, snap.commitIndex,
    snap.members.map((m) => [m.id, m.role, m.known, m.next])], renderLogs);
  changed("entries", log, renderEntries);
  if (snap.messages.length) renderMessages();
}

/** Call `render(value)` only when `value` differs from the last one for `part`: the DOM is
 * rebuilt when what it shows changed, not on every pull. */
const shown = new Map();
function changed(part, value, render) {
  const key = JSON.stringify(value);
  if (shown.get(part) === key) return;
  shown.set(part, key);
  render(value);
}

const ms = (value) => (value === null ? "–" : value < 1000 ? `${value} ms` :
  `${(value / 1000).toFixed(1)} s`);

/** The texts of a member's row: [id, role, term, vote, presence, progress, heard]. */
function memberCells(m) {
  const progress = m.match === null ? "–" : `${m.match} / ${m.next}` +
    (m.progress === "replicate" ? "" : ` (${m.progress})`);
  const heard = m.self || m.heardAgo === null ? (m.self ? "" : "–") :
    m.heardAgo < 500 ? "just now" : ms(m.heardAgo);
  return [m.id, m.role, String(m.term ?? "?"), m.vote ?? "–", m.presence, progress, heard];
}

const CELL_CLASSES = ["id", "role", "term", "vote", "presence", "progress", "heard"];
function renderMembers(rows) {
  $("members").querySelector("tbody").replaceChildren(...rows.map((cells, i) => {
    const m = snap.members[i];
    const row = el("tr", m.self ? "self" : "");
    row.dataset.id = m.id;
    row.append(...cells.map((text, k) => el("td", CELL_CLASSES[k] +
      (k === 1 || k === 4 ? ` ${text}` : ""),
    k === 0 && m.self ? `${text} (this tab)` : k === 1 ? ROLE_TEXT[text] ?? text : text)));
    return row;
  }));
}

function renderBeats(links) {
  $("beats").replaceChildren(...(links.length ? links.map(([link, perSecond]) =>
    el("li", "", `${link.replace(">", " → ")}  ${perSecond}/s`)) :
    [el("li", "", "none right now")]));
}

/** One row of bars per member: this tab's own log, and what it knows of the others' (up to
 * their match index on the leader; what is committed, for the leader seen by a follower). */
function renderLogs() {
  const last = snap.lastIndex;
  const first = Math.max(1, last - LOG_CELLS + 1);
  const terms = new Map(snap.log.map((e) => [e.index, e]));
  $("logs").replaceChildren(...snap.members.map((m) => {
    const row = el("div", "logrow");
    row.dataset.id = m.id;
    row.append(el("span", `who role ${m.role}`, m.id));
    const bars = el("div", "bars");
    if (m.known === null) {
      bars.append(el("span", "unknown", "unknown to this tab"));
    } else {
      if (snap.snapshot.index >= first - 1 && snap.snapshot.index > 0 && m.self) {
        bars.append(el("span", "bar snap", `▨ ≤${snap.snapshot.index}`));
      }
      for (let i = first; i <= last; i++) {
        const entry = terms.get(i);
        const have = i <= m.known;
        const bar = el("span", "bar" + (have ? "" : " missing") +
          (entry?.committed ? "" : " uncommitted") + (i === snap.commitIndex ? " commit" : "") +
          (i === m.next ? " next" : ""), have && entry ? entry.term : "");
        if (have && entry) {
          bar.style.background = termColour(entry.term);
          bar.title = `${i} (term ${entry.term}): ${entry.label}`;
          bar.classList.add(entry.kind);
        }
        bars.append(bar);
      }
      if (m.next === last + 1) bars.append(el("span", "bar next"));
      if (!bars.children.length) bars.append(el("span", "unknown", "empty"));
    }
    row.append(bars);
    return row;
  }));
}

function renderEntries() {
  $("log").replaceChildren(...snap.log.slice(-10).reverse().map((e) => {
    const li = el("li", `${e.kind}${e.committed ? "" : " uncommitted"}`,
      `term ${e.term}: ${e.label}`);
    li.value = e.index;
    return li;
  }));
}

const recent = []; // the list of messages, newest last
function renderMessages() {
  for (const m of snap.messages) recent.push(m);
  recent.splice(0, Math.max(0, recent.length - 12));
  $("flow").replaceChildren(...recent.slice().reverse().map((m) => {
    const li = el("li", m.from === snap.self ? "out" : "in",
      `${m.from} → ${m.to}  ${m.label}${m.count > 1 ? `  ×${m.count}` : ""}`);
    li.style.borderColor = MESSAGE_COLOURS[m.type] ?? "#999";
    return li;
  }));
}

// The diagram: members on a circle, election timers as rings, messages as dots. What changes
// only with the data (members, labels, heartbeat links) is drawn on `layer` once per change;
// a frame copies it and adds what moves (rings, dots), ~15 times a second: a software-rendered
// canvas (a headless or GPU-less browser) spends milliseconds on text alone.
const FRAME_MS = 66;
const MAX_LABELS = 4; // message dots that also carry their label (the newest)
const RING_R = 41; // this tab's ring around its member
const TEXT_BELOW = 70; // baseline of a member's second line of text, below its centre
const LABEL_OFFSETS = [-10, 20, -24, 34]; // a message label's tries, above and below its dot
const canvas = $("diagram");
const ctx = canvas.getContext("2d");
const layer = document.createElement("canvas");
layer.width = canvas.width;
layer.height = canvas.height;
const ROLE_COLOURS = { leader: "#1f8f4e", candidate: "#c27c0e", follower: "#3a62c4",
  learner: "#8a5cc2" }; // waiting and unknown: grey
let at = new Map(); // member -> {x, y}
let texts = []; // boxes of the members' names and roles, which message labels avoid
let layerKey = "";

function liveBeats(now) {
  return [...beats.entries()].filter(([, b]) => now - b.seenAt < BEAT_FRESH_MS);
}

/** Redraw `layer` if what it shows changed since the last snapshot. */
function drawLayer() {
  const now = performance.now();
  const links = liveBeats(now).map(([link]) => link);
  const key = JSON.stringify([snap.members.map((m) => [m.id, m.role, m.presence, m.term]),
    links]);
  if (key === layerKey) return;
  layerKey = key;
  at = new Map();
  texts = [];
  const n = snap.members.length;
  // A member's ring reaches RING_R above its centre and its two lines of text TEXT_BELOW
  // below it: the circle sits so that both fit, whichever member is at the bottom.
  const top = RING_R + 4;
  const bottom = canvas.height - TEXT_BELOW - 6;
  const cx = canvas.width / 2;
  const cy = (top + bottom) / 2;
  const r = n === 1 ? 0 : Math.min(cx - 60, (bottom - top) / 2);
  snap.members.forEach((m, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / n;
    at.set(m.id, { x: cx + r * Math.cos(a), y: cy + r * Math.sin(a) });
  });
  const g = layer.getContext("2d");
  g.clearRect(0, 0, layer.width, layer.height);
  g.strokeStyle = "#d5d9e3";
  g.lineWidth = 1;
  for (const link of links) {
    const [p, q] = link.split(">").map((id) => at.get(id));
    if (!p || !q) continue;
    g.beginPath(); g.moveTo(p.x, p.y); g.lineTo(q.x, q.y); g.stroke();
  }
  g.font = "12px system-ui, sans-serif";
  g.textAlign = "center";
  for (const m of snap.members) {
    const p = at.get(m.id);
    const colour = ROLE_COLOURS[m.role] ?? "#9aa1b1";
    g.globalAlpha = m.presence === "offline" ? 0.3 : 1;
    g.fillStyle = colour;
    g.beginPath(); g.arc(p.x, p.y, 28, 0, 2 * Math.PI); g.fill();
    g.fillStyle = "white";
    if (m.presence === "paused") {
      g.fillRect(p.x - 8, p.y - 9, 5, 18);
      g.fillRect(p.x + 3, p.y - 9, 5, 18);
    } else {
      g.fillText(`T${m.term ?? "?"}`, p.x, p.y + 4);
    }
    if (m.self) {
      g.strokeStyle = "#1d2330";
      g.lineWidth = 2;
      g.beginPath(); g.arc(p.x, p.y, RING_R, 0, 2 * Math.PI); g.stroke();
    }
    g.globalAlpha = 1;
    g.fillStyle = "#1d2330";
    g.fillText(m.id, p.x, p.y + 56);
    g.fillStyle = "#6b7385";
    const role = ROLE_TEXT[m.role] ?? m.role;
    g.fillText(role, p.x, p.y + TEXT_BELOW);
    const half = Math.max(g.measureText(m.id).width, g.measureText(role).width) / 2;
    texts.push({ x0: p.x - half, x1: p.x + half, y0: p.y + 44, y1: p.y + TEXT_BELOW + 3 });
  }
}

let drawn = 0;
function draw(now) {
  requestAnimationFrame(draw);
  if (snap === null || busy || now - drawn < FRAME_MS) return;
  drawn = now;
  const t0 = performance.now();
  drawFrame(now);
  cost.drawMs += performance.now() - t0;
  cost.frames += 1;
}

function drawFrame(now) {
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(layer, 0, 0);
  // A heartbeat dot loops along each link at the heartbeat period.
  ctx.fillStyle = "#e06c8a";
  const t = (now % snap.heartbeatMs) / snap.heartbeatMs;
  for (const [link] of liveBeats(now)) {
    const [p, q] = link.split(">").map((id) => at.get(id));
    if (!p || !q) continue;
    ctx.beginPath();
    ctx.arc(p.x + (q.x - p.x) * t, p.y + (q.y - p.y) * t, 2.5, 0, 2 * Math.PI);
    ctx.fill();
  }
  // Election timers: a ring that empties (dashed: estimated from the last heartbeat).
  ctx.lineWidth = 4;
  for (const m of snap.members) {
    const p = at.get(m.id);
    if (!m.timer || !p) continue;
    const left = m.timer.left - (now - pulledAt);
    const fraction = Math.max(0, Math.min(1, left / m.timer.total));
    ctx.strokeStyle = ROLE_COLOURS[m.role] ?? "#9aa1b1";
    ctx.setLineDash(m.timer.exact ? [] : [4, 3]);
    ctx.beginPath();
    ctx.arc(p.x, p.y, 35, -Math.PI / 2, -Math.PI / 2 + 2 * Math.PI * fraction);
    ctx.stroke();
  }
  ctx.setLineDash([]);
  // Messages in flight (slowed down so that they can be followed).
  ctx.font = "11px system-ui, sans-serif";
  ctx.textAlign = "center";
  const candidates = []; // the newest dots, whose labels are tried once every dot is drawn
  for (let i = flights.length - 1; i >= 0; i--) {
    const f = flights[i];
    const progress = (now - f.start) / FLIGHT_MS;
    const p = at.get(f.from);
    const q = at.get(f.to);
    if (progress >= 1 || !p || !q) { flights.splice(i, 1); continue; }
    const x = p.x + (q.x - p.x) * Math.max(0, progress);
    const y = p.y + (q.y - p.y) * Math.max(0, progress);
    ctx.fillStyle = MESSAGE_COLOURS[f.type] ?? "#777";
    ctx.beginPath(); ctx.arc(x, y, 6, 0, 2 * Math.PI); ctx.fill();
    if (candidates.length < 2 * MAX_LABELS) candidates.push({ f, x, y });
  }
  const taken = [...texts]; // and the boxes of the labels written in this frame
  const discs = [...at.values()];
  let labels = 0;
  for (const { f, x, y } of candidates) {
    if (labels === MAX_LABELS) break;
    if (placeLabel(f.label + (f.count > 1 ? ` ×${f.count}` : ""), x, y, taken, discs)) {
      labels += 1;
    }
  }
}

/** Write a message's label beside its dot where it covers no member (`discs`), member's
 * text or other label (`taken`), at the first free place of LABEL_OFFSETS, and say whether
 * it did: messages of one round leave together on one link, and their labels written at one
 * spot were unreadable. */
function placeLabel(text, x, y, taken, discs) {
  const half = ctx.measureText(text).width / 2 + 2;
  const left = Math.max(half, Math.min(canvas.width - half, x)); // inside the canvas
  for (const dy of LABEL_OFFSETS) {
    const box = { x0: left - half, x1: left + half, y0: y + dy - 10, y1: y + dy + 3 };
    if (box.y0 < 0 || box.y1 > canvas.height) continue;
    if (taken.some((b) => b.x0 < box.x1 && box.x0 < b.x1 && b.y0 < box.y1 && box.y0 < b.y1)) {
      continue;
    }
    if (discs.some((p) => coversDisc(box, p))) continue;
    taken.push(box);
    ctx.fillStyle = "#1d2330";
    ctx.fillText(text, left, y + dy);
    return true;
  }
  return false;
}

/** Whether `box` overlaps a member's disc and ring at `p`. */
function coversDisc(box, p) {
  const dx = Math.max(box.x0 - p.x, 0, p.x - box.x1);
  const dy = Math.max(box.y0 - p.y, 0, p.y - box.y1);
  return dx * dx + dy * dy < RING_R * RING_R;
}

// ---- this tab's details (status(), read less often) -----------------------------------------
function renderNode() {
  const s = raft.status();
  $("address").textContent = `${s.room}/${s.address}`;
  $("commit").textContent = s.commitIndex;
  $("applied").textContent = s.lastApplied;
  $("connection").textContent = s.connected ? `connected (${s.connections} connection(s) so far)`
    : (s.online ? "reconnecting…" : "offline");
  $("snapshot").textContent = s.snapshotIndex ?
    `at index ${s.snapshotIndex}; ${refreshes} loaded from the leader` : "none yet";
  const sent = Object.values(s.sent).reduce((a, b) => a + b, 0);
  const received = Object.values(s.received).reduce((a, b) => a + b, 0);
  $("traffic").textContent = `${sent} sent, ${received} received` +
    (s.storageChars === null ? "" : `; ${s.storageChars} chars in localStorage`);
  $("pause").textContent = s.paused ? "Resume node" : "Pause node";
  $("offline").textContent = s.online ? "Go offline" : "Go online";
}

async function main() {
  try {
    raft = await createNode({ room, members, relay, connectTimeout, onStatus: onBootStatus,
      ...tuning });
  } catch (err) {
    setStatus("failed to start");
    showError(err);
    throw err;
  }
  bootAt("node"); // the node exists; it is started below
  // The node exists (its address claimed) but is not started: register the handlers first,
  // so that `refresh` runs before any entry is applied, and the view, so it sees every message.
  stateKey = `webraft-demo/${room}/${raft.address}`;
  raft.listen("apply", apply);
  raft.listen("refresh", refresh);
  raft.listen("snapshot", snapshot);
  // Errors (a full localStorage, a refused frame, ...) are shown, not only logged.
  raft.listen("error", (err) => {
    console.warn("webraft:", err.name, err.message);
    $("last-error").textContent = `${err.name}: ${err.message}`;
  });
  view = raft.clusterView();
  raft.start();
  bootAt("member"); // done once a configuration holds this tab (see renderView)
  window.webraft = raft; // for curious people and for the e2e tests
  window.demo = { get refreshes() { return refreshes; }, get store() { return store; },
    get view() { return snap; }, cost };
  setStatus(`member ${raft.address} of room "${room}" — booted in ` +
    `${(raft.timings.pyodideBoot / 1000).toFixed(1)} s + ` +
    `${(raft.timings.webraftReady / 1000).toFixed(1)} s`);
  document.querySelector("main").hidden = false;
  $("put").addEventListener("submit", async (event) => {
    event.preventDefault();
    let value = $("value").value;
    try { value = JSON.parse(value); } catch { /* plain text */ }
    if (await propose({ op: "put", key: $("key").value, value })) {
      $("key").value = "";
      $("value").value = "";
      $("key").focus();
    }
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
  pull();
  setInterval(pull, PULL_MS);
  requestAnimationFrame(draw);
}

main();
