// nexio chat: plain JavaScript, no build step, no dependencies.
//
// Protocol: the page connects to /ws/rooms/{room}?name={name}. The server
// sends each text message unchanged to the other members of the room, so
// the page's own format lives inside the text: JSON {"name", "text"}. Text
// that is not such JSON (from wscat, say) is shown as it came. Presence is
// polled from GET /rooms/{room}/presence, which lists every member of the
// room (on every instance sharing -redis) with the name it joined with.
"use strict";

// Close codes after which reconnecting cannot help: the server meant it
// (1000), or the client must change something first (RFC 6455 §7.4.1 and
// the demo's 4001). Every other code
// (1001 going away, 1006 abnormal, 1011, 1012, 1013, 4003 rate limit, …)
// is retried with backoff. See docs/close-codes.md.
const NO_RECONNECT = new Set([1000, 1002, 1003, 1007, 1009, 1010, 4001]);
const SLOW_RECONNECT = new Set([1008, 1013, 4003]); // wait longer first
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15000;
const PRESENCE_EVERY_MS = 2000;

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"), joinForm: $("join-form"), name: $("name"), room: $("room"),
  join: $("join"), leave: $("leave"), log: $("log"), sendForm: $("send-form"),
  message: $("message"), send: $("send"), presence: $("presence"),
  presenceRoom: $("presence-room"), presenceCount: $("presence-count"), presenceNote: $("presence-note"),
  authForm: $("auth-form"), token: $("token"), authMessage: $("auth-message"), authLog: $("auth-log"),
};

const wsBase = (location.protocol === "https:" ? "wss://" : "ws://") + location.host;

let session = null; // {name, room, ws, attempt, timer, presenceTimer, lastCode, wanted}

function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}

