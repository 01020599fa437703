// Type declarations for browser/webraft.js (the JavaScript API of webraft).

/** A log entry as apply handlers see it. */
export interface Entry {
  term: number;
  index: number;
  command: unknown;
}

/** Raised when Pyodide or the webraft wheel cannot be loaded. */
export class WebRaftLoadError extends Error {}

/** A webraft error; `name` is webraft's exception class. */
export class WebRaftError extends Error {
  constructor(name: string, message: string, fields?: Record<string, unknown>);
  /** Proposals only: true when the command may still commit. */
  mayHaveCommitted?: boolean;
  /** A session's ProposalTimeout only: the command's number, to retry it exactly once with
   * resumeSession(id, seq). */
  seq?: number;
  /** RelayClosed only: the relay's close code (4001: bad token, ...). */
  code?: number | null;
}

/** Why createNode / connect failed, besides WebRaftLoadError. */
export interface ConnectError extends WebRaftError {
  name:
    | "RoomFull" // every member slot of the room is held by another tab
    | "RelayUnreachable" // no slot granted within connectTimeout
    | "RelayClosed" // the relay refused us for good (see code)
    | "ValueError" // a bad option (a missing room, a bad room or address name, a timing
                   // that is not a number of milliseconds, ...)
    | string;
}

/** A failed proposal: `name` is the webraft exception class. */
export interface ProposalError extends WebRaftError {
  name:
    | "NoLeaderError" | "NotLeaderError" | "LeadershipLost" | "InvalidCommand"
    | "ProposalTimeout" | "RaftClosed" | string;
  /** True when the command may still commit, so a blind retry could apply it twice. */
  mayHaveCommitted: boolean;
}

export interface Options {
  /** Room (one cluster per room): required, so that an app never joins another's cluster
   * by accident (a missing or empty room rejects with a ValueError). */
  room: string;
  /** Relay WebSocket URL; default: this page's host + "/ws". */
  relay?: string;
  /** Fixed member slots (a tab claims the first free one). Default: none, membership follows
   * the tabs of the room (the first founds the cluster, the leader adds and removes). */
  members?: string[];
  /** Force this tab's address. */
  address?: string;
  /** Automatic membership: ms a member may be gone before it is removed; default 20000. */
  memberGrace?: number;
  /** Compaction: snapshot every this many entries (default 1000) or bytes of entries
   * (default 262144) applied, keeping a tail of snapshotTail entries (default 200). */
  snapshotEntries?: number;
  snapshotBytes?: number;
  snapshotTail?: number;
  /** Hand leadership over when the page is hidden or closed (pagehide); default true. */
  handover?: boolean;
  /** Extra ms a hidden follower waits before campaigning, so a visible one wins (default
   * 1000; 0: none). */
  hiddenElectionDelay?: number;
  /** Talk to the room's tabs of this browser past the relay, the relay carrying only the
   * rest; default true. They find each other on a BroadcastChannel (`webraft/<room>`) and
   * talk over a MessagePort per pair (see portsURL), or their pair's BroadcastChannel. With
   * it, "offline" (setOnline(false)) still reaches those tabs. */
  broadcast?: boolean;
  /** Room token, if the relay has a secret; or a function returning it (or a Promise of
   * it), called before each connection, so that a token the relay finds expired (4002) is
   * renewed instead of ending the node. */
  token?: string | (() => string | Promise<string>);
  /** Longest wait in ms for the relay to grant a member slot (it may be unreachable);
   * default 15000, then createNode rejects with RelayUnreachable. */
  connectTimeout?: number;
  /** Candidate timeout range in ms; default [150, 300]. */
  electionTimeout?: [number, number];
  /** Leader heartbeat interval in ms; default 50. */
  heartbeatFrequency?: number;
  /** Leader silence in ms after which a follower campaigns; default 200. */
  heartbeatTimeout?: number;
  /** Longest a proposal waits for its outcome, in ms; default 5000. */
  proposalTimeout?: number;
  /** Lazy followers: a leader sends new entries at once only to the followers a commit
   * needs and batches the others', one append per this many ms; default 40, at most
   * heartbeatFrequency, 0 turns it off (every follower gets every entry at once). */
  lazyInterval?: number;
  /** Where Pyodide is: a URL resolved against webraft.js's own URL. Default: "pyodide/"
   * (next to webraft.js) or else "../pyodide/" (beside the package: node_modules/pyodide of an
   * npm install, the relay's /pyodide/ for its /webraft/webraft.js). Set it when a bundler
   * moves webraft.js away from them. */
  pyodideURL?: string;
  /** Where the wheel and its manifest.json are, resolved the same way; default "dist/". */
  distURL?: string;
  /** The port exchange, webraft-ports.js (a SharedWorker script), resolved the same way;
   * default "webraft-ports.js", next to webraft.js. Through it two tabs of this browser
   * trade a MessagePort and talk over it, a round trip ~0.2 ms faster than over their
   * BroadcastChannel. Without it (false, a URL that does not load, or no SharedWorker in
   * the browser) they keep the BroadcastChannel. */
  portsURL?: string | false;
  /** Progress messages while booting. */
  onStatus?: (text: string) => void;
  /** connect() only: handlers registered before the node starts. */
  listeners?: Partial<Record<EventName, (...args: any[]) => unknown>>;
  /** connect() only: application state that handles apply, refresh and snapshot (see
   * persistentState); attached before `listeners`. */
  state?: PersistentState<any, any>;
}

