// Threads as data (static/js/room/thread.js): routing, summaries, unread markers, the list.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  ReadMarker, ThreadList, firstUnreadId, inMainTimeline, route, splitStates, standingOf, summaryOf, threadHref,
  threadToOpen,
} from "../room/thread.js";
import { Timeline } from "../room/timeline.js";

const ALICE = { id: 7, username: "alice", display_name: "Alice" };
const BOB = { id: 8, username: "bob", display_name: "Bob" };

const message = (id, rev, extra = {}) => ({
  id, room_id: 1, seq: id, rev, author: ALICE, body: `m${id}`, html: `<p>m${id}</p>`,
  created_at: `2025-01-01T00:00:${String(id).padStart(2, "0")}Z`, edited_at: null, mentions: [], client_id: null,
  reactions: [], thread_root_id: null, also_in_room: false, thread: null, quote_of: null, quote: null, ...extra,
});
const reply = (id, rev, rootId, extra = {}) => message(id, rev, { thread_root_id: rootId, ...extra });
const tombstone = (id, rev, extra = {}) => ({
  id, room_id: 1, seq: id, rev, author: ALICE, created_at: "2025-01-01T00:00:00Z", deleted: true,
  deleted_at: "2025-01-01T00:01:00Z", thread_root_id: null, also_in_room: false, thread: null, ...extra,
});

describe("routing", () => {
  test("a top-level message goes to the main timeline only", () => {
    assert.deepEqual(route(message(1, 1)), { main: true, panel: false });
    assert.deepEqual(route(message(1, 1), 5), { main: true, panel: false });
  });

  test("a reply goes to its thread's panel when open, and nowhere else", () => {
    assert.deepEqual(route(reply(6, 6, 5), 5), { main: false, panel: true });
    assert.deepEqual(route(reply(6, 6, 5), 4), { main: false, panel: false });
    assert.deepEqual(route(reply(6, 6, 5)), { main: false, panel: false });
  });

  test("a reply also sent to the room goes to both", () => {
    assert.deepEqual(route(reply(6, 6, 5, { also_in_room: true }), 5), { main: true, panel: true });
    assert.deepEqual(route(reply(6, 6, 5, { also_in_room: true }), 0), { main: true, panel: false });
  });

  test("the root goes to the main timeline and to its own panel", () => {
    const root = message(5, 9, { thread: { reply_count: 1, last_reply_at: "x", repliers: ["bob"] } });
    assert.deepEqual(route(root, 5), { main: true, panel: true });
  });

  test("tombstones are routed by the same fields", () => {
    assert.equal(inMainTimeline(tombstone(6, 10, { thread_root_id: 5 })), false);
    assert.equal(inMainTimeline(tombstone(6, 10, { thread_root_id: 5, also_in_room: true })), true);
    assert.deepEqual(route(tombstone(6, 10, { thread_root_id: 5 }), 5), { main: false, panel: true });
  });

  test("a room-wide catch-up page is split between the two", () => {
    const page = [message(1, 11), reply(6, 12, 5), reply(7, 13, 4), reply(8, 14, 5, { also_in_room: true }), message(5, 15)];
    const { main, panel } = splitStates(page, 5);
    assert.deepEqual(main.map((m) => m.id), [1, 8, 5]);
    assert.deepEqual(panel.map((m) => m.id), [6, 8, 5]);
  });

  test("the thread to open for a reply is its root's", () => {
    assert.equal(threadToOpen(reply(6, 6, 5)), 5);
    assert.equal(threadToOpen(message(5, 5)), 5);
    assert.equal(threadHref(3, 5), "/rooms/3?thread=5");
  });
});

describe("summaries", () => {
  test("none before the first reply, or when every reply was deleted", () => {
    assert.equal(summaryOf(null), null);
    assert.equal(summaryOf({ reply_count: 0, last_reply_at: null, repliers: [] }), null);
  });

  test("the count, the last reply's time and the first repliers", () => {
    const s = summaryOf({ reply_count: 4, last_reply_at: "2025-01-01T10:00:00Z", repliers: ["bob", "carol", "dave", "erin"] });
    assert.equal(s.label, "4 replies");
    assert.equal(s.lastReplyAt, "2025-01-01T10:00:00Z");
    assert.deepEqual(s.repliers, ["bob", "carol", "dave"]);
    assert.equal(s.moreRepliers, 1);
    assert.equal(summaryOf({ reply_count: 1, repliers: ["bob"] }).label, "1 reply");
  });

  test("a root's summary is upserted by rev: a late live event does not undo a catch-up", () => {
    const store = new Timeline();
    const two = message(5, 20, { thread: { reply_count: 2, last_reply_at: "b", repliers: ["bob"] } });
    const one = message(5, 18, { thread: { reply_count: 1, last_reply_at: "a", repliers: ["bob"] } });
    store.upsert(two);
    assert.equal(store.upsert(one), null);
    assert.equal(summaryOf(store.get(5).thread).count, 2);
    const three = message(5, 22, { thread: { reply_count: 3, last_reply_at: "c", repliers: ["bob", "carol"] } });
    assert.equal(store.upsert(three), three);
    assert.equal(summaryOf(store.get(5).thread).label, "3 replies");
  });
});

