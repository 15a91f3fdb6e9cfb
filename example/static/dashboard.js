// The nexio dashboard: polls /metrics every second, keeps the last two
// minutes, and draws four charts on canvases. Plain script, no library.
"use strict";

const POLL_MS = 1000;
const KEEP = 120; // points per series

const BLUE = "#2f7de1", ORANGE = "#e8743b";

// state is what the charts show; window.nexioDashboard exposes it so
// that a test (or a curious person in the console) can read it.
const state = {
  polls: 0,
  error: "",
  connections: [],   // open connections, all routes
  messagesIn: [],    // messages per second received, all routes
  messagesOut: [],   // messages per second sent, all routes
  closes: {},        // "code": {client: n, server: n}, since the start
  slow: [],          // slow-consumer disconnects since the start, all hubs
  dropped: [],       // messages dropped since the start, all hubs
};
window.nexioDashboard = state;

let previous = null; // {t, in, out} of the last scrape

// parse reads Prometheus' text format into [{name, labels, value}].
function parse(text) {
  const samples = [];
  const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
  const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const l of text.split("\n")) {
    if (l === "" || l[0] === "#") continue;
    const m = line.exec(l);
    if (!m) continue;
    const labels = {};
    if (m[2]) {
      for (const lm of m[2].matchAll(label)) labels[lm[1]] = lm[2];
    }
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

function sum(samples, name) {
  let s = 0;
  for (const x of samples) if (x.name === name) s += x.value;
  return s;
}

function push(series, v) {
  series.push(v);
  if (series.length > KEEP) series.shift();
}

function record(samples, now) {
  const msgsIn = sum(samples, "nexio_ws_messages_in_total");
  const msgsOut = sum(samples, "nexio_ws_messages_out_total");
  push(state.connections, sum(samples, "nexio_ws_connections_open"));
  if (previous) {
    const dt = (now - previous.t) / 1000;
    // A restarted server starts its counters again: no negative rates.
    push(state.messagesIn, Math.max(0, (msgsIn - previous.in) / dt));
    push(state.messagesOut, Math.max(0, (msgsOut - previous.out) / dt));
  }
  previous = { t: now, in: msgsIn, out: msgsOut };
  const closes = {};
  for (const x of samples) {
    if (x.name !== "nexio_ws_closes_total") continue;
    const c = closes[x.labels.code] || (closes[x.labels.code] = { client: 0, server: 0 });
    c[x.labels.side === "client" ? "client" : "server"] += x.value;
  }
  state.closes = closes;
  push(state.slow, sum(samples, "nexio_hub_slow_disconnects_total"));
  push(state.dropped, sum(samples, "nexio_hub_dropped_total"));
}

// lineChart draws series (arrays of numbers) as lines on canvas.
function lineChart(canvas, series, colors) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, left = 48, bottom = 20, top = 8;
  ctx.clearRect(0, 0, w, h);
  let max = 1;
  for (const s of series) for (const v of s) max = Math.max(max, v);
  max = niceMax(max);
  axes(ctx, w, h, left, bottom, top, max);
  series.forEach((s, i) => {
    if (s.length === 0) return;
    ctx.strokeStyle = colors[i];
    ctx.lineWidth = 2;
    ctx.beginPath();
    s.forEach((v, j) => {
      const x = left + (w - left - 4) * (KEEP - s.length + j) / (KEEP - 1);
      const y = h - bottom - (h - bottom - top) * v / max;
      if (j === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
  });
  canvas.dataset.last = series.map(s => s.length ? s[s.length - 1] : 0).join(",");
}

// barChart draws stacked bars: one per close code, client then server.
function barChart(canvas, closes) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, left = 48, bottom = 20, top = 8;
  ctx.clearRect(0, 0, w, h);
  const codes = Object.keys(closes).sort();
  let max = 1;
  for (const c of codes) max = Math.max(max, closes[c].client + closes[c].server);
  max = niceMax(max);
  axes(ctx, w, h, left, bottom, top, max);
  const slot = (w - left - 4) / Math.max(codes.length, 1);
  const bw = Math.min(48, slot * 0.7);
  ctx.font = "11px system-ui, sans-serif";
  ctx.textAlign = "center";
  codes.forEach((code, i) => {
    const x = left + slot * i + (slot - bw) / 2;
    const scale = (h - bottom - top) / max;
    const hc = closes[code].client * scale, hs = closes[code].server * scale;
    ctx.fillStyle = BLUE;
    ctx.fillRect(x, h - bottom - hc, bw, hc);
    ctx.fillStyle = ORANGE;
    ctx.fillRect(x, h - bottom - hc - hs, bw, hs);
    ctx.fillStyle = "#1d2430";
    ctx.fillText(code, x + bw / 2, h - 5);
  });
  canvas.dataset.last = codes.map(c => c + ":" + (closes[c].client + closes[c].server)).join(",");
}

// niceMax rounds a chart's top up to a value whose quarters read well.
function niceMax(v) {
  if (v <= 8) return v <= 4 ? 4 : 8;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function axes(ctx, w, h, left, bottom, top, max) {
  ctx.strokeStyle = "#dde2e8";
  ctx.fillStyle = "#4a5566";
  ctx.lineWidth = 1;
  ctx.font = "11px system-ui, sans-serif";
  ctx.textAlign = "right";
  for (let i = 0; i <= 4; i++) {
    const y = h - bottom - (h - bottom - top) * i / 4;
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(w - 4, y);
    ctx.stroke();
    ctx.fillText(format(max * i / 4), left - 6, y + 4);
  }
}

function format(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (v >= 1e3) return (v / 1e3).toFixed(1) + "k";
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

function last(s) { return s.length ? s[s.length - 1] : 0; }

function draw() {
  lineChart(document.getElementById("chart-connections"), [state.connections], [BLUE]);
  lineChart(document.getElementById("chart-messages"), [state.messagesIn, state.messagesOut], [BLUE, ORANGE]);
  barChart(document.getElementById("chart-closes"), state.closes);
  lineChart(document.getElementById("chart-slow"), [state.slow, state.dropped], [BLUE, ORANGE]);
  document.getElementById("now-connections").textContent = format(last(state.connections));
  document.getElementById("now-messages").textContent =
    format(last(state.messagesIn)) + " in / " + format(last(state.messagesOut)) + " out";
  document.getElementById("now-slow").textContent =
    format(last(state.slow)) + " disconnected / " + format(last(state.dropped)) + " dropped";
}

async function poll() {
  try {
    const resp = await fetch("/metrics", { cache: "no-store" });
    if (!resp.ok) throw new Error("HTTP " + resp.status);
    record(parse(await resp.text()), Date.now());
    state.polls++;
    state.error = "";
    document.getElementById("status").textContent =
      "scraping /metrics every second · " + new Date().toLocaleTimeString();
  } catch (e) {
    state.error = String(e);
    document.getElementById("status").textContent = "cannot read /metrics: " + e;
  }
  draw();
  setTimeout(poll, POLL_MS);
}

poll();
