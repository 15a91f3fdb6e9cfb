// nexio chat: plain JavaScript, no build step, no dependencies.
//
// The page talks to /ws/live/{room} (see example/live.go). Each text the
// page sends is published to the room; every member, the sender included,
// receives it as
//
//   {"type":"message","room":R,"epoch":E,"offset":N,"data":TEXT}
//
// After the handshake the server sends the messages asked for (last=50 on
// joining, since=E:N after a disconnect), then one
//
//   {"type":"sync","room":R,"epoch":E,"offset":N,"recovered":B,"missed":K}
//
// then live messages, offsets going up by 1, and presence frames
// ({"type":"presence","event":"join"|"leave","member":{"id","name"}}).
// The page's own format lives inside TEXT: JSON {"id","name","text","ts"},
// where id lets the sender recognise its own copy. TEXT that is not such
// JSON (from wscat, say) is shown as it came.
//
// LiveRoom below is the part worth copying into another client: it
// reconnects, resumes where it left off, and sends what was typed while
// offline once. The rest of the file is this page's UI.
"use strict";

// --- LiveRoom: a reconnecting client of /ws/live/{room} ---------------------

// Close codes after which reconnecting cannot help: the server meant it
// (1000), or the client must change something first. Every other code
// (1001 going away, 1006 abnormal, 1011, 1012, 1013, 4003, …) is retried.
const NO_RECONNECT = new Set([1000, 1002, 1003, 1007, 1009, 1010, 4001]);
// Codes that ask the client to slow down: the backoff starts higher.
const SLOW_RECONNECT = new Set([1008, 1013, 4003]);
const BACKOFF_FIRST_MS = 500; // the first retry comes after 250–500 ms
const BACKOFF_SLOW_MS = 4000;
const BACKOFF_MAX_MS = 10000; // never wait longer than 5–10 s
const CONNECT_TIMEOUT_MS = 10000; // a handshake that hangs counts as failed

