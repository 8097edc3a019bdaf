// An open-loop Socket.IO load generator (Node, socket.io-client), driven by bench/run.py.
//
// Commands arrive as JSON lines on stdin; each gets one JSON line on stdout:
//   {cmd: "connect", members: [{id, url, token, rooms, record}], concurrency, timeout}
//   {cmd: "step", prefix, rate, seconds, plan: [[member, room], ...], mentions?: [name, ...],
//    mix?: {send, edit, react}, threads?: {share, also}, drainTimeout, settle, slowMs, bucketSeconds}
//   {cmd: "background", action: "start", typing?, activity?, churn?, seed}   {cmd: "background", action: "stop"}
//   {cmd: "activate", members: [member, ...]}   {cmd: "churnPrime", members: [member, ...], count}
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
//
// The rev cursor: every recorded socket keeps, per room, the page's own RevCursor and
// catch-up rules (static/js/room/timeline.js and sync.js, imported as they are): a live
// `message` or `message_updated` moves the cursor; a rev that skips one is held, and when
// the missing rev has not come within the grace window (1.5 s) the socket asks the room for
// every change since its cursor (GET /rooms/<id>/messages?since=), at most one request in
// flight per room. The cursor starts at GET /rooms/heads after connecting. A step reports
// how many live changes carried a rev, how many arrived past a gap, how many catch-ups ran
// (and their pages, changes fetched and failures), and where every cursor ended. Servers
// whose events carry no rev (the baseline, older checkouts) are simply not tracked.
//
// Mixed steps (mix given): op i is a send, an edit of one of the sender's own recent
// messages, or a reaction (added, or one of the sender's earlier ones removed) on a recent
// message of the room, by the same open-loop clock. An edit's body starts with its intended
// time and op id like a send's; a reaction's broadcast is matched to its op by the rev its
// ack carries, after the step. Each op's deliveries are counted per socket like a send's.
//
// Thread steps (threads given): a share of the sends (threads.share, by a fixed seed) are
// replies to one of the last few top-level messages of their room (kept across steps), and
// a share of those (threads.also) are also_in_room. A reply's `message` is counted like a
// send's (every member of the room gets it), its latency apart from top-level messages'. The
// root's new summary (`message_updated`, change "thread") is matched after the step to the
// latest reply to that root with a lower rev (a batch of replies to one root takes one
// summary), its latency taken from that reply's intended time; each socket reports how many
// distinct summaries it got per room, so run.py can check them against the revs the rooms
// took.
//
// Background traffic (the presence scenario): presence and typing beside the messages, by
// the same open-loop rule, started before a step and stopped after it. Typing: bursts
// arrive as a Poisson process (typing.rate bursts/s); a burst picks a member and one of its
// rooms or DMs from typing.candidates, sends `typing` every typing.every seconds for
// typing.burstSeconds and then `typing {stop}` (what the page does when the message goes).
// Activity: each of activity.members sends `activity` once per activity.period seconds, at
// its own phase (the page's at-most-once-a-minute while active). Churn: churn.rate presence
// changes per second, alternately a churn member's socket closing (offline) and the member
// away longest coming back (a new socket, then `activity`: active). Every socket, recorded
// or not, counts the `presence` and `typing` events it gets: presence by (user, state), so
// each change's fan-out is counted exactly; typing relays against the sockets the room had
// connected, besides the typist, when each notice went out. Nothing is acknowledged: the page
// emits both without an ack.
import { io } from "socket.io-client";
import { createInterface } from "node:readline";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { RevCursor } from "../static/js/room/timeline.js";
import { createSync, GRACE_MS } from "../static/js/room/sync.js";
import { TYPING_EVERY_MS } from "../static/js/lib/typing.js";

const PAD = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor";
const nowSec = () => (performance.timeOrigin + performance.now()) / 1000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const members = [];
let step = null; // the step being measured; events of other steps are ignored
let bg = null;   // the background traffic running, if any (the presence scenario)
const churnAway = []; // churn members whose socket is closed, longest away first (kept across windows)
// The generator's own event-loop delay: a late loop delays every arrival it timestamps.
const LOOP_RESOLUTION_MS = 10;
const loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
loopDelay.enable();

