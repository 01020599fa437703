// webraft's port exchange: a SharedWorker that hands a MessagePort from one tab to another,
// so that two tabs of one browser and origin talk over a port of their own rather than a
// BroadcastChannel. A port's messages go from one tab's process to the other's; a
// BroadcastChannel's pass through the browser's process first, which costs about 0.2 ms a
// round trip (bench/browser_floor.py measures both).
//
// Owns the registry of the tabs' nodes (room, address, instance) and the forwarding of
// offers; imports nothing. It carries no node messages itself, only ports: one per pair of
// linked tabs, again when a tab takes another's node over or a port was closed. Any script
// of the origin can reach it, as it can the BroadcastChannels, so it only checks shapes and
// bounds what it keeps; the tabs check what comes through a port.
//
// A tab's messages to the worker (structured clones):
//   {op: "register", room, address, instance}    this page now holds that node;
//   {op: "unregister", room, address, instance}  it does no more;
//   {op: "offer", room, to, instance, from, fromInstance} with a port transferred: give the
//     port to node `to` of `room` once it is registered with instance `instance`.
// and the worker's to a tab: {op: "offer", room, to, instance, from, fromInstance} with the
// port. An offer for a node not registered yet waits for it: a node registers at its first
// peer linked, which may come after that peer's offer.

/** Nodes registered, by `${room}\n${address}`: the page's port and the node's instance. The
 * newest registration of an address wins (a tab that took the node over). */
const nodes = new Map();
/** Most nodes kept: a page closed without its node closing (a tab closed by its user) leaves
 * its entry behind, until its address registers anew or newer entries push it out. */
const MAX_NODES = 4096;
/** Longest room, address or instance taken (characters). */
const MAX_FIELD = 256;
/** Offers waiting for their node to register, oldest first: {key, offer (the message to
 * forward), port}. However late the node registers, its offer is here (a tab frozen for a
 * while links late); only MAX_PARKED newer offers push one out. */
let parked = [];
const MAX_PARKED = 256;

const field = (value) => typeof value === "string" && value.length > 0
  && value.length <= MAX_FIELD;

function receive(page, event) {
  const d = event.data;
  const transferred = event.ports[0];
  if (d === null || typeof d !== "object" || !field(d.room) || !field(d.instance)) {
    transferred?.close();
    return;
  }
  if (d.op === "register" && field(d.address)) {
    const key = `${d.room}\n${d.address}`;
    nodes.delete(key); // re-inserted last: the oldest entries are the first to go
    nodes.set(key, { page, instance: d.instance });
    if (nodes.size > MAX_NODES) nodes.delete(nodes.keys().next().value);
    const waiting = (p) => p.key === key && p.offer.instance === d.instance;
    for (const p of parked.filter(waiting)) page.postMessage(p.offer, [p.port]);
    parked = parked.filter((p) => !waiting(p));
  } else if (d.op === "unregister" && field(d.address)) {
    const key = `${d.room}\n${d.address}`;
    const node = nodes.get(key);
    if (node !== undefined && node.page === page && node.instance === d.instance) {
      nodes.delete(key);
    }
  } else if (d.op === "offer" && transferred !== undefined && field(d.to) && field(d.from)
             && field(d.fromInstance)) {
    const key = `${d.room}\n${d.to}`;
    const offer = {
      op: "offer", room: d.room, to: d.to, instance: d.instance, from: d.from,
      fromInstance: d.fromInstance,
    };
    const node = nodes.get(key);
    if (node !== undefined && node.instance === d.instance) {
      node.page.postMessage(offer, [transferred]);
    } else {
      // Not registered (yet): if it never is, the offerer hears nothing back and keeps
      // its BroadcastChannel.
      parked.push({ key, offer, port: transferred });
      if (parked.length > MAX_PARKED) parked.shift().port.close();
    }
  } else {
    transferred?.close();
  }
}

self.onconnect = (event) => {
  const page = event.ports[0];
  page.onmessage = (message) => receive(page, message);
};