// reconnectDelay is capped exponential backoff with "equal jitter": half
// of each wait is fixed, half random, so that the members of a room that
// dropped together do not all come back in the same instant.
function reconnectDelay(attempt, code) {
  const base = SLOW_RECONNECT.has(code) ? BACKOFF_SLOW_MS : BACKOFF_FIRST_MS;
  const ceiling = Math.min(BACKOFF_MAX_MS, base * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

class LiveRoom {
  // url: ws(s)://host/ws/live/{room}?name=…; last: how many earlier
  // messages to show on joining. on: callbacks, all optional:
  //   message(frame, replayed)   a message, once, in order
  //   sync(frame, resumed)       after the replay; resumed: after a blink
  //   presence(frame)            someone joined or left
  //   sent(text, frame)          the server confirmed a text of send()
  //   status(state, detail)      "connecting" | "open" | "waiting" | "closed"
  constructor(url, last, on) {
    this.url = url;
    this.last = last;
    this.on = on;
    this.pos = null; // {epoch, offset} of the last message seen
    this.noHistory = false; // the server keeps none (-history 0)
    this.outbox = []; // texts sent or typed, not yet confirmed
    this.ws = null;
    this.synced = false;
    this.attempt = 0;
    this.timer = 0;
    this.retryAt = 0; // when the next attempt is due, while waiting
    this.stopped = false;
    this.lastClose = null;
    // Retry at once when the network or the tab comes back, rather than
    // sleeping out the backoff.
    this.wake = () => {
      if (this.waiting() && navigator.onLine !== false && document.visibilityState !== "hidden") this.retryNow();
    };
    window.addEventListener("online", this.wake);
    document.addEventListener("visibilitychange", this.wake);
    this.connect();
  }

  waiting() { return !this.stopped && this.ws === null && this.timer !== 0; }

  connect() {
    this.timer = 0;
    this.retryAt = 0;
    const u = new URL(this.url);
    if (this.pos) u.searchParams.set("since", `${this.pos.epoch}:${this.pos.offset}`);
    else u.searchParams.set("last", String(this.last));
    const resumed = this.pos !== null;
    this.status("connecting", { attempt: this.attempt });
    const ws = new WebSocket(u);
    this.ws = ws;
    this.synced = false;
    let replayed = 0;
    const giveUp = setTimeout(() => ws.close(), CONNECT_TIMEOUT_MS);
    ws.onopen = () => clearTimeout(giveUp);
    ws.onmessage = (ev) => {
      if (ws !== this.ws || typeof ev.data !== "string") return;
      let f;
      try { f = JSON.parse(ev.data); } catch { return; }
      if (f.type === "message") {
        this.message(f, !this.synced);
        if (!this.synced) replayed++;
      } else if (f.type === "sync") {
        this.sync(f, resumed);
      } else if (f.type === "presence") {
        this.on.presence?.(f);
      }
    };
    ws.onclose = (ev) => {
      clearTimeout(giveUp);
      if (ws !== this.ws) return;
      this.ws = null;
      this.synced = false;
      this.lastClose = ev;
      if (this.stopped) return;
      if (NO_RECONNECT.has(ev.code)) {
        this.stopped = true;
        this.status("closed", { code: ev.code, reason: ev.reason });
        return;
      }
      const delay = reconnectDelay(this.attempt, ev.code);
      this.attempt++;
      this.retryAt = Date.now() + delay;
      this.timer = setTimeout(() => this.connect(), delay);
      this.status("waiting", { code: ev.code, reason: ev.reason, retryAt: this.retryAt });
    };
  }

  // message takes a message frame: each offset is handed on once, in
  // order, whatever the server or the network repeats.
  message(f, replayed) {
    if (f.offset === 0) {
      // A server without history: no position, nothing to resume.
      this.noHistory = true;
      this.confirm(f);
      this.on.message?.(f, replayed);
      return;
    }
    const p = this.pos;
    if (p && f.epoch === p.epoch) {
      if (f.offset <= p.offset) return; // seen already
      if (f.offset > p.offset + 1 && this.synced) {
        // A gap, which the server never sends on purpose: resume from
        // the last message seen, which fills it.
        this.ws.close(4000, "gap");
        return;
      }
    }
    this.pos = { epoch: f.epoch, offset: f.offset };
    this.confirm(f);
    this.on.message?.(f, replayed);
  }

  // confirm takes our own message out of the outbox when its copy comes.
  confirm(f) {
    const i = this.outbox.findIndex((o) => o.text === f.data);
    if (i >= 0) {
      const [o] = this.outbox.splice(i, 1);
      this.on.sent?.(o.text, f);
    }
  }

  sync(f, resumed) {
    const p = this.pos;
    // A server without history (-history 0) sends no epoch.
    if (f.epoch !== "" && (!p || f.epoch !== p.epoch || f.offset > p.offset)) this.pos = { epoch: f.epoch, offset: f.offset };
    this.synced = true;
    this.attempt = 0;
    this.status("open", {});
    this.on.sync?.(f, resumed);
    // Whatever is still in the outbox was typed offline, or sent but
    // never published (its copy would have been replayed): send it now,
    // once. After recovered:false the server cannot say, so a message
    // sent just before the blink may arrive twice: the page shows each
    // id once.
    for (const o of this.outbox) this.ws.send(o.text);
  }

  // send publishes text, now if connected, else after reconnecting. Make
  // each text unique (the page puts an id in it): its copy from the
  // server is how it is known to be sent.
  send(text) {
    this.outbox.push({ text });
    if (this.ws && this.synced) {
      this.ws.send(text);
      return true;
    }
    return false;
  }

  retryNow() {
    if (!this.waiting()) return;
    clearTimeout(this.timer);
    this.connect();
  }

  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = 0;
    window.removeEventListener("online", this.wake);
    document.removeEventListener("visibilitychange", this.wake);
    if (this.ws) this.ws.close(1000, "left");
    this.ws = null;
  }

  status(state, detail) { this.on.status?.(state, detail); }
}

// closeText says in words why the connection ended.
function closeText(code, reason) {
  switch (code) {
    case 1001: case 1012: return "Server restarting — reconnecting…";
    case 1006: return navigator.onLine === false ? "You are offline — waiting for the network…" : "Connection lost — reconnecting…";
    case 1008: return reason === "slow consumer" ? "Your connection fell behind — reconnecting…" : `Disconnected (${reason || "policy"}) — reconnecting…`;
    case 1011: return "Server error — reconnecting…";
    case 1013: return "Server busy — reconnecting…";
    case 4000: return "Messages were skipped — catching up…";
    case 4003: return "Too many connection attempts — waiting a little…";
    default: return `Disconnected (${code}${reason ? " " + reason : ""}) — reconnecting…`;
  }
}

// --- The page ---------------------------------------------------------------

const LAST_ON_JOIN = 50;

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"), statusText: $("status-text"), retry: $("retry"),
  joinForm: $("join-form"), name: $("name"), room: $("room"),
  join: $("join"), leave: $("leave"), log: $("log"), newMessages: $("new-messages"),
  sendForm: $("send-form"), message: $("message"), send: $("send"), presence: $("presence"),
  presenceRoom: $("presence-room"), presenceCount: $("presence-count"), presenceNote: $("presence-note"),
  authForm: $("auth-form"), token: $("token"), authMessage: $("auth-message"), authLog: $("auth-log"),
};

