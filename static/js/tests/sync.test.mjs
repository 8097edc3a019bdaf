// Catching up (static/js/room/sync.js): the grace window, one catch-up at a time, since=<rev>.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { createSync } from "../room/sync.js";
import { RevCursor, Timeline } from "../room/timeline.js";

/** Timers that run only when the test moves the clock. */
function fakeClock() {
  let now = 0;
  let next = 1;
  const timers = new Map();
  return {
    setTimer(fn, ms) {
      const id = next++;
      timers.set(id, { at: now + ms, fn });
      return id;
    },
    clearTimer(id) {
      timers.delete(id);
    },
    /** Move the clock on by ms, running every timer due on the way. */
    tick(ms) {
      const until = now + ms;
      for (;;) {
        const due = Array.from(timers.entries()).filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        timers.delete(due[0]);
        now = due[1].at;
        due[1].fn();
      }
      now = until;
    },
    get pending() {
      return timers.size;
    },
  };
}

/** A room on the server side: its changes by rev; fetchChanges answers as the API does. */
function fakeRoom(changes) {
  const calls = [];
  const gates = [];
  return {
    calls,
    changes,
    /** Hold the next answers until release() (to see what happens while one is in flight). */
    hold() {
      let release;
      const gate = new Promise((resolve) => {
        release = resolve;
      });
      gates.push(gate);
      return release;
    },
    async fetchChanges(since, limit) {
      calls.push(since);
      // The answer is what the room held when asked; a held one arrives later.
      const after = changes.filter((m) => m.rev > since).sort((a, b) => a.rev - b.rev);
      const page = after.slice(0, limit);
      const head = changes.reduce((top, m) => Math.max(top, m.rev), 0);
      const gate = gates.shift();
      if (gate) await gate;
      return { messages: page, has_more: after.length > limit, head };
    },
  };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));
const msg = (id, rev) => ({ id, room_id: 1, seq: id, rev, body: `m${id}`, reactions: [] });

function setup({ cursorAt = 3, changes = [], ...options } = {}) {
  const clock = fakeClock();
  const room = fakeRoom(changes);
  const cursor = new RevCursor(cursorAt);
  const timeline = new Timeline();
  const applied = [];
  const resets = [];
  const sync = createSync({
    cursor,
    fetchChanges: (since, limit) => room.fetchChanges(since, limit),
    apply: (states) => {
      applied.push(...states.map((s) => s.rev));
      for (const s of states) timeline.upsert(s);
    },
    reset: async (head) => {
      resets.push(head);
    },
    setTimer: clock.setTimer,
    clearTimer: clock.clearTimer,
    warn: () => {},
    ...options,
  });
  /** A live change: applied to the timeline, then noted. */
  const live = (state) => {
    timeline.upsert(state);
    return sync.noteRev(state.rev);
  };
  return { clock, room, cursor, timeline, applied, resets, sync, live };
}

describe("live changes", () => {
  test("contiguous revs move the cursor and never ask the server", async () => {
    const { clock, room, cursor, live } = setup();
    live(msg(4, 4));
    live(msg(5, 5));
    clock.tick(5000);
    await flush();
    assert.equal(cursor.value, 5);
    assert.deepEqual(room.calls, []);
  });

  test("out of order within the grace window: no catch-up", async () => {
    const { clock, room, cursor, sync, live, timeline } = setup();
    assert.equal(live(msg(5, 5)), "gap");
    assert.equal(sync.waiting, true);
    assert.ok(timeline.has(5), "applied at once, not held back");
    clock.tick(1000);
    assert.equal(live(msg(4, 4)), "next");
    assert.equal(cursor.value, 5);
    assert.equal(sync.waiting, false);
    clock.tick(5000);
    await flush();
    assert.deepEqual(room.calls, []);
  });

  test("a real gap: exactly one catch-up, after the window, since the cursor", async () => {
    const changes = [msg(4, 4), msg(5, 5), msg(6, 6)];
    const { clock, room, cursor, live, applied } = setup({ changes });
    live(msg(5, 5));
    live(msg(6, 6));
    clock.tick(1499);
    await flush();
    assert.deepEqual(room.calls, [], "not before the window closes");
    clock.tick(1);
    await flush();
    assert.deepEqual(room.calls, [3]);
    assert.deepEqual(applied, [4, 5, 6]);
    assert.equal(cursor.value, 6);
    assert.equal(cursor.hasGap(), false);
    clock.tick(60000);
    await flush();
    assert.deepEqual(room.calls, [3], "and only one");
  });

  test("an own reply alone does not move the cursor past a missing rev", async () => {
    const { cursor, sync } = setup();
    assert.equal(sync.noteRev(5), "gap");
    assert.equal(cursor.value, 3);
  });
});

