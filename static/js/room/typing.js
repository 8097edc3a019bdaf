// "Alice is typing..." under the room's composer and the open thread's: `typing` events in
// (lib/typing.js holds who and until when), and this page's own typing out, paced.

import { TypingSender, TypingState, typingKey, typingText } from "../lib/typing.js";
import { rootIdOf } from "./thread.js";

/**
 * socket, roomId, meId; lines: {main, thread} (elements for the text); threadRoot(): the open
 * thread's root id (0 when none). Returns {draft(text, rootId), stopOthers(rootId), render()}.
 */
export function createTypingIndicator({ socket, roomId, meId, lines, threadRoot }) {
  const state = new TypingState();
  const senders = new Map(); // root id (0: the room's own composer) -> TypingSender
  let timer = null;

  function emit(what, rootId) {
    if (!socket || !socket.connected) return;
    const payload = { room_id: roomId };
    if (rootId) payload.thread_root_id = rootId;
    if (what === "stop") payload.stop = true;
    socket.emit("typing", payload);
  }

  /** The composer of rootId (0: the room's) now holds text. */
  function draft(text, rootId = 0) {
    let sender = senders.get(rootId);
    if (!sender) {
      sender = new TypingSender();
      senders.set(rootId, sender);
    }
    const what = sender.input(text);
    if (what) emit(what, rootId);
  }

  /** A thread closed or another opened: its typist stops there. */
  function stopOthers(keepRootId) {
    for (const [rootId, sender] of senders) {
      if (rootId === 0 || rootId === keepRootId) continue;
      if (sender.stop()) emit("stop", rootId);
    }
  }

  function show(el, key) {
    if (!el) return;
    const text = typingText(state.users(key));
    if (el.textContent !== text) el.textContent = text;
    el.classList.toggle("is-active", text !== "");
  }

  function render() {
    clearTimeout(timer);
    show(lines.main, typingKey(roomId, 0));
    const rootId = threadRoot();
    if (lines.thread) {
      if (rootId) show(lines.thread, typingKey(roomId, rootId));
      else show(lines.thread, "");
    }
    const next = state.nextExpiry();
    if (next !== null) timer = setTimeout(render, next + 20);
  }

  if (socket) {
    socket.on("typing", (event) => {
      if (!event || event.room_id !== roomId || !event.user || event.user.id === meId) return;
      if (state.note(event)) render();
    });
    socket.on("message", (m) => {
      if (!m || m.room_id !== roomId || !m.author) return;
      if (state.clearUser(roomId, rootIdOf(m) || 0, m.author.id)) render();
    });
    // Leaving the page: others should not see me typing for another 6 s.
    window.addEventListener("pagehide", () => {
      for (const [rootId, sender] of senders) if (sender.stop()) emit("stop", rootId);
    });
  }

  return { draft, stopOthers, render };
}