function timeNow() {
  return new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function addLine(list, cls, who, text, data) {
  const li = document.createElement("li");
  li.className = cls;
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = timeNow();
  li.append(time);
  if (who !== null) {
    const w = document.createElement("span");
    w.className = "who";
    w.textContent = who;
    li.append(w);
  }
  li.append(document.createTextNode(text));
  for (const [k, v] of Object.entries(data || {})) li.dataset[k] = v;
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
  list.append(li);
  if (atBottom) list.scrollTop = list.scrollHeight;
  return li;
}

const system = (text, cls, data) => addLine(ui.log, "system " + (cls || ""), null, text, data);

function describeClose(ev) {
  const reason = ev.reason ? ` ${ev.reason}` : "";
  return `${ev.code}${reason}`;
}

// --- Chat --------------------------------------------------------------

function join(name, room) {
  leave(false);
  localStorage.setItem("nexio-chat-name", name);
  localStorage.setItem("nexio-chat-room", room);
  const params = new URLSearchParams(location.search);
  params.set("room", room);
  history.replaceState(null, "", "?" + params.toString());
  session = { name, room, ws: null, attempt: 0, timer: 0, presenceTimer: 0, lastCode: 0, wanted: true };
  ui.presenceRoom.textContent = room;
  ui.join.disabled = true;
  ui.leave.disabled = false;
  system(`Joining room "${room}" as ${name}…`);
  connect(session);
  pollPresence(session);
}

function connect(s) {
  if (!s.wanted) return;
  const url = `${wsBase}/ws/rooms/${encodeURIComponent(s.room)}?name=${encodeURIComponent(s.name)}`;
  setStatus("connecting", s.attempt ? `Reconnecting (attempt ${s.attempt})…` : "Connecting…");
  const ws = new WebSocket(url);
  s.ws = ws;
  ws.onopen = () => {
    if (s !== session) return ws.close(1000, "left");
    s.attempt = 0;
    s.lastCode = 0;
    setStatus("open", `Connected to "${s.room}" as ${s.name}`);
    system(`Connected to room "${s.room}".`, "good", { event: "open" });
    ui.message.disabled = false;
    ui.send.disabled = false;
    ui.message.placeholder = `Message #${s.room}`;
    ui.message.focus();
    refreshPresence(s);
  };
  ws.onmessage = (ev) => {
    if (typeof ev.data !== "string") return; // the room speaks text
    let msg = null;
    try { msg = JSON.parse(ev.data); } catch { /* not ours: show it raw */ }
    if (msg && typeof msg === "object" && typeof msg.text === "string") {
      addLine(ui.log, "msg", String(msg.name || "anonymous") + ":", msg.text);
    } else {
      addLine(ui.log, "msg raw", "(raw)", ev.data);
    }
  };
  ws.onclose = (ev) => {
    if (s.ws !== ws) return;
    s.ws = null;
    ui.message.disabled = true;
    ui.send.disabled = true;
    if (!s.wanted) return;
    // Log each distinct close once, so a server that stays down for a
    // while does not flood the log with 1006s.
    if (ev.code !== s.lastCode) {
      system(`Connection closed: ${describeClose(ev)}`, "bad", { closeCode: String(ev.code), closeReason: ev.reason });
    }
    s.lastCode = ev.code;
    if (NO_RECONNECT.has(ev.code)) {
      setStatus("closed", `Closed: ${describeClose(ev)}. Not reconnecting: fix the cause, then join again.`);
      s.wanted = false;
      ui.join.disabled = false;
      return;
    }
    const base = SLOW_RECONNECT.has(ev.code) ? 4 * BACKOFF_MIN_MS : BACKOFF_MIN_MS;
    const delay = Math.min(BACKOFF_MAX_MS, base * 2 ** s.attempt) * (0.8 + 0.4 * Math.random());
    s.attempt++;
    setStatus("waiting", `Closed: ${describeClose(ev)}. Reconnecting in ${(delay / 1000).toFixed(1)} s…`);
    s.timer = setTimeout(() => connect(s), delay);
  };
}

function leave(announce) {
  const s = session;
  if (!s) return;
  s.wanted = false;
  clearTimeout(s.timer);
  clearTimeout(s.presenceTimer);
  if (s.ws) s.ws.close(1000, "left");
  session = null;
  ui.join.disabled = false;
  ui.leave.disabled = true;
  ui.message.disabled = true;
  ui.send.disabled = true;
  ui.message.placeholder = "Join a room to chat";
  renderPresence(null);
  setStatus("idle", "Not connected");
  if (announce) system(`Left room "${s.room}".`);
}

function sendMessage() {
  const s = session;
  const text = ui.message.value.trim();
  if (!s || !s.ws || s.ws.readyState !== WebSocket.OPEN || text === "") return;
  s.ws.send(JSON.stringify({ name: s.name, text }));
  addLine(ui.log, "msg mine", s.name + ":", text);
  ui.message.value = "";
}

// --- Presence ------------------------------------------------------------

async function refreshPresence(s) {
  try {
    const resp = await fetch(`/rooms/${encodeURIComponent(s.room)}/presence`, { cache: "no-store" });
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    const p = await resp.json();
    if (s === session) renderPresence(p);
  } catch (err) {
    if (s === session) ui.presenceNote.textContent = `Presence unavailable (${err.message}).`;
  }
}

function pollPresence(s) {
  if (s !== session) return;
  refreshPresence(s).finally(() => {
    if (s === session) s.presenceTimer = setTimeout(() => pollPresence(s), PRESENCE_EVERY_MS);
  });
}

function renderPresence(p) {
  ui.presence.replaceChildren();
  if (!p) {
    ui.presenceRoom.textContent = "—";
    ui.presenceCount.textContent = "";
    ui.presenceNote.textContent = "";
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "Join a room to see who is here.";
    ui.presence.append(li);
    return;
  }
  const members = (p.members || []).slice().sort((a, b) => (a.name || "").localeCompare(b.name || ""));
  ui.presenceCount.textContent = `(${members.length})`;
  for (const m of members) {
    const li = document.createElement("li");
    const n = document.createElement("span");
    n.className = "member";
    n.textContent = m.name || "anonymous";
    if (session && m.name === session.name) n.textContent += " (you)";
    const node = document.createElement("span");
    node.className = "node";
    node.title = "instance";
    node.textContent = m.node ? m.node.slice(0, 6) : "";
    li.append(n, node);
    ui.presence.append(li);
  }
  if (members.length === 0) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "Nobody yet.";
    ui.presence.append(li);
  }
  ui.presenceNote.textContent = p.local_only ? "Showing this instance only: Redis is unreachable." : "";
}

// --- Auth demo -----------------------------------------------------------

function authDemo() {
  const token = ui.token.value;
  const text = ui.authMessage.value;
  const url = `${wsBase}/ws/secure/echo?token=${encodeURIComponent(token)}`;
  addLine(ui.authLog, "system", null, `Connecting with token "${token}"…`);
  const ws = new WebSocket(url);
  ws.onopen = () => ws.send(text);
  ws.onmessage = (ev) => {
    addLine(ui.authLog, "msg", "server:", String(ev.data));
    ws.close(1000, "done");
  };
  ws.onclose = (ev) => {
    const bad = ev.code !== 1000;
    addLine(ui.authLog, "system" + (bad ? " bad" : ""), null, `Closed: ${describeClose(ev)}`,
      { closeCode: String(ev.code), closeReason: ev.reason });
  };
}

// --- Wiring --------------------------------------------------------------

ui.joinForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const name = ui.name.value.trim();
  const room = ui.room.value.trim();
  if (name && room) join(name, room);
});
ui.leave.addEventListener("click", () => leave(true));
ui.sendForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  sendMessage();
});
ui.authForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  authDemo();
});

{
  const params = new URLSearchParams(location.search);
  ui.name.value = params.get("name") || localStorage.getItem("nexio-chat-name") || `guest-${Math.floor(1000 + Math.random() * 9000)}`;
  ui.room.value = params.get("room") || localStorage.getItem("nexio-chat-room") || "lobby";
}