describe("catching up", () => {
  test("no more than one catch-up in flight; asking meanwhile queues exactly one more", async () => {
    const changes = [msg(4, 4), msg(5, 5)];
    const { room, sync, cursor } = setup({ changes });
    const release = room.hold();
    const first = sync.catchUp();
    assert.equal(sync.busy, true);
    const second = sync.catchUp();
    const third = sync.catchUp();
    assert.equal(second, third, "one queued catch-up, shared");
    await flush();
    assert.deepEqual(room.calls, [3], "one request while the first is in flight");
    changes.push(msg(6, 6));
    release();
    await first;
    await second;
    assert.deepEqual(room.calls, [3, 5]);
    assert.equal(cursor.value, 6);
    assert.equal(sync.busy, false);
  });

  test("a gap noticed while a catch-up runs waits for it, then catches up once more", async () => {
    const changes = [msg(4, 4)];
    const { clock, room, sync, cursor, live } = setup({ changes });
    const release = room.hold();
    const first = sync.catchUp();
    changes.push(msg(5, 5), msg(6, 6));
    live(msg(6, 6)); // 5 missing
    clock.tick(1500); // the window closes while the first is still running
    release();
    await first;
    await flush();
    await flush();
    assert.deepEqual(room.calls, [3, 4]);
    assert.equal(cursor.value, 6);
  });

  test("pages follow has_more from the last rev, then the cursor is the head", async () => {
    const changes = Array.from({ length: 7 }, (_, i) => msg(i + 1, i + 1));
    const { room, sync, cursor, applied } = setup({ cursorAt: 0, changes, pageSize: 3 });
    await sync.catchUp();
    assert.deepEqual(room.calls, [0, 3, 6]);
    assert.deepEqual(applied, [1, 2, 3, 4, 5, 6, 7]);
    assert.equal(cursor.value, 7);
  });

  test("the head counts even when the last changes touched nothing shown", async () => {
    const { room, sync, cursor } = setup({ cursorAt: 3 });
    room.changes.push(msg(2, 9)); // an old message edited: rev 9 is the head
    await sync.catchUp();
    assert.equal(cursor.value, 9);
  });

  test("too much missed: the view reloads instead of replaying", async () => {
    const changes = Array.from({ length: 30 }, (_, i) => msg(i + 1, i + 1));
    const { sync, cursor, resets, applied } = setup({ cursorAt: 2, changes, pageSize: 5, maxReplay: 10 });
    await sync.catchUp();
    assert.deepEqual(resets, [30]);
    assert.deepEqual(applied, []);
    assert.equal(cursor.value, 30);
  });

  test("a failed catch-up leaves the cursor, and the gap is tried again later", async () => {
    let fail = true;
    const changes = [msg(4, 4), msg(5, 5)];
    const { clock, room, cursor, live } = setup({
      changes,
      fetchChanges: (since, limit) => {
        if (fail) {
          room.calls.push(`failed ${since}`);
          return Promise.reject(new Error("offline"));
        }
        return room.fetchChanges(since, limit);
      },
    });
    live(msg(5, 5));
    clock.tick(1500);
    await flush();
    assert.deepEqual(room.calls, ["failed 3"]);
    assert.equal(cursor.value, 3);
    fail = false;
    clock.tick(3000); // the window again, doubled
    await flush();
    assert.deepEqual(room.calls, ["failed 3", 3]);
    assert.equal(cursor.value, 5);
  });

  test("the heads check catches up only when the head is past the cursor", async () => {
    const { room, sync } = setup({ changes: [msg(4, 4)] });
    assert.equal(sync.checkHead(3), null);
    await sync.checkHead(4);
    assert.deepEqual(room.calls, [3]);
  });
});
