// People as data (static/js/lib/people.js): presence, activity pace, DM names, wildcards, local time.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  ActivityGate, PresenceStore, dmName, dmOthers, dndActive, findWildcards, joinNames, localTimeIn,
  needsWildcardConfirm, sortDms, statusLine,
} from "../lib/people.js";

const ALICE = { id: 7, username: "alice", display_name: "Alice" };
const BOB = { id: 8, username: "bob", display_name: "Bob" };
const CAROL = { id: 9, username: "carol", display_name: "Carol" };

describe("presence store", () => {
  test("records states and tells listeners of changes only", () => {
    const store = new PresenceStore();
    const heard = [];
    store.subscribe((id, entry) => heard.push([id, entry.state]));
    assert.equal(store.stateOf(7), "");
    assert.equal(store.set({ user_id: 7, state: "active", status_text: "", status_emoji: "", dnd_until: null }), true);
    assert.equal(store.set({ user_id: 7, state: "active", status_text: "", status_emoji: "", dnd_until: null }), false);
    assert.equal(store.set({ user_id: "7", state: "offline" }), true);
    assert.deepEqual(heard, [[7, "active"], [7, "offline"]]);
    assert.equal(store.stateOf(7), "offline");
  });

  test("a state-only update keeps the status", () => {
    const store = new PresenceStore();
    store.set({ user_id: 7, state: "active", status_text: "Lunch", status_emoji: "🥪", dnd_until: null });
    store.set({ user_id: 7, state: "idle" });
    assert.deepEqual(store.get(7), { state: "idle", status_text: "Lunch", status_emoji: "🥪", dnd_until: null });
    store.set({ user_id: 7, state: "idle", status_text: "", status_emoji: "" });
    assert.equal(statusLine(store.get(7)), "");
  });

  test("says which ids are still unknown", () => {
    const store = new PresenceStore();
    store.set({ user_id: 7, state: "idle" });
    assert.deepEqual(store.missing([7, 8, 8, "9", 0]), [8, 9]);
  });

  test("ignores rows without a user", () => {
    const store = new PresenceStore();
    assert.equal(store.set({ state: "active" }), false);
    assert.equal(store.set(null), false);
  });

  test("unsubscribing stops the calls", () => {
    const store = new PresenceStore();
    let calls = 0;
    const stop = store.subscribe(() => { calls += 1; });
    store.set({ user_id: 1, state: "active" });
    stop();
    store.set({ user_id: 1, state: "idle" });
    assert.equal(calls, 1);
  });
});

describe("activity pace", () => {
  test("at most once a minute, at once after a reconnect", () => {
    const gate = new ActivityGate();
    assert.equal(gate.shouldSend(0), true);
    assert.equal(gate.shouldSend(30000), false);
    assert.equal(gate.shouldSend(59999), false);
    assert.equal(gate.shouldSend(60000), true);
    gate.reset();
    assert.equal(gate.shouldSend(60001), true);
  });
});

describe("DMs", () => {
  const dm = (id, members, last) => ({ id, kind: "dm", name: "", members, last_message_at: last, created_at: "2025-01-01T00:00:00Z" });

  test("a DM is named after everyone but me", () => {
    assert.equal(dmName(dm(1, [ALICE, BOB]), ALICE.id), "Bob");
    assert.equal(dmName(dm(1, [BOB, ALICE, CAROL]), ALICE.id), "Bob and Carol");
    assert.equal(dmName(dm(1, [ALICE, BOB, CAROL, { id: 10, username: "dave", display_name: "" }]), ALICE.id), "Bob, Carol and dave");
    assert.deepEqual(dmOthers(dm(1, [ALICE, BOB]), BOB.id), [ALICE]);
  });

  test("names join like a sentence", () => {
    assert.equal(joinNames([]), "");
    assert.equal(joinNames(["A"]), "A");
    assert.equal(joinNames(["A", "B"]), "A and B");
    assert.equal(joinNames(["A", "B", "C"]), "A, B and C");
  });

  test("newest activity first; a DM without messages by its creation", () => {
    const list = [
      dm(1, [], "2025-01-02T00:00:00Z"),
      dm(2, [], null),
      dm(3, [], "2025-01-03T00:00:00Z"),
      dm(4, [], "2025-01-02T00:00:00Z"),
    ];
    assert.deepEqual(sortDms(list).map((d) => d.id), [3, 4, 1, 2]);
    assert.deepEqual(list.map((d) => d.id), [1, 2, 3, 4]); // not sorted in place
  });
});

describe("wildcard mentions", () => {
  test("finds @room, @all, @everyone and @here as words", () => {
    assert.deepEqual(findWildcards("hey @room and @Here"), ["room", "here"]);
    assert.deepEqual(findWildcards("@all: lunch"), ["all"]);
    assert.deepEqual(findWildcards("@everyone's invited"), ["everyone"]);
    assert.deepEqual(findWildcards("line\n@room"), ["room"]);
  });

  test("not in addresses, longer names or code", () => {
    assert.deepEqual(findWildcards("mail me at ops@room.example"), []);
    assert.deepEqual(findWildcards("@roomba @all_hands @herekitty"), []);
    assert.deepEqual(findWildcards("use `@room` to ping"), []);
    assert.deepEqual(findWildcards("```\n@everyone\n```\nok"), []);
    assert.deepEqual(findWildcards("```js\n@all\n```\nthen @here"), ["here"]);
  });

  test("asks above the threshold only", () => {
    assert.equal(needsWildcardConfirm("@room hi", 21, 20), true);
    assert.equal(needsWildcardConfirm("@room hi", 20, 20), false);
    assert.equal(needsWildcardConfirm("hi @bob", 100, 20), false);
  });
});

describe("a person's time and status", () => {
  const noon = new Date("2025-06-01T12:00:00Z");

  test("local time in their zone", () => {
    assert.equal(localTimeIn("Asia/Tokyo", noon, "en-GB"), "21:00");
    assert.equal(localTimeIn("America/New_York", noon, "en-US"), "8:00 AM");
    assert.equal(localTimeIn("", noon), "");
    assert.equal(localTimeIn("Not/AZone", noon), "");
  });

  test("do not disturb is on until its time", () => {
    assert.equal(dndActive(null), false);
    assert.equal(dndActive("2025-06-01T13:00:00Z", noon.getTime()), true);
    assert.equal(dndActive("2025-06-01T11:00:00Z", noon.getTime()), false);
    assert.equal(dndActive("garbage", noon.getTime()), false);
  });

  test("status line", () => {
    assert.equal(statusLine({ status_emoji: "🌴", status_text: "On holiday" }), "🌴 On holiday");
    assert.equal(statusLine({ status_emoji: "", status_text: "Busy" }), "Busy");
    assert.equal(statusLine(null), "");
  });
});