describe("unread", () => {
  test("the marker goes before the first reply by someone else past the last read one", () => {
    const replies = [reply(6, 6, 5, { author: BOB }), reply(7, 7, 5), reply(8, 8, 5, { author: BOB }), reply(9, 9, 5, { author: BOB })];
    assert.equal(firstUnreadId(replies, 6, ALICE.id), 8);
    assert.equal(firstUnreadId(replies, 0, ALICE.id), 6);
    assert.equal(firstUnreadId(replies, 9, ALICE.id), 0);
    assert.equal(firstUnreadId([reply(8, 8, 5, { author: BOB }), tombstone(7, 9, { thread_root_id: 5, author: BOB })], 6, ALICE.id), 8);
  });

  test("a thread page's follow says whether I follow, my marker, and where New goes", () => {
    assert.deepEqual(standingOf({ following: true, last_read_id: 12, unread: 3 }), { following: true, lastReadId: 12, unreadFrom: 12 });
    assert.deepEqual(standingOf({ following: true, last_read_id: 0, unread: 5 }), { following: true, lastReadId: 0, unreadFrom: 0 });
    // Not followed (never, or no longer): the marker is kept, but nothing is marked New.
    assert.deepEqual(standingOf({ following: false, last_read_id: 12, unread: 1 }), { following: false, lastReadId: 12, unreadFrom: null });
    assert.deepEqual(standingOf({ following: false, last_read_id: 0, unread: 4 }), { following: false, lastReadId: 0, unreadFrom: null });
    assert.deepEqual(standingOf(undefined), { following: false, lastReadId: 0, unreadFrom: null });
  });

  test("a read marker never moves back, and is not asked for twice", () => {
    const marker = new ReadMarker(5);
    assert.equal(marker.moveTo(4), false);
    assert.equal(marker.moveTo(8), true);
    assert.equal(marker.value, 8);
    assert.equal(marker.shouldSend(8), false);
    assert.equal(marker.shouldSend(9), true);
    marker.sent = 9;
    assert.equal(marker.shouldSend(9), false);
  });
});

describe("ThreadList", () => {
  const page = () => [
    { root: message(5, 10, { thread: { reply_count: 2, last_reply_at: "2025-01-01T00:00:07Z", repliers: ["bob"] } }), reply_count: 2, unread: 0, last_reply_at: "2025-01-01T00:00:07Z", last_read_id: 7 },
    { root: message(3, 12, { room_id: 2 }), reply_count: 1, unread: 1, last_reply_at: "2025-01-01T00:00:04Z", last_read_id: 0 },
  ];

  test("unread threads come first, then the latest reply", () => {
    const list = new ThreadList(ALICE.id);
    list.load(page());
    assert.deepEqual(list.sorted().map((t) => t.root.id), [3, 5]);
    assert.equal(list.unreadThreads, 1);
  });

  test("a reply by someone else past the marker counts once; my own and older ones do not", () => {
    const list = new ThreadList(ALICE.id);
    list.load(page());
    assert.equal(list.applyReply(reply(9, 14, 5, { author: BOB, created_at: "2025-01-01T00:00:09Z" })), true);
    assert.equal(list.applyReply(reply(9, 14, 5, { author: BOB })), false); // the catch-up brings it again
    assert.equal(list.applyReply(reply(10, 15, 5)), false); // mine
    assert.equal(list.applyReply(reply(6, 16, 5, { author: BOB })), false); // read already
    assert.equal(list.applyReply(reply(11, 17, 99, { author: BOB })), false); // not followed
    assert.equal(list.get(5).unread, 1);
    assert.deepEqual(list.sorted().map((t) => t.root.id), [5, 3]); // both unread: the latest reply first
    // Deleted before it was read: it no longer counts.
    list.applyReply(tombstone(9, 18, { thread_root_id: 5, author: BOB }));
    assert.equal(list.get(5).unread, 0);
  });

  test("a read marker moves forward only, and sets the count", () => {
    const list = new ThreadList(ALICE.id);
    list.load(page());
    list.applyReply(reply(9, 14, 5, { author: BOB }));
    assert.equal(list.applyRead({ root_id: 5, last_read_id: 9, unread: 0 }), true);
    assert.equal(list.get(5).unread, 0);
    assert.equal(list.applyRead({ root_id: 5, last_read_id: 8, unread: 3 }), false);
    assert.equal(list.get(5).unread, 0);
    assert.equal(list.applyReply(reply(9, 14, 5, { author: BOB })), false);
  });

  test("a root's newer state updates the counts; an older one is ignored", () => {
    const list = new ThreadList(ALICE.id);
    list.load(page());
    const newer = message(5, 20, { thread: { reply_count: 3, last_reply_at: "2025-01-01T00:00:20Z", repliers: ["bob"] } });
    assert.equal(list.applyRoot(newer), true);
    assert.equal(list.get(5).reply_count, 3);
    assert.equal(list.applyRoot(message(5, 15, { thread: { reply_count: 9, repliers: [] } })), false);
    assert.equal(list.get(5).reply_count, 3);
    assert.equal(list.applyRoot(message(42, 99)), false);
  });
});
