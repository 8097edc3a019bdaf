// An open-loop Socket.IO load generator (Node, socket.io-client), driven by bench/run.py.
//
// Commands arrive as JSON lines on stdin; each gets one JSON line on stdout:
//   {cmd: "connect", members: [{id, url, token, rooms, record}], concurrency, timeout}
//   {cmd: "step", prefix, rate, seconds, plan: [[member, room], ...], mentions?: [name, ...],
//    drainTimeout, settle, slowMs, bucketSeconds}
//   {cmd: "alive"}   {cmd: "close"}   {cmd: "exit"}
//
// Open loop: message i of a step is due at t0 + i / rate whatever the server does; a late
// generator sends late but keeps the intended time, which the body starts with. A
// delivery's latency is its arrival minus that intended time, so a stalled server cannot
// hide its queue. Every member socket counts each `message` by client_id, so a step ends
// with exact deliveries, losses and duplicates per socket; run.py checks them against the
// database.
//
// Latency summaries ({count, p50, p99, p999, max}, in seconds) cover deliveries (lat), the
// sender's acks (ack), send lag and mention notifications (notes). For the tail, deliveries
// are also grouped by their intended send time: per second (perSecond, the p99 series) and
// in buckets of bucketSeconds, of which `slow` lists those holding a delivery slower than
// slowMs ([bucket, slow deliveries, max latency]); run.py turns runs of slow buckets into
// stalls. Grouping by intended time, not arrival, puts a pause where it hit the senders.
import { io } from "socket.io-client";
import { createInterface } from "node:readline";

const PAD = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor";
const nowSec = () => (performance.timeOrigin + performance.now()) / 1000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const members = [];
let step = null; // the step being measured; events of other steps are ignored

function percentiles(values) {
  // Nearest rank, as bench/loadgen.py's percentile(); values may be an array or a Float64Array.
  if (values.length === 0) return { count: 0, p50: null, p99: null, p999: null, max: null };
  // A Float64Array (concat's, made for this call) is sorted in place: a long window can hold millions.
  const sorted = values instanceof Float64Array ? values.sort() : Float64Array.from(values).sort();
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((q / 100) * sorted.length) - 1))];
  return { count: sorted.length, p50: at(50), p99: at(99), p999: at(99.9), max: sorted[sorted.length - 1] };
}

function concat(arrays) {
  // One Float64Array of every per-second latency array, for the step's overall percentiles.
  let n = 0;
  for (const a of arrays) if (a) n += a.length;
  const out = new Float64Array(n);
  let k = 0;
  for (const a of arrays) if (a) for (let j = 0; j < a.length; j++) out[k++] = a[j];
  return out;
}

function ranges(counts) {
  // [[start, end), ...] of indices seen at least once
  const out = [];
  let start = -1;
  for (let i = 0; i <= counts.length; i++) {
    const on = i < counts.length && counts[i] > 0;
    if (on && start < 0) start = i;
    if (!on && start >= 0) {
      out.push([start, i]);
      start = -1;
    }
  }
  return out;
}

function indexOf(clientId) {
  if (!step || typeof clientId !== "string" || !clientId.startsWith(step.prefix)) return -1;
  const idx = Number(clientId.slice(step.prefix.length));
  return Number.isInteger(idx) && idx >= 0 && idx < step.count ? idx : -1;
}

function bodyTime(body) {
  return Number(body.slice(0, body.indexOf(" ")));
}

function connectOne(member, timeout) {
  return new Promise((resolve) => {
    const socket = io(member.url, {
      transports: ["websocket"],
      auth: { token: member.token },
      reconnection: false,
      forceNew: true,
      timeout,
    });
    member.socket = socket;
    if (member.record) {
      socket.on("message", (m) => {
        const now = nowSec();
        const idx = indexOf(m && m.client_id);
        if (idx < 0) return;
        const seen = member.seen;
        if (seen[idx] < 255) seen[idx]++;
        const latency = now - bodyTime(m.body);
        // Latencies are kept only per intended-send second (the overall summary concatenates
        // them), so a long window at a high rate stores each delivery once.
        const offset = idx / step.rate;
        const sec = Math.floor(offset);
        (step.perSec[sec] || (step.perSec[sec] = [])).push(latency);
        if (latency > step.slowSec) {
          const b = Math.floor(offset / step.bucket);
          if (b < step.slowCount.length) {
            step.slowCount[b]++;
            if (latency > step.slowMax[b]) step.slowMax[b] = latency;
          }
        }
        step.delivered++;
        if (now > step.lastArrival) step.lastArrival = now;
      });
      socket.on("notification", (n) => {
        const now = nowSec();
        const m = n && n.message;
        const idx = indexOf(m && m.client_id);
        if (idx < 0) return;
        step.notes.push(now - bodyTime(m.body));
        step.noteIdx.push(idx);
      });
    }
    socket.once("connect", () => resolve(null));
    socket.once("connect_error", (err) => resolve(String((err && err.message) || err)));
  });
}

