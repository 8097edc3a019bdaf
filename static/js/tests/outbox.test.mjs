// Sending with retries (static/js/room/outbox.js) and the emoji search (static/js/room/emoji.js).
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { recentEmoji, rememberEmoji, searchEmoji, RECENT_MAX } from "../room/emoji.js";
import { createOutbox } from "../room/outbox.js";

function setup({ connected = true } = {}) {
  const emitted = [];
  const shown = [];
  const confirmed = [];
  const refused = [];
  const later = [];
  const state = { connected };
  const outbox = createOutbox({
    roomId: 1,
    emit: (payload, timeout, callback) => emitted.push({ payload, callback }),
    connected: () => state.connected,
    show: (entry, s) => shown.push(`${entry.clientId}:${s}`),
    confirmed: (m) => confirmed.push(m),
    refused: (entry, error) => refused.push(error.code),
    setTimer: (fn) => later.push(fn),
  });
  return { outbox, emitted, shown, confirmed, refused, later, state };
}

describe("outbox", () => {
  test("a thread reply carries its thread fields on every try", () => {
    const { outbox, emitted, later } = setup();
    outbox.add("t1", "in the thread", { fields: { thread_root_id: 5, also_in_room: true } });
    emitted[0].callback(new Error("timeout"));
    later.shift()();
    for (const { payload } of emitted) {
      assert.deepEqual(payload, { room_id: 1, body: "in the thread", client_id: "t1", thread_root_id: 5, also_in_room: true });
    }
    outbox.add("q1", "quoting", { fields: { quote_of: 3 } });
    assert.deepEqual(emitted.at(-1).payload, { room_id: 1, body: "quoting", client_id: "q1", quote_of: 3 });
  });

  test("an unanswered send goes again with the same client_id, then is shown as failed", () => {
    const { outbox, emitted, shown, later } = setup();
    outbox.add("c1", "hello");
    emitted[0].callback(new Error("timeout"));
    assert.equal(later.length, 1);
    later.shift()();
    emitted[1].callback(new Error("timeout"));
    later.shift()();
    emitted[2].callback(new Error("timeout"));
    assert.deepEqual(emitted.map((e) => e.payload.client_id), ["c1", "c1", "c1"]);
    assert.equal(shown.at(-1), "c1:failed");
    assert.equal(later.length, 0);
  });

  test("a refusal that retrying cannot fix gives the text back", () => {
    const { outbox, emitted, refused } = setup();
    outbox.add("c1", "hello");
    emitted[0].callback(null, { ok: false, error: { code: "too_large", message: "Too long" } });
    assert.deepEqual(refused, ["too_large"]);
    assert.equal(outbox.get("c1"), undefined);
  });

  test("offline sends wait, and go out on reconnect; failed ones stay failed", () => {
    const { outbox, emitted, shown, state } = setup({ connected: false });
    outbox.add("c1", "one");
    outbox.add("c2", "two");
    assert.deepEqual(shown, ["c1:waiting", "c2:waiting"]);
    outbox.get("c2").state = "failed";
    state.connected = true;
    outbox.resendWaiting();
    assert.deepEqual(emitted.map((e) => e.payload.client_id), ["c1"]);
    emitted[0].callback(null, { ok: true, message: { id: 5, client_id: "c1" } });
  });

  test("an ack confirms; a discarded one is gone", () => {
    const { outbox, emitted, confirmed } = setup();
    outbox.add("c1", "one");
    emitted[0].callback(null, { ok: true, message: { id: 5, client_id: "c1" } });
    assert.deepEqual(confirmed.map((m) => m.id), [5]);
    outbox.resolve("c1");
    assert.equal(outbox.get("c1"), undefined);
  });
});

describe("emoji", () => {
  const list = [
    { emoji: "👍", name: "thumbs up", aliases: [":thumbsup:", ":+1:"] },
    { emoji: "🎉", name: "party popper", aliases: [":tada:"] },
    { emoji: "😄", name: "grinning face with smiling eyes", aliases: [":smile:"] },
  ];

  test("search by name, word or alias; prefixes first", () => {
    assert.deepEqual(searchEmoji(list, "thu").map((e) => e.emoji), ["👍"]);
    assert.deepEqual(searchEmoji(list, ":tada:").map((e) => e.emoji), ["🎉"]);
    assert.deepEqual(searchEmoji(list, "smil").map((e) => e.emoji), ["😄"]);
    assert.deepEqual(searchEmoji(list, "pp").map((e) => e.emoji), ["🎉"]);
    assert.equal(searchEmoji(list, "").length, 3);
    assert.deepEqual(searchEmoji(list, "nothing like it"), []);
  });

  test("recently used: most recent first, no repeats, bounded", () => {
    const store = new Map();
    const storage = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v) };
    assert.deepEqual(recentEmoji(storage), []);
    rememberEmoji(storage, "👍");
    rememberEmoji(storage, "🎉");
    rememberEmoji(storage, "👍");
    assert.deepEqual(recentEmoji(storage), ["👍", "🎉"]);
    for (let i = 0; i < 40; i += 1) rememberEmoji(storage, String(i));
    assert.equal(recentEmoji(storage).length, RECENT_MAX);
    store.set("chorus.recentEmoji", "not json");
    assert.deepEqual(recentEmoji(storage), []);
  });
});