export type EventName =
  | "join" | "leave" | "leader" | "candidate" | "follower" | "state changed"
  | "heartbeat timeout" | "start election" | "apply" | "updated" | "refresh" | "error"
  | string;

/** Done when it calls cb (at once or later; with an error the entry is retried and the error
 * reported as an `error` event) or, if it returns a promise, when that settles. */
export type ApplyHandler =
  (entry: Entry, index: number, cb: (error?: unknown) => void) => void | Promise<void>;
/** Load your state, or `snapshot.data` when `snapshot` is newer (it is the one the node must
 * load, otherwise its newest; the same as `raft.snapshot`, which a handler given to
 * `connect()` cannot reach yet), then call cb with the term and index of what you loaded
 * (cb() with none: start from the snapshot). Reporting an index below a snapshot the node
 * must load is an `error` event named SnapshotNotLoaded, and the handler is called again. */
export type RefreshHandler = (
  cb: (term?: number, index?: number) => void,
  snapshot: { index: number; term: number; data: unknown } | null,
) => void;
/** The state machine's state as of entry `index` (JSON-serializable), or a promise of it. */
export type SnapshotHandler = (index: number, term: number) => unknown;

export interface Status {
  address: string; room: string; state: string; term: number; leader: string | null;
  commitIndex: number; lastApplied: number; lastIndex: number;
  members: string[]; learners: string[]; snapshotIndex: number; hidden: boolean;
  peers: string[]; log: Array<Entry & { kind: number }>;
  connected: boolean; online: boolean; paused: boolean; connections: number;
  /** Tabs of this browser linked past the relay; those of them reached over a MessagePort. */
  linked: string[]; ported: string[]; stalls: number;
  sent: Record<string, number>; received: Record<string, number>;
  recent: Array<{ t: number; dir: "in" | "out"; peer: string; type: string }>;
  storageChars: number | null;
}

/** A client session: proposals applied exactly once (Raft thesis §6.3). */
export class WebRaftSession {
  readonly id: number;
  /** The sequence number of the next proposal; keep it with id to resume after a reload. */
  readonly nextSeq: number;
  /** Resolves to the index where the command was (first) applied; rejects with
   * SessionExpired, ProposalTimeout (after timeout ms; it may still apply: retry exactly
   * once through resumeSession(id, error.seq)) or InvalidCommand. */
  propose(command: unknown, options?: { timeout?: number | null }): Promise<number>;
}