// Counted over the process's life; a step reports its difference.
const revStats = { deliveries: 0, gaps: 0, catchUps: 0, pages: 0, fetched: 0, failures: 0, resets: 0,
                   syncedAtConnect: 0, catchUpLat: [] };
const OPS = ["send", "edit", "react"];
// Op kinds: 0 send (top-level), 1 edit, 2 reaction, 3 thread reply, 4 thread reply also in the room.
const REPLY = 3;
const REPLY_ALSO = 4;
const ROOTS_KEPT = 5;
// room -> the last few top-level messages acknowledged in it (newest last), across steps: roots for replies.
const roots = new Map();

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

/** One delivery of op idx (kind 0 send, 1 edit, 2 reaction) to a member's socket. */
function record(member, idx, latency, now, kind) {
  const seen = member.seen;
  if (seen[idx] < 255) seen[idx]++;
  // Latencies are kept only per intended-send second (the overall summary concatenates
  // them), so a long window at a high rate stores each delivery once.
  const offset = idx / step.rate;
  const sec = Math.floor(offset);
  (step.perSec[sec] || (step.perSec[sec] = [])).push(latency);
  if (step.byKind) step.kindLat[kind].push(latency);
  if (latency > step.slowSec) {
    const b = Math.floor(offset / step.bucket);
    if (b < step.slowCount.length) {
      step.slowCount[b]++;
      if (latency > step.slowMax[b]) step.slowMax[b] = latency;
    }
  }
  step.delivered++;
  if (now > step.lastArrival) step.lastArrival = now;
}

async function api(member, path) {
  const res = await fetch(member.url + "/api/v1" + path, { headers: { Authorization: `Bearer ${member.token}` } });
  if (!res.ok) throw new Error(`GET ${path}: ${res.status}`);
  return res.json();
}

/** The room's cursor and catch-up rules for one socket, started at the head GET /rooms/heads gave. */
function trackRoom(member, roomId, head) {
  const cursor = new RevCursor(head);
  let started = 0;
  const sync = createSync({
    cursor,
    fetchChanges: async (since, limit) => {
      if (!started) {
        started = nowSec();
        revStats.catchUps++;
      }
      revStats.pages++;
      const page = await api(member, `/rooms/${roomId}/messages?since=${since}&limit=${limit}`);
      revStats.fetched += (page.messages || []).length;
      return page;
    },
    apply: () => {},
    reset: async () => { revStats.resets++; },
    done: () => {
      if (started) revStats.catchUpLat.push(nowSec() - started);
      started = 0;
    },
    warn: () => { revStats.failures++; },
  });
  member.revs.set(roomId, { cursor, sync });
}

/** A live change with a rev: the page's rule for the cursor. */
function noteRev(member, m) {
  const rev = m && Number(m.rev);
  if (!rev) return;
  const room = member.revs.get(m.room_id);
  if (!room) return;
  revStats.deliveries++;
  if (room.sync.noteRev(rev) === "gap") revStats.gaps++;
}

async function startCursors(member) {
  let heads;
  try {
    heads = (await api(member, "/rooms/heads")).heads || {};
  } catch {
    return; // no rev model here (the baseline): nothing to track
  }
  for (const roomId of member.rooms) {
    trackRoom(member, roomId, Number(heads[String(roomId)]) || 0);
    revStats.syncedAtConnect++;
  }
}

function syncPending() {
  for (const m of members) for (const r of m.revs.values()) if (r.sync.busy || r.sync.waiting) return true;
  return false;
}

function cursorsByRoom() {
  // {room: [lowest cursor, highest cursor, highest rev seen, sockets still holding a gap]}
  const out = {};
  for (const m of members) {
    for (const [roomId, { cursor }] of m.revs) {
      const o = out[roomId] || (out[roomId] = [Infinity, 0, 0, 0]);
      o[0] = Math.min(o[0], cursor.value);
      o[1] = Math.max(o[1], cursor.value);
      o[2] = Math.max(o[2], cursor.highest);
      if (cursor.hasGap()) o[3]++;
    }
  }
  return out;
}

