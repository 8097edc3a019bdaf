// Typing as data (static/js/lib/typing.js): the sender's pace, the receiver's expiry, the line's words.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { TypingSender, TypingState, typingKey, typingText } from "../lib/typing.js";

const ALICE = { id: 7, username: "alice", display_name: "Alice" };
const BOB = { id: 8, username: "bob", display_name: "Bob" };
const CAROL = { id: 9, username: "carol", display_name: "Carol" };

describe("the typing line", () => {
  test("names one, two, then gives up", () => {
    assert.equal(typingText([]), "");
    assert.equal(typingText([ALICE]), "Alice is typing...");
    assert.equal(typingText([ALICE, BOB]), "Alice and Bob are typing...");
    assert.equal(typingText([ALICE, BOB, CAROL]), "Several people are typing...");
  });

  test("falls back to the username", () => {
    assert.equal(typingText([{ id: 1, username: "dave" }]), "dave is typing...");
  });
});

describe("the sender", () => {
  test("sends at most every 3 s while typing", () => {
    const sender = new TypingSender();
    assert.equal(sender.input("h", 1000), "typing");
    assert.equal(sender.input("he", 2000), null);
    assert.equal(sender.input("hel", 3999), null);
    assert.equal(sender.input("hell", 4000), "typing");
  });

  test("clearing the box sends one stop, and typing again starts at once", () => {
    const sender = new TypingSender();
    sender.input("hi", 1000);
    assert.equal(sender.input("  ", 1500), "stop");
    assert.equal(sender.input("", 1600), null);
    assert.equal(sender.input("x", 1700), "typing");
  });

  test("sending stops; nothing to stop when nothing was announced", () => {
    const sender = new TypingSender();
    assert.equal(sender.stop(), null);
    sender.input("hi", 0);
    assert.equal(sender.stop(), "stop");
    assert.equal(sender.stop(), null);
  });
});

describe("the receiver", () => {
  test("keys by room and thread", () => {
    assert.equal(typingKey(3), "3:0");
    assert.equal(typingKey(3, null), "3:0");
    assert.equal(typingKey(3, 12), "3:12");
  });

  test("an entry expires 6 s after its last repeat", () => {
    const state = new TypingState();
    assert.equal(state.note({ room_id: 1, user: ALICE }, 0), "1:0");
    assert.deepEqual(state.users("1:0", 5999), [ALICE]);
    state.note({ room_id: 1, user: ALICE }, 5000);
    assert.deepEqual(state.users("1:0", 10999), [ALICE]);
    assert.deepEqual(state.users("1:0", 11000), []);
    assert.equal(state.nextExpiry(11000), null);
  });

  test("threads and rooms are apart; first typist first", () => {
    const state = new TypingState();
    state.note({ room_id: 1, thread_root_id: 5, user: BOB }, 0);
    state.note({ room_id: 1, user: CAROL }, 10);
    state.note({ room_id: 1, user: ALICE }, 20);
    state.note({ room_id: 1, user: CAROL }, 30); // a repeat keeps her place
    assert.deepEqual(state.users("1:0", 100), [CAROL, ALICE]);
    assert.deepEqual(state.users("1:5", 100), [BOB]);
    assert.deepEqual(state.users("2:0", 100), []);
    assert.equal(state.nextExpiry(100), 5900);
  });

  test("stop and a message from the typist clear the entry", () => {
    const state = new TypingState();
    state.note({ room_id: 1, user: ALICE }, 0);
    state.note({ room_id: 1, thread_root_id: 5, user: BOB }, 0);
    assert.equal(state.note({ room_id: 1, user: ALICE, stop: true }, 10), "1:0");
    assert.equal(state.note({ room_id: 1, user: ALICE, stop: true }, 10), null);
    assert.deepEqual(state.users("1:0", 20), []);
    assert.equal(state.clearUser(1, 0, BOB.id), false); // Bob types in the thread, not the room
    assert.equal(state.clearUser(1, 5, BOB.id), true);
    assert.deepEqual(state.users("1:5", 20), []);
  });

  test("ignores malformed events", () => {
    const state = new TypingState();
    assert.equal(state.note(null), null);
    assert.equal(state.note({ room_id: 1 }), null);
    assert.equal(state.note({ user: ALICE }), null);
  });
});