export class WebRaft {
  readonly address: string;
  readonly room: string;
  readonly isLeader: boolean;
  readonly leader: string | null;
  readonly state: "follower" | "candidate" | "leader";
  readonly term: number;
  readonly commitIndex: number;
  readonly lastApplied: number;
  readonly members: string[];
  /** The snapshot a refresh handler must load (otherwise the newest), or null. */
  readonly snapshot: { index: number; term: number; data: unknown } | null;
  readonly wheel: string;
  /** Milliseconds spent booting Pyodide and then getting webraft ready. */
  timings: { pyodideBoot: number; webraftReady: number };

  /** Resolves to the log index once committed and applied here; rejects with ProposalError. */
  propose(command: unknown): Promise<number>;
  listen(type: "apply", handler: ApplyHandler): () => void;
  listen(type: "refresh", handler: RefreshHandler): () => void;
  listen(type: "snapshot", handler: SnapshotHandler): () => void;
  listen(type: EventName, handler: (...args: any[]) => unknown): () => void;
  listenOnce(type: EventName, handler: (...args: any[]) => unknown): () => void;
  unlisten(type: EventName, handler: (...args: any[]) => unknown): void;
  emit(type: EventName, ...args: unknown[]): void;
  status(): Status;
  /** The demo's cluster view: every member as this tab knows it. Create it before start()
   * to see every message; each snapshot() returns the messages since the last one. */
  clusterView(): { snapshot(): Record<string, unknown> };
  /** Linearizable read (ReadIndex): resolves to an index once this tab has applied every
   * write completed before the call; rejects with NoLeaderError. */
  readIndex(): Promise<number>;
  /** Open a client session whose proposals are applied exactly once. */
  openSession(): Promise<WebRaftSession>;
  /** A session opened earlier (here before a reload, or by another node). */
  resumeSession(id: number, nextSeq: number): WebRaftSession;
  start(): void;
  setPaused(paused: boolean): void;
  setOnline(online: boolean): void;
  /** If leading, hand leadership over; returns the target address or null. */
  stepDown(): string | null;
  close(): Promise<void>;
}

/** Boot (Pyodide is shared by the nodes of a page), claim an address, build the node
 * (not started). Rejects with WebRaftLoadError or a ConnectError. */
export function createNode(options: Options): Promise<WebRaft>;
/** createNode, attach options.state, register options.listeners, start. */
export function connect(options: Options): Promise<WebRaft>;

/** When this page's start-up steps ended, in ms since navigation (performance.now()), for the
 * first node of the page; Pyodide's boot is pyodideReady - start, webraft's own part
 * nodeCreated - pyodideReady (the wheel is fetched while Pyodide boots). */
export const timings: {
  start?: number;
  wheelFetched?: number;
  pyodideReady?: number;
  webraftImported?: number;
  nodeCreated?: number;
};

export interface PersistentStateOptions<S, C = unknown> {
  /** The state before any command: a JSON value (copied) or a function that makes one. */
  initial: S | (() => S);
  /** The state after `command`: return it, or change `state` in place and return nothing.
   * Runs once per committed entry, in log order, on every tab: it must be deterministic. A
   * command it cannot use should leave the state as it is: a throw is an `error` event and the
   * entry is applied again. */
  apply(state: S, command: C, entry: Entry): S | void;
  /** After each change; `entry` is null when the state was loaded (storage, snapshot). */
  onChange?(state: S, entry: Entry | null): void;
  /** Prefix of the localStorage key (`${key}:${room}:${address}`); default "webraft-state". */
  key?: string;
}

/** Application state replicated through the log and kept in localStorage, with the term and
 * index of the last entry it includes; the snapshot of the log is the state itself. */
export class PersistentState<S, C = unknown> {
  readonly state: S;
  /** Index and term of the last entry `state` includes (0 before any). */
  readonly index: number;
  readonly term: number;
  /** null until attached. */
  readonly storageKey: string | null;
  /** Register its apply, refresh and snapshot handlers on a node (before raft.start()). */
  attach(raft: WebRaft): this;
}

/** Declare the app's state and command handler; pass the result as connect({state}). */
export function persistentState<S, C = unknown>(
  options: PersistentStateOptions<S, C>): PersistentState<S, C>;
