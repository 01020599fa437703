// A todo list shared by every tab of a room, kept across reloads: the whole app of
// docs/guide.md. Served by `webraft-relay --static browser/examples/todo`, which also serves
// the library at /webraft/ (with an npm install: import from "webraft" instead).
import { connect, persistentState } from "/webraft/webraft.js";

const room = new URLSearchParams(location.search).get("room") ?? "todo-example";
const form = document.querySelector("form");
const items = document.querySelector("#items");
const status = document.querySelector("#status");

// The state, and how a command changes it. Every tab applies the same commands in the same
// order, so apply must be deterministic: no clocks, no random ids.
const todos = persistentState({
  initial: { items: [], nextId: 1 },
  apply(state, command) {
    if (command.op === "add" && typeof command.text === "string") {
      state.items.push({ id: state.nextId++, text: command.text, done: false });
    } else if (command.op === "toggle") {
      const item = state.items.find((i) => i.id === command.id);
      if (item) item.done = !item.done;
    }
  },
  onChange: render,
});

function render(state) {
  items.replaceChildren(...state.items.map((item) => {
    const li = document.createElement("li");
    li.textContent = item.text;
    li.classList.toggle("done", item.done);
    li.addEventListener("click", () => send({ op: "toggle", id: item.id }));
    return li;
  }));
}

function showError(error) {
  const box = document.querySelector("#error");
  box.textContent = `${error.name}: ${error.message}`;
  box.hidden = false;
}

let raft;
try {
  raft = await connect({ room, state: todos, onStatus: (text) => { status.textContent = text; } });
} catch (error) {
  showError(error);
  throw error;
}
status.textContent = `tab ${raft.address} in room "${room}"`;
raft.listen("error", showError);
window.webraft = raft; // for the console (and the e2e test)
window.todos = todos;

// A proposal resolves once the command is committed and applied here (render has run).
async function send(command) {
  try {
    await raft.propose(command);
  } catch (error) {
    // e.g. NoLeaderError while the tabs elect a leader: nothing was applied, try again.
    status.textContent = `not sent (${error.name}): ${error.message}`;
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = form.elements.text.value.trim();
  form.reset();
  if (text) send({ op: "add", text });
});
