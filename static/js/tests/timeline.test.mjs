// The timeline store and the rev cursor (static/js/room/timeline.js).
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { RevCursor, Timeline, reactedByMe, withViewerFlags } from "../room/timeline.js";

const message = (id, rev, extra = {}) => ({
  id, room_id: 1, seq: id, rev, author: { id: 7, username: "alice", display_name: "Alice" },
  body: `m${id}`, html: `<p>m${id}</p>`, edited_at: null, mentions: [], client_id: null, reactions: [], ...extra,
});
const tombstone = (id, rev) => ({
  id, room_id: 1, seq: id, rev, author: { id: 7, username: "alice", display_name: "Alice" },
  created_at: "2025-01-01T00:00:00.000Z", deleted: true, deleted_at: "2025-01-01T00:01:00.000Z",
});

describe("RevCursor", () => {
  test("the next rev moves it on", () => {
    const cursor = new RevCursor(4);
    assert.equal(cursor.see(5), "next");
    assert.equal(cursor.value, 5);
    assert.equal(cursor.see(6), "next");
    assert.equal(cursor.value, 6);
    assert.equal(cursor.hasGap(), false);
  });

  test("a rev at or below it changes nothing", () => {
    const cursor = new RevCursor(4);
    assert.equal(cursor.see(4), "old");
    assert.equal(cursor.see(2), "old");
    assert.equal(cursor.see(undefined), "old");
    assert.equal(cursor.value, 4);
  });

  test("a rev past a missing one is held, and the missing one closes the gap", () => {
    const cursor = new RevCursor(4);
    assert.equal(cursor.see(6), "gap");
    assert.equal(cursor.see(7), "gap");
    assert.equal(cursor.value, 4);
    assert.equal(cursor.hasGap(), true);
    assert.equal(cursor.highest, 7);
    assert.equal(cursor.see(5), "next");
    assert.equal(cursor.value, 7); // 5, then the held 6 and 7
    assert.equal(cursor.hasGap(), false);
  });

  test("a catch-up moves it to the head and drops what it covered", () => {
    const cursor = new RevCursor(4);
    cursor.see(6);
    cursor.see(9);
    cursor.advanceTo(7);
    assert.equal(cursor.value, 7);
    assert.equal(cursor.hasGap(), true); // 8 is still missing
    cursor.advanceTo(8);
    assert.equal(cursor.value, 9);
    assert.equal(cursor.hasGap(), false);
    cursor.advanceTo(3); // never backwards
    assert.equal(cursor.value, 9);
  });

  test("an empty room starts at 0 and its first change is 1", () => {
    const cursor = new RevCursor();
    assert.equal(cursor.see(1), "next");
    assert.equal(cursor.value, 1);
  });
});

describe("Timeline", () => {
  test("upsert keeps the state with the higher rev", () => {
    const timeline = new Timeline();
    assert.ok(timeline.upsert(message(1, 3, { body: "edited" })));
    assert.equal(timeline.upsert(message(1, 2, { body: "older" })), null);
    assert.equal(timeline.get(1).body, "edited");
    assert.ok(timeline.upsert(message(1, 5, { body: "newest" })));
    assert.equal(timeline.get(1).body, "newest");
    assert.equal(timeline.size, 1);
  });

  test("the same rev replaces only when asked (a reply to this viewer)", () => {
    const timeline = new Timeline();
    timeline.upsert(message(1, 3, { reactions: [{ emoji: "👍", count: 1, users: ["bob"] }] }));
    assert.equal(timeline.upsert(message(1, 3)), null);
    const reply = message(1, 3, { reactions: [{ emoji: "👍", count: 1, users: ["bob"], me: true }] });
    assert.equal(timeline.upsert(reply, { sameRev: true }), reply);
    assert.equal(timeline.get(1).reactions[0].me, true);
  });

  test("a tombstone replaces the message, and an older edit does not bring it back", () => {
    const timeline = new Timeline();
    timeline.upsert(message(1, 3));
    assert.ok(timeline.upsert(tombstone(1, 4)));
    assert.equal(timeline.get(1).deleted, true);
    assert.equal(timeline.get(1).body, undefined);
    assert.equal(timeline.upsert(message(1, 3, { body: "late edit" })), null);
    assert.equal(timeline.get(1).deleted, true);
    // Deleting again answers the same tombstone, no new rev: nothing changes.
    assert.equal(timeline.upsert(tombstone(1, 4)), null);
  });

  test("values come oldest first", () => {
    const timeline = new Timeline();
    timeline.upsert(message(3, 9));
    timeline.upsert(message(1, 1));
    timeline.upsert(message(2, 2));
    assert.deepEqual(timeline.values().map((m) => m.id), [1, 2, 3]);
  });
});

describe("the viewer's reactions", () => {
  test("me when given, else the names listed", () => {
    assert.equal(reactedByMe({ emoji: "👍", count: 1, users: ["bob"], me: false }, "bob"), false);
    assert.equal(reactedByMe({ emoji: "👍", count: 1, users: ["bob"] }, "bob"), true);
    assert.equal(reactedByMe({ emoji: "👍", count: 1, users: ["carol"] }, "bob"), false);
  });

  test("a broadcast keeps the flag held before, and takes the viewer's own change", () => {
    const users = Array.from({ length: 20 }, (_, i) => `u${i}`);
    const held = message(1, 3, { reactions: [{ emoji: "👍", count: 21, users, me: true }] });
    const broadcast = message(1, 4, { reactions: [{ emoji: "👍", count: 22, users }, { emoji: "🎉", count: 1, users: ["bob"] }] });
    const carol = { kind: "reaction", emoji: "🎉", on: true, by: { id: 2, username: "bob" } };
    const flagged = withViewerFlags(broadcast, held, "zed", carol);
    assert.deepEqual(flagged.reactions.map((r) => r.me), [true, false]);
    assert.equal(broadcast.reactions[0].me, undefined, "the given state is left alone");

    const mine = { kind: "reaction", emoji: "👍", on: false, by: { id: 9, username: "zed" } };
    const removed = message(1, 5, { reactions: [{ emoji: "👍", count: 21, users }] });
    assert.equal(withViewerFlags(removed, flagged, "zed", mine).reactions[0].me, false);
  });
});