async function connect({ members: wanted, concurrency = 50, timeout = 60000 }) {
  const started = nowSec();
  const errors = [];
  let next = 0;
  const batch = wanted.map((m) => ({ ...m, record: m.record !== false, socket: null, seen: new Uint8Array(0) }));
  async function lane() {
    while (next < batch.length) {
      const member = batch[next++];
      let error = null;
      for (let attempt = 0; attempt < 3; attempt++) {
        error = await connectOne(member, timeout);
        if (!error) break;
        member.socket.close();
        await sleep(500 * (attempt + 1));
      }
      if (error) errors.push(error);
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, batch.length) }, lane));
  members.push(...batch);
  return { connected: batch.length - errors.length, failed: errors.length, errors: errors.slice(0, 5),
           seconds: nowSec() - started, total: members.length };
}

async function runStep({ prefix, rate, seconds, plan, mentions = null, drainTimeout = 6, settle = 0.3,
                         slowMs = 50, bucketSeconds = 0.1 }) {
  const count = Math.max(1, Math.round(rate * seconds));
  const roomSize = new Map();
  for (const m of members) if (m.record) for (const r of m.rooms) roomSize.set(r, (roomSize.get(r) || 0) + 1);
  for (const m of members) m.seen = new Uint8Array(m.record ? count : 0);
  const buckets = Math.ceil(count / rate / bucketSeconds) + 1;
  step = { prefix, count, rate, perSec: [], notes: [], noteIdx: [], delivered: 0, lastArrival: 0,
           slowSec: slowMs / 1000, bucket: bucketSeconds, slowCount: new Uint32Array(buckets),
           slowMax: new Float64Array(buckets) };
  const acked = new Uint8Array(count);
  const errors = {};
  const ackLat = [];
  const sendLag = [];
  let answered = 0;
  let expected = 0;
  const t0 = nowSec() + 0.05;

  const send = (i) => {
    const intended = t0 + i / rate;
    const [mi, roomId] = plan[i % plan.length];
    const member = members[mi];
    const cid = prefix + i;
    const mention = mentions ? `@${mentions[i % mentions.length]} ` : "";
    expected += roomSize.get(roomId) || 0;
    sendLag.push(Math.max(0, nowSec() - intended));
    if (!member.socket.connected) {
      errors[i] = "disconnected";
      answered++;
      return;
    }
    member.socket.emit("send", { room_id: roomId, body: `${intended.toFixed(6)} ${mention}${cid} ${PAD}`, client_id: cid },
      (reply) => {
        ackLat.push(nowSec() - intended);
        answered++;
        if (reply && reply.ok) acked[i] = 1;
        else errors[i] = (reply && reply.error && reply.error.code) || "bad-ack";
      });
  };

  let i = 0;
  while (i < count) {
    const wait = t0 + i / rate - nowSec();
    if (wait > 0.0005) {
      await sleep(wait * 1000);
      continue;
    }
    while (i < count && t0 + i / rate <= nowSec()) send(i++);
  }
  const last = t0 + (count - 1) / rate;
  const drainStart = nowSec();
  while (nowSec() - drainStart < drainTimeout && (step.delivered < expected || answered < count)) await sleep(50);
  await sleep(settle * 1000);
  const drain = nowSec() - drainStart;

  const perMember = members.filter((m) => m.record).map((m) => {
    const dup = [];
    for (let k = 0; k < m.seen.length; k++) if (m.seen[k] > 1) dup.push([k, m.seen[k] - 1]);
    return { id: m.id, seen: ranges(m.seen), dup };
  });
  const noteCounts = new Map();
  for (const k of step.noteIdx) noteCounts.set(k, (noteCounts.get(k) || 0) + 1);
  const windowSeconds = Math.ceil(count / rate);
  const perSecond = [];
  for (let k = 0; k < windowSeconds; k++) {
    const p = percentiles(step.perSec[k] || []);
    perSecond.push([p.count, p.p50, p.p99, p.max]);
  }
  const slow = [];
  for (let b = 0; b < step.slowCount.length; b++) if (step.slowCount[b]) slow.push([b, step.slowCount[b], step.slowMax[b]]);
  const reply = {
    count, first: t0, last, expected, delivered: step.delivered, lastArrival: step.lastArrival,
    acked: ranges(acked), errors, lat: percentiles(concat(step.perSec)), ack: percentiles(ackLat),
    sendLag: percentiles(sendLag), drain, members: perMember,
    notes: { ...percentiles(step.notes), distinct: noteCounts.size },
    perSecond, slow, slowMs, bucketSeconds,
  };
  step = null;
  return reply;
}

async function closeAll() {
  for (const m of members) if (m.socket) m.socket.close();
  const n = members.length;
  members.length = 0;
  await sleep(200);
  return { closed: n };
}

const handlers = {
  connect,
  step: runStep,
  alive: async () => ({ alive: members.filter((m) => m.socket && m.socket.connected).length, total: members.length }),
  close: closeAll,
  exit: async () => {
    await closeAll();
    setTimeout(() => process.exit(0), 50);
    return { bye: true };
  },
};

// One command at a time, in order.
let chain = Promise.resolve();
createInterface({ input: process.stdin }).on("line", (line) => {
  if (!line.trim()) return;
  chain = chain.then(async () => {
    let out;
    try {
      const cmd = JSON.parse(line);
      out = await handlers[cmd.cmd](cmd);
    } catch (err) {
      out = { error: String((err && err.stack) || err) };
    }
    process.stdout.write(JSON.stringify(out) + "\n");
  });
}).on("close", () => {
  chain.then(closeAll).then(() => process.exit(0));
});