const wsBase = (location.protocol === "https:" ? "wss://" : "ws://") + location.host;

// session is the room the page is in: {name, room, live, members, shown,
// mine, away, countdown, lastCode}.
let session = null;

function setStatus(state, text, retry) {
  ui.status.dataset.state = state;
  ui.statusText.textContent = text;
  ui.retry.hidden = !retry;
}

function clock(ts) {
  const d = Number.isFinite(ts) ? new Date(ts) : new Date();
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function atBottom(list) {
  return list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
}

// line builds one entry of a log.
function line(cls, who, text, ts, data) {
  const li = document.createElement("li");
  li.className = cls;
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = clock(ts);
  li.append(time);
  if (who !== null) {
    const w = document.createElement("span");
    w.className = "who";
    w.textContent = who;
    li.append(w);
  }
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  li.append(body);
  for (const [k, v] of Object.entries(data || {})) li.dataset[k] = v;
  return li;
}

// place puts li at the end of the chat log, but above the page's own
// messages still waiting for their copy: those are newer than anything
// the server has sent so far. It keeps the view at the bottom if it was
// there, and otherwise shows the "new messages" hint.
function place(li, { scroll = false } = {}) {
  const list = ui.log;
  const follow = atBottom(list);
  const firstPending = list.querySelector("li.mine:not([data-state=sent])");
  if (firstPending && li !== firstPending) list.insertBefore(li, firstPending);
  else list.append(li);
  if (follow || scroll) {
    list.scrollTop = list.scrollHeight;
    ui.newMessages.hidden = true;
  } else if (li.classList.contains("msg")) {
    ui.newMessages.hidden = false;
  }
}

const system = (text, cls, data) => {
  const li = line("system " + (cls || ""), null, text, undefined, data);
  place(li);
  return li;
};

// parseText reads the page's format inside a message's data.
function parseText(data) {
  try {
    const m = JSON.parse(data);
    if (m && typeof m === "object" && typeof m.text === "string") return m;
  } catch { /* not ours */ }
  return null;
}

function join(name, room) {
  leave(false);
  localStorage.setItem("nexio-chat-name", name);
  localStorage.setItem("nexio-chat-room", room);
  const params = new URLSearchParams(location.search);
  params.set("room", room);
  history.replaceState(null, "", "?" + params.toString());
  const s = {
    name, room, live: null, members: new Map(), shown: new Set(), mine: new Map(),
    away: null, countdown: 0, lastCode: 0, snapshot: null,
  };
  session = s;
  ui.presenceRoom.textContent = room;
  ui.join.disabled = true;
  ui.leave.disabled = false;
  ui.message.disabled = false;
  ui.send.disabled = false;
  ui.message.placeholder = `Message #${room}`;
  system(`Joining room "${room}" as ${name}…`);
  renderPresence();
  const url = `${wsBase}/ws/live/${encodeURIComponent(room)}?name=${encodeURIComponent(name)}`;
  s.live = new LiveRoom(url, LAST_ON_JOIN, {
    message: (f, replayed) => s === session && showMessage(s, f, replayed),
    sync: (f, resumed) => s === session && synced(s, f, resumed),
    presence: (f) => s === session && presenceEvent(s, f),
    sent: (text, f) => s === session && confirmed(s, text, f),
    status: (state, d) => s === session && connStatus(s, state, d),
  });
  ui.message.focus();
}

function leave(announce) {
  const s = session;
  if (!s) return;
  session = null;
  s.live.close();
  clearInterval(s.countdown);
  ui.join.disabled = false;
  ui.leave.disabled = true;
  ui.message.disabled = true;
  ui.send.disabled = true;
  ui.message.placeholder = "Join a room to chat";
  renderPresence();
  setStatus("idle", "Not connected", false);
  if (announce) system(`Left room "${s.room}".`);
}

// showMessage shows one message frame. Messages are keyed by the id in
// their text, so one the server stored twice (a resend after
// recovered:false) is shown once.
function showMessage(s, f, replayed) {
  const m = parseText(f.data);
  const key = m && typeof m.id === "string" ? m.id : `${f.epoch}:${f.offset}`;
  if (s.shown.has(key)) return;
  s.shown.add(key);
  if (s.mine.has(key)) return; // our own: confirmed() marks it
  if (replayed && s.away && !s.away.isConnected) place(s.away);
  const li = m
    ? line("msg", String(m.name || "anonymous") + ":", m.text, m.ts)
    : line("msg raw", "(raw)", f.data);
  li.dataset.offset = String(f.offset);
  if (replayed) li.classList.add("replayed");
  place(li);
}

function synced(s, f, resumed) {
  const away = s.away;
  s.away = null;
  if (resumed && f.recovered && f.missed > 0 && away) {
    away.querySelector(".text").textContent = `${f.missed} message${f.missed === 1 ? "" : "s"} while you were away`;
  } else if (away) {
    away.remove();
  }
  if (resumed && !f.recovered) system("Some messages may be missing: the server no longer had them.", "warn", { event: "gap" });
  else if (resumed && s.live.noHistory) system("Some messages may be missing: this server keeps no history.", "warn", { event: "gap" });
  if (!resumed) system(`Connected to room "${s.room}".`, "good", { event: "open" });
  refreshPresence(s);
}

function connStatus(s, state, d) {
  clearInterval(s.countdown);
  s.countdown = 0;
  switch (state) {
    case "connecting":
      setStatus("connecting", d.attempt ? "Reconnecting…" : "Connecting…", false);
      // The messages that arrive before the next sync were missed: a
      // quiet divider goes above them, filled in by the sync.
      if (s.live && s.live.pos) s.away = line("system away", null, "", undefined, { event: "away" });
      break;
    case "open":
      s.lastCode = 0;
      setStatus("open", `Connected to "${s.room}" as ${s.name}`, false);
      break;
    case "waiting": {
      const text = closeText(d.code, d.reason);
      // One line per distinct reason, so that a server that stays down
      // for a while does not fill the log.
      if (d.code !== s.lastCode) system(text, "bad", { closeCode: String(d.code), closeReason: d.reason || "" });
      s.lastCode = d.code;
      const tick = () => {
        const secs = Math.max(0, Math.ceil((d.retryAt - Date.now()) / 1000));
        setStatus("waiting", `${text} Next try in ${secs} s.`, true);
      };
      tick();
      s.countdown = setInterval(tick, 250);
      break;
    }
    case "closed":
      setStatus("closed", `Closed (${d.code}${d.reason ? " " + d.reason : ""}). Not reconnecting: fix the cause, then join again.`, false);
      system(`Connection closed: ${d.code} ${d.reason || ""}`, "bad", { closeCode: String(d.code), closeReason: d.reason || "" });
      ui.join.disabled = false;
      break;
  }
}

function sendMessage() {
  const s = session;
  const text = ui.message.value.trim();
  ui.message.focus(); // clicking Send must not take the focus away
  if (!s || text === "") return;
  const id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
  const payload = JSON.stringify({ id, name: s.name, text, ts: Date.now() });
  const li = line("msg mine", s.name + ":", text, Date.now(), { id });
  const mark = document.createElement("span");
  mark.className = "mark";
  li.append(mark);
  s.mine.set(id, li);
  const now = s.live.send(payload);
  setMine(li, now ? "sending" : "queued");
  ui.log.append(li);
  li.scrollIntoView({ block: "nearest" });
  ui.log.scrollTop = ui.log.scrollHeight;
  ui.newMessages.hidden = true;
  ui.message.value = "";
}

function setMine(li, state, offset) {
  li.dataset.state = state;
  const mark = li.querySelector(".mark");
  mark.textContent = state === "sent" ? "✓" : state === "queued" ? "queued" : "…";
  mark.title = state === "sent" ? `sent (offset ${offset})` : state === "queued" ? "will be sent when reconnected" : "sending";
  if (offset !== undefined) li.dataset.offset = String(offset);
}

// confirmed marks our own message sent when its copy comes back with its
// position. Until then it stayed below everything else; now its place is
// known: after every message seen so far.
function confirmed(s, text, f) {
  const m = parseText(text);
  const li = m && s.mine.get(m.id);
  if (!li) return;
  s.mine.delete(m.id);
  s.shown.add(m.id); // the copy itself is not shown again
  setMine(li, "sent", f.offset);
  const follow = atBottom(ui.log);
  const firstPending = ui.log.querySelector("li.mine:not([data-state=sent])");
  if (firstPending) ui.log.insertBefore(li, firstPending);
  else ui.log.append(li);
  if (follow) ui.log.scrollTop = ui.log.scrollHeight;
}

// --- Presence: a snapshot per connection, then the push events ----------------

// refreshPresence reads who is here once per connection. Events that
// arrive while it is on its way are applied again on top of it, so the
// list ends up as if every event had come after the snapshot.
async function refreshPresence(s) {
  const pending = [];
  s.snapshot = pending;
  try {
    const resp = await fetch(`/live/${encodeURIComponent(s.room)}/presence`, { cache: "no-store" });
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    const p = await resp.json();
    if (s !== session || s.snapshot !== pending) return;
    s.members = new Map((p.members || []).map((m) => [m.id, m.name || m.id]));
    for (const f of pending) applyPresence(s, f);
    ui.presenceNote.textContent = p.local_only ? "Showing this instance only: Redis is unreachable." : "";
  } catch (err) {
    if (s === session) ui.presenceNote.textContent = `Presence unavailable (${err.message}).`;
  } finally {
    if (s.snapshot === pending) s.snapshot = null;
  }
  if (s === session) renderPresence();
}

function applyPresence(s, f) {
  if (f.event === "join") s.members.set(f.member.id, f.member.name || f.member.id);
  else s.members.delete(f.member.id);
}

function presenceEvent(s, f) {
  const name = f.member.name || f.member.id;
  const before = new Set(s.members.values());
  applyPresence(s, f);
  if (s.snapshot) s.snapshot.push(f);
  const after = new Set(s.members.values());
  // A person is their name: a second tab, or a reconnect seen before the
  // old connection's leave, is not news.
  if (f.event === "join" && !before.has(name)) system(`${name} joined`, "presence", { event: "join", who: name });
  if (f.event === "leave" && !after.has(name)) system(`${name} left`, "presence", { event: "leave", who: name });
  renderPresence();
}

function renderPresence() {
  const s = session;
  ui.presence.replaceChildren();
  if (!s) {
    ui.presenceRoom.textContent = "—";
    ui.presenceCount.textContent = "";
    ui.presenceNote.textContent = "";
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "Join a room to see who is here.";
    ui.presence.append(li);
    return;
  }
  const names = [...new Set(s.members.values())].sort((a, b) => a.localeCompare(b));
  ui.presenceCount.textContent = `(${names.length})`;
  for (const name of names) {
    const li = document.createElement("li");
    const n = document.createElement("span");
    n.className = "member";
    n.textContent = name;
    li.append(n);
    if (name === s.name) {
      const you = document.createElement("span");
      you.className = "you";
      you.textContent = "you";
      li.append(you);
    }
    ui.presence.append(li);
  }
  if (names.length === 0) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "Nobody yet.";
    ui.presence.append(li);
  }
}

