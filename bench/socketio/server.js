// The storm benchmark's Socket.IO node: Socket.IO 4.8 with connection
// state recovery, on the in-memory adapter (engine memory) or on
// @socket.io/redis-streams-adapter (engine redis), which keeps the
// session and the missed packets in a Redis stream so another node can
// restore them. Started by bench/cmd/nexiobench (storm_socketio.go).
//
//   node server.js --engine memory|redis --redis 127.0.0.1:6379 --prefix P --history N
//
// Prints "listening ADDR". POST /publish?n=N emits N events "m" with a
// sequence number to room "storm" and answers "sio <last sequence>" once
// every one has been written (to Redis, with the redis engine). On each
// connection the server emits "joined" with socket.recovered, after the
// missed packets.
"use strict";
const http = require("http");
const { Server } = require("socket.io");

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const engine = args.engine || "memory";
const history = Number(args.history || 20000);

async function main() {
  const srv = http.createServer();
  const io = new Server(srv, {
    transports: ["websocket"],
    serveClient: false,
    connectionStateRecovery: { maxDisconnectionDuration: 10 * 60 * 1000, skipMiddlewares: true },
  });
  let redisClient = null;
  if (engine === "redis") {
    const { createClient } = require("redis");
    const { createAdapter } = require("@socket.io/redis-streams-adapter");
    redisClient = createClient({ url: "redis://" + (args.redis || "127.0.0.1:6379") });
    await redisClient.connect();
    io.adapter(createAdapter(redisClient, {
      streamName: (args.prefix || "storm") + ":stream",
      sessionKeyPrefix: (args.prefix || "storm") + ":session:",
      maxLen: history,
    }));
  }
  io.on("connection", (socket) => {
    if (!socket.recovered) socket.join("storm");
    socket.emit("joined", socket.recovered);
  });
  let seq = 0;
  srv.on("request", async (req, res) => {
    const u = new URL(req.url, "http://x");
    if (req.method !== "POST" || u.pathname !== "/publish") return;
    const n = Number(u.searchParams.get("n") || 0);
    for (let i = 0; i < n; i++) {
      seq++;
      io.to("storm").emit("m", seq);
    }
    // Commands on one connection run in order: once this PING is
    // answered, every XADD above is in Redis.
    if (redisClient) await redisClient.ping();
    res.end("sio " + seq + "\n");
  });
  srv.listen(0, "127.0.0.1", () => {
    const a = srv.address();
    console.log("listening " + a.address + ":" + a.port);
  });
  const stop = () => { io.close(); if (redisClient) redisClient.quit().catch(() => {}); process.exit(0); };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  setTimeout(() => process.exit(1), 10 * 60 * 1000).unref();
}
main().catch((e) => { console.error(e); process.exit(1); });