function revDelta(before) {
  const out = {};
  for (const k of ["deliveries", "gaps", "catchUps", "pages", "fetched", "failures", "resets"]) {
    out[k] = revStats[k] - before[k];
  }
  out.catchUpLat = percentiles(revStats.catchUpLat.slice(before.catchUpLatCount));
  return out;
}

function revSnapshot() {
  return { ...revStats, catchUpLatCount: revStats.catchUpLat.length };
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
    socket.on("presence", (p) => notePresence(p));
    socket.on("typing", (t) => noteTyping(member, t));
    if (member.record) {
      socket.on("message", (m) => {
        const now = nowSec();
        noteRev(member, m);
        const idx = indexOf(m && m.client_id);
        if (idx < 0) return;
        const kind = step.kinds[idx];
        const latency = now - bodyTime(m.body);
        record(member, idx, latency, now, kind >= REPLY ? kind : 0);
        if (step.split) (step.split.has(m.room_id) ? step.splitIn : step.splitOut).push(latency);
      });
      socket.on("message_updated", (m) => {
        const now = nowSec();
        noteRev(member, m);
        if (!step || !m || !m.change) return;
        if (m.change.kind === "edit" && typeof m.body === "string") {
          const words = m.body.split(" ", 2);
          const idx = indexOf(words[1]);
          if (idx >= 0) record(member, idx, now - Number(words[0]), now, 1);
        } else if (m.change.kind === "reaction") {
          // Matched to its op by rev once the acks are in (runStep).
          step.pendingRoom.push(m.room_id);
          step.pendingRev.push(Number(m.rev));
          step.pendingMember.push(member.index);
          step.pendingAt.push(now);
        } else if (m.change.kind === "thread" && step.threads) {
          // A root's new summary: matched to the reply that made it once the acks are in (runStep).
          const t = step.threads;
          t.room.push(m.room_id);
          t.root.push(m.id);
          t.rev.push(Number(m.rev));
          t.member.push(member.index);
          t.at.push(now);
          t.lastAt = now;
        }
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
  const batch = wanted.map((m, k) => ({ ...m, record: m.record !== false, socket: null, seen: new Uint8Array(0),
                                        index: members.length + k, revs: new Map(), own: new Map(), placed: new Map(),
                                        roomSet: new Set(m.rooms) }));
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
      else if (member.record) await startCursors(member);
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, batch.length) }, lane));
  members.push(...batch);
  return { connected: batch.length - errors.length, failed: errors.length, errors: errors.slice(0, 5),
           seconds: nowSec() - started, total: members.length };
}

/** Op kinds for a step: 0 send, 1 edit, 2 reaction, drawn from mix by a fixed seed (the same every run);
 * with threads, a share of the sends become replies (3), a share of those also in the room (4). */
function opKinds(count, mix, threads) {
  const kinds = new Uint8Array(count);
  if (threads && threads.share > 0) {
    // Its own seeds, so the same share always picks the same ops, whatever mix says.
    let x = 0x2545f491, y = 0x6a09e667;
    const next = (v) => { v ^= v << 13; v >>>= 0; v ^= v >>> 17; v ^= v << 5; return v >>> 0; };
    for (let i = 0; i < count; i++) {
      x = next(x);
      y = next(y);
      if (x / 4294967296 < threads.share) kinds[i] = y / 4294967296 < (threads.also || 0) ? REPLY_ALSO : REPLY;
    }
  }
  if (!mix) return kinds;
  const total = OPS.reduce((a, k) => a + (mix[k] || 0), 0) || 1;
  const editCut = (mix.send || 0) / total;
  const reactCut = editCut + (mix.edit || 0) / total;
  let x = 0x9e3779b9;
  for (let i = 0; i < count; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;  // xorshift32
    const u = x / 4294967296;
    if (kinds[i] < REPLY) kinds[i] = u < editCut ? 0 : u < reactCut ? 1 : 2;
  }
  return kinds;
}