// --- Auth demo -----------------------------------------------------------------

function authDemo() {
  const token = ui.token.value;
  const text = ui.authMessage.value;
  const url = `${wsBase}/ws/secure/echo?token=${encodeURIComponent(token)}`;
  const log = (cls, who, t, data) => {
    ui.authLog.append(line(cls, who, t, undefined, data));
    ui.authLog.scrollTop = ui.authLog.scrollHeight;
  };
  log("system", null, `Connecting with token "${token}"…`);
  const ws = new WebSocket(url);
  ws.onopen = () => ws.send(text);
  ws.onmessage = (ev) => {
    log("msg", "server:", String(ev.data));
    ws.close(1000, "done");
  };
  ws.onclose = (ev) => {
    const bad = ev.code !== 1000;
    log("system" + (bad ? " bad" : ""), null, `Closed: ${ev.code}${ev.reason ? " " + ev.reason : ""}`,
      { closeCode: String(ev.code), closeReason: ev.reason });
  };
}

// --- Wiring ----------------------------------------------------------------------

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
ui.retry.addEventListener("click", (ev) => {
  ev.preventDefault();
  if (session) session.live.retryNow();
});
ui.log.addEventListener("scroll", () => {
  if (atBottom(ui.log)) ui.newMessages.hidden = true;
});
ui.newMessages.addEventListener("click", () => {
  ui.log.scrollTop = ui.log.scrollHeight;
  ui.newMessages.hidden = true;
  ui.message.focus();
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