async function runStep({ prefix, rate, seconds, plan, mentions = null, mix = null, threads = null, drainTimeout = 6,
                         settle = 0.3, slowMs = 50, bucketSeconds = 0.1, splitRooms = null }) {
  const count = Math.max(1, Math.round(rate * seconds));
  const roomSize = new Map();
  for (const m of members) if (m.record) for (const r of m.rooms) roomSize.set(r, (roomSize.get(r) || 0) + 1);
  for (const m of members) m.seen = new Uint8Array(m.record ? count : 0);
  const buckets = Math.ceil(count / rate / bucketSeconds) + 1;
  const kinds = opKinds(count, mix, threads);
  let emoji = [];
  if (mix && mix.react) {
    // Emoji the server accepts; each new reaction on a message takes the next one, so none is a repeat.
    emoji = ((await api(members[plan[0][0]], "/emoji")).emoji || []).map((e) => e.emoji).slice(0, 48);
  }
  step = { prefix, count, rate, perSec: [], notes: [], noteIdx: [], delivered: 0, lastArrival: 0,
           slowSec: slowMs / 1000, bucket: bucketSeconds, slowCount: new Uint32Array(buckets),
           slowMax: new Float64Array(buckets), byKind: !!(mix || threads), kindLat: [[], [], [], [], []], kinds,
           pendingRoom: [], pendingRev: [], pendingMember: [], pendingAt: [],
           threads: threads ? { room: [], root: [], rev: [], member: [], at: [], lastAt: 0 } : null,
           split: splitRooms ? new Set(splitRooms) : null, splitIn: [], splitOut: [] };
  const revsBefore = revSnapshot();
  loopDelay.reset();
  const acked = new Uint8Array(count);
  const changed = new Uint8Array(count);  // an edit or reaction acknowledged: one new rev, broadcast
  const errors = {};
  const ackLat = [];
  const sendLag = [];
  const intendedOf = new Float64Array(count);
  const opOfRev = new Map();              // "room:rev" -> reaction op, from its ack
  const recent = new Map();               // room -> [message id, ...] acknowledged sends, newest last
  const reactionsOn = new Map();          // message id -> reactions added by this step
  const done = [0, 0, 0, 0, 0];           // ops actually made of each kind
  const repliesTo = new Map();            // root id -> [[reply rev, op], ...] from the replies' acks
  let answered = 0;
  let expected = 0;
  const t0 = nowSec() + 0.05;

  const remember = (list, id, keep) => {
    list.push(id);
    if (list.length > keep) list.shift();
  };

  const send = (i) => {
    const intended = t0 + i / rate;
    intendedOf[i] = intended;
    const [mi, roomId] = plan[i % plan.length];
    const member = members[mi];
    const cid = prefix + i;
    expected += roomSize.get(roomId) || 0;
    sendLag.push(Math.max(0, nowSec() - intended));
    if (!member.socket.connected) {
      errors[i] = "disconnected";
      answered++;
      return;
    }
    let kind = kinds[i];
    const own = member.own.get(roomId);
    const pool = recent.get(roomId);
    const placed = member.placed.get(roomId);
    let event, payload, target;
    if (kind === 1 && own && own.length) {
      // The member's own recent message: only its author may edit it.
      target = own[i % own.length];
      event = "edit";
      payload = { message_id: target, body: `${intended.toFixed(6)} ${cid} edited ${PAD}` };
    } else if (kind === 2 && placed && placed.length && i % 2 === 1) {
      // Take back one of the member's earlier reactions in this room.
      const [mid, e] = placed.shift();
      event = "react";
      payload = { message_id: mid, emoji: e, on: false };
    } else if (kind === 2 && pool && pool.length) {
      target = pool[i % pool.length];
      const n = reactionsOn.get(target) || 0;
      if (n < emoji.length) {
        reactionsOn.set(target, n + 1);
        event = "react";
        payload = { message_id: target, emoji: emoji[n], on: true };
      }
    }
    let reply = null;
    if (kind >= REPLY) {
      const rl = roots.get(roomId);
      if (rl && rl.length) reply = { thread_root_id: rl[i % rl.length], ...(kind === REPLY_ALSO ? { also_in_room: true } : {}) };
    }
    if (reply) {
      event = "send";
      payload = { room_id: roomId, body: `${intended.toFixed(6)} ${cid} ${PAD}`, client_id: cid, ...reply };
    } else if (!event) {
      // A send, or an edit, reaction or reply with nothing yet to act on.
      kind = 0;
      const mention = mentions ? `@${mentions[i % mentions.length]} ` : "";
      event = "send";
      payload = { room_id: roomId, body: `${intended.toFixed(6)} ${mention}${cid} ${PAD}`, client_id: cid };
    }
    kinds[i] = kind;
    done[kind]++;
    member.socket.emit(event, payload, (reply) => {
      ackLat.push(nowSec() - intended);
      answered++;
      if (reply && reply.ok) {
        acked[i] = 1;
        const msg = reply.message || {};
        if (kind === 0 && msg.id) {
          let list = member.own.get(roomId);
          if (!list) member.own.set(roomId, (list = []));
          remember(list, msg.id, 5);
          let rl = recent.get(roomId);
          if (!rl) recent.set(roomId, (rl = []));
          remember(rl, msg.id, 50);
          let rt = roots.get(roomId);
          if (!rt) roots.set(roomId, (rt = []));
          remember(rt, msg.id, ROOTS_KEPT);
        } else if (kind >= REPLY) {
          // A reply is stored like a send (run.py finds it by client_id); its rev places its root's summary.
          let list = repliesTo.get(payload.thread_root_id);
          if (!list) repliesTo.set(payload.thread_root_id, (list = []));
          list.push([Number(msg.rev), i]);
        } else if (kind) {
          changed[i] = 1;
          if (kind === 2) {
            opOfRev.set(`${msg.room_id}:${msg.rev}`, i);
            if (payload.on) {
              let list = member.placed.get(roomId);
              if (!list) member.placed.set(roomId, (list = []));
              list.push([payload.message_id, payload.emoji]);
            }
          }
        }
      } else errors[i] = (reply && reply.error && reply.error.code) || "bad-ack";
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
  const matched = () => step.delivered + step.pendingRev.length;
  // Wait for every delivery and ack, and for every gap's grace window and catch-up to end (and
  // for root summaries to stop coming: they follow their replies, how many is known only after).
  const summariesComing = () => step.threads && nowSec() - step.threads.lastAt < 0.25;
  while (nowSec() - drainStart < drainTimeout
         && (matched() < expected || answered < count || syncPending() || summariesComing())) {
    await sleep(50);
  }
  await sleep(settle * 1000);
  const drain = nowSec() - drainStart;

  // Reactions: each broadcast to its op, by the rev the op's ack carried.
  for (let k = 0; k < step.pendingRev.length; k++) {
    const idx = opOfRev.get(`${step.pendingRoom[k]}:${step.pendingRev[k]}`);
    if (idx === undefined) continue;
    const at = step.pendingAt[k];
    record(members[step.pendingMember[k]], idx, at - intendedOf[idx], at, 2);
  }

  // Root summaries: each to the latest reply to its root with a lower rev; distinct ones per socket and room.
  let summaries = null;
  if (step.threads) {
    const t = step.threads;
    for (const list of repliesTo.values()) list.sort((a, b) => a[0] - b[0]);
    const lat = [];
    const perSocket = new Map();  // member index -> Map(room -> Set of "root:rev")
    let unmatched = 0, dupSummaries = 0;
    const distinct = new Set();
    for (let k = 0; k < t.rev.length; k++) {
      const key = `${t.root[k]}:${t.rev[k]}`;
      let rooms = perSocket.get(t.member[k]);
      if (!rooms) perSocket.set(t.member[k], (rooms = new Map()));
      let got = rooms.get(t.room[k]);
      if (!got) rooms.set(t.room[k], (got = new Set()));
      if (got.has(key)) {
        dupSummaries++;
        continue;
      }
      got.add(key);
      distinct.add(`${t.room[k]}:${key}`);
      let idx = -1;
      for (const [rev, op] of repliesTo.get(t.root[k]) || []) {
        if (rev < t.rev[k]) idx = op;
        else break;
      }
      if (idx < 0) unmatched++;
      else lat.push(t.at[k] - intendedOf[idx]);
    }
    for (const m of members) {
      const rooms = perSocket.get(m.index);
      m.summaries = rooms ? Object.fromEntries([...rooms].map(([r, set]) => [r, set.size])) : {};
    }
    summaries = { received: t.rev.length, dup: dupSummaries, distinct: distinct.size, unmatched, lat: percentiles(lat) };
  }

  const perMember = members.filter((m) => m.record).map((m) => {
    const dup = [];
    for (let k = 0; k < m.seen.length; k++) if (m.seen[k] > 1) dup.push([k, m.seen[k] - 1]);
    return step.threads ? { id: m.id, seen: ranges(m.seen), dup, summaries: m.summaries } : { id: m.id, seen: ranges(m.seen), dup };
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
    revs: { ...revDelta(revsBefore), graceMs: GRACE_MS, rooms: cursorsByRoom() },
    loop: loopStats(),
  };
  // Deliveries into splitRooms (the DMs of the presence scenario) apart from the rest.
  if (step.split) reply.split = { in: percentiles(step.splitIn), out: percentiles(step.splitOut) };
  if (mix) {
    reply.ops = { send: done[0], edit: done[1], react: done[2] };
    reply.changed = ranges(changed);
    reply.kindLat = { send: percentiles(step.kindLat[0]), edit: percentiles(step.kindLat[1]),
                      react: percentiles(step.kindLat[2]) };
    reply.unmatched = step.pendingRev.length - step.kindLat[2].length;
  }
  if (threads) {
    const replies = new Uint8Array(count);
    for (let k = 0; k < count; k++) if (kinds[k] >= REPLY) replies[k] = 1;
    reply.threads = {
      ops: { top: done[0], reply: done[REPLY], alsoInRoom: done[REPLY_ALSO] },
      replies: ranges(replies),
      kindLat: { top: percentiles(step.kindLat[0]), reply: percentiles(concat([step.kindLat[REPLY], step.kindLat[REPLY_ALSO]])),
                 alsoInRoom: percentiles(step.kindLat[REPLY_ALSO]) },
      summaries,
    };
  }
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

function loopStats() {
  // The event loop's delay since the last reset, in seconds like the latency summaries: how late the
  // sampling timer fired, beyond its own interval.
  const late = (ns) => Math.max(0, ns / 1e9 - LOOP_RESOLUTION_MS / 1000);
  return { count: loopDelay.count, p50: late(loopDelay.percentile(50)), p99: late(loopDelay.percentile(99)),
           p999: late(loopDelay.percentile(99.9)), max: late(loopDelay.max) };
}

// -- background traffic: typing, activity, presence churn ------------------------------------

function rng32(seed) {
  // mulberry32: the same draws every run for the same seed
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function notePresence(p) {
  if (!bg || !p) return;
  const now = nowSec();
  bg.presenceIn++;
  const key = `${p.user_id}|${p.state}`;
  let e = bg.presenceBy.get(key);
  if (!e) bg.presenceBy.set(key, (e = { n: 0, first: now, last: now }));
  e.n++;
  e.last = now;
}

function noteTyping(member, t) {
  if (!bg || !t || !t.user) return;
  const now = nowSec();
  const uid = Number(t.user.id);
  bg.typingIn++;
  if (t.stop) bg.typingStopsIn++;
  if (uid === member.id) bg.typingEcho++;
  if (!member.roomSet.has(t.room_id)) bg.typingUnexpected++;
  const at = bg.lastTyping.get(`${uid}|${t.room_id}`);
  if (at !== undefined) bg.typingLat.push(now - at);
}

function roomMembers() {
  const out = new Map();
  for (const m of members) for (const r of m.rooms) {
    let list = out.get(r);
    if (!list) out.set(r, (list = []));
    list.push(m.index);
  }
  return out;
}

const RECONNECT_TIMEOUT_MS = 15000;

async function reconnect(member, b) {
  // A churn member comes back: a new socket with its token, then the page's first `activity`.
  // A connect that neither succeeds nor fails in time counts as failed (and the socket is dropped).
  const started = nowSec();
  let timer;
  const error = await Promise.race([
    connectOne(member, RECONNECT_TIMEOUT_MS),
    new Promise((resolve) => { timer = setTimeout(() => resolve("no answer to the connect"), RECONNECT_TIMEOUT_MS + 1000); }),
  ]);
  clearTimeout(timer);
  if (error) {
    b.churnErrors.push(error);
    if (member.socket) member.socket.close();
    churnAway.push(member.index);
    return null;
  }
  member.socket.emit("activity", {});
  return [started, nowSec()];
}

function bgStart({ typing = null, activity = null, churn = null, seed = 1 }) {
  if (bg) throw new Error("background traffic already running");
  const rand = rng32(seed);
  const t0 = nowSec();
  bg = { t0, timers: [], stopped: false, rooms: roomMembers(), pending: [],
         presenceIn: 0, presenceBy: new Map(), changes: [], churnErrors: [],
         typingOut: 0, typingStopsOut: 0, typingSkipped: 0, typingExpected: 0, typingIn: 0, typingStopsIn: 0,
         typingEcho: 0, typingUnexpected: 0, typingLat: [], lastTyping: new Map(), bursts: 0, typingNow: 0,
         concurrency: [], activityOut: 0 };
  const b = bg;
  const later = (ms, fn) => { b.timers.push(setTimeout(() => { if (!b.stopped) fn(); }, Math.max(0, ms))); };

  if (typing && typing.rate > 0 && typing.candidates.length) {
    const every = (typing.every || TYPING_EVERY_MS / 1000) * 1000;
    const burst = typing.burstSeconds * 1000;
    const busy = new Set();
    const emit = (mi, room, stop) => {
      const m = members[mi];
      if (!m.socket || !m.socket.connected) { b.typingSkipped++; return; }
      let expect = 0;
      for (const k of b.rooms.get(room) || []) if (k !== mi && members[k].socket && members[k].socket.connected) expect++;
      b.typingExpected += expect;
      b.typingOut++;
      if (stop) b.typingStopsOut++;
      b.lastTyping.set(`${m.id}|${room}`, nowSec());
      m.socket.emit("typing", stop ? { room_id: room, stop: true } : { room_id: room });
    };
    // Open loop: burst k starts at its drawn time whatever happened before.
    let next = t0;
    const arrive = () => {
      const now = nowSec();
      while (next <= now) {
        next += -Math.log(1 - rand()) / typing.rate;
        let pick = null;
        for (let tries = 0; tries < 20 && !pick; tries++) {
          const c = typing.candidates[Math.floor(rand() * typing.candidates.length)];
          if (!busy.has(c[0])) pick = c;
        }
        if (!pick) continue;
        const [mi, room] = pick;
        busy.add(mi);
        b.bursts++;
        b.typingNow++;
        for (let t = 0; t < burst; t += every) later(t, () => emit(mi, room, false));
        later(burst, () => { emit(mi, room, true); busy.delete(mi); b.typingNow--; });
      }
      later((next - nowSec()) * 1000, arrive);
    };
    arrive();
    b.timers.push(setInterval(() => b.concurrency.push(b.typingNow), 1000));
  }

  if (activity && activity.members.length) {
    const period = activity.period * 1000;
    for (const mi of activity.members) {
      const send = () => {
        const m = members[mi];
        if (m.socket && m.socket.connected) {
          m.socket.emit("activity", {});
          b.activityOut++;
        }
      };
      later(rand() * period, () => { send(); b.timers.push(setInterval(() => { if (!b.stopped) send(); }, period)); });
    }
  }

  if (churn && churn.rate > 0 && churn.members.length) {
    let k = 0;
    const change = () => {
      // Alternately the member away longest comes back, and a present one goes.
      if (k++ % 2 === 0 && churnAway.length) {
        const mi = churnAway.shift();
        const m = members[mi];
        const entry = [m.id, "active", nowSec(), 0];
        b.changes.push(entry);
        b.pending.push(reconnect(m, b).then((t) => { if (t) entry[3] = t[1]; else entry[1] = "failed"; }));
      } else {
        // Someone present who has not changed yet in this run of the traffic: each change's (user, state) is
        // then unique, and the `presence` events counted for it are its own.
        const changed = new Set(b.changes.map((c) => c[0]));
        let present = churn.members.filter((mi) => members[mi].socket && members[mi].socket.connected);
        if (present.some((mi) => !changed.has(members[mi].id))) present = present.filter((mi) => !changed.has(members[mi].id));
        if (!present.length) return;
        const mi = present[Math.floor(rand() * present.length)];
        b.changes.push([members[mi].id, "offline", nowSec(), nowSec()]);
        members[mi].socket.close();
        churnAway.push(mi);
      }
    };
    for (let j = 0; ; j++) {
      const at = (j + 0.5) / churn.rate;
      if (at > churn.maxSeconds) break;
      later(at * 1000, change);
    }
  }
  return { started: t0 };
}

async function bgStop({ settle = 3 }) {
  if (!bg) throw new Error("no background traffic");
  const b = bg;
  b.stopped = true;
  const stoppedAt = nowSec();
  for (const t of b.timers) { clearTimeout(t); clearInterval(t); }
  let unresolved = 0;
  await Promise.race([Promise.all(b.pending), sleep(RECONNECT_TIMEOUT_MS + 5000)]);
  for (const c of b.changes) if (c[1] === "active" && !c[3]) unresolved++;
  // Changes of the last second are sent by the next flush: keep counting a little.
  await sleep(settle * 1000);
  bg = null;
  const changes = b.changes.map(([uid, state, at, done]) => {
    const e = b.presenceBy.get(`${uid}|${state}`);
    const idle = b.presenceBy.get(`${uid}|idle`);
    // [user, state, when asked, when done (socket closed / reconnected), sockets told, first and last arrival
    //  after done (s), idle events for a comeback]
    return [uid, state, at, done, e ? e.n : 0, e ? e.first - done : null, e ? e.last - done : null,
            state === "active" && idle ? idle.n : 0];
  });
  const matched = new Set(changes.map(([uid, state]) => `${uid}|${state}`));
  for (const [uid, state] of changes) if (state === "active") matched.add(`${uid}|idle`);
  let other = 0, otherKeys = 0;
  for (const [key, e] of b.presenceBy) if (!matched.has(key)) { other += e.n; otherKeys++; }
  const mean = b.concurrency.length ? b.concurrency.reduce((x, y) => x + y, 0) / b.concurrency.length : 0;
  return {
    seconds: stoppedAt - b.t0, settle,
    typing: { bursts: b.bursts, out: b.typingOut, stopsOut: b.typingStopsOut, skipped: b.typingSkipped,
              expected: b.typingExpected, in: b.typingIn, stopsIn: b.typingStopsIn, echo: b.typingEcho,
              unexpected: b.typingUnexpected, lat: percentiles(b.typingLat), meanTypists: mean },
    activity: { out: b.activityOut },
    presence: { in: b.presenceIn, keys: b.presenceBy.size, other, otherKeys, changes, churnErrors: b.churnErrors.slice(0, 5),
                away: churnAway.length, unresolved },
  };
}

async function activate({ members: list, perSecond = 250 }) {
  // The active set's first `activity`: idle -> active, outside any measurement, paced, acknowledged
  // (unlike the page's) so that a refused one is counted: its user would turn active inside a window.
  let sent = 0, ok = 0;
  const failed = {};
  const acks = [];
  for (const mi of list) {
    const m = members[mi];
    if (!m.socket || !m.socket.connected) continue;
    acks.push(new Promise((resolve) => {
      m.socket.timeout(30000).emit("activity", {}, (err, reply) => {
        if (!err && reply && reply.ok) ok++;
        else {
          const code = err ? "no answer" : (reply && reply.error && reply.error.code) || "bad-ack";
          failed[code] = (failed[code] || 0) + 1;
        }
        resolve();
      });
    }));
    if (++sent % 25 === 0) await sleep(25000 / perSecond);
  }
  await Promise.all(acks);
  return { sent, ok, failed };
}

async function churnPrime({ members: list, count }) {
  // Some churn members are away before the first window, so comebacks start at once.
  let n = 0;
  for (const mi of list) {
    if (n >= count) break;
    const m = members[mi];
    if (m.socket && m.socket.connected && !churnAway.includes(mi)) {
      m.socket.close();
      churnAway.push(mi);
      n++;
    }
  }
  return { away: churnAway.length };
}

const handlers = {
  connect,
  step: runStep,
  background: (cmd) => (cmd.action === "start" ? bgStart(cmd) : bgStop(cmd)),
  activate,
  churnPrime,
  loop: async () => { const out = loopStats(); loopDelay.reset(); return out; },
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
