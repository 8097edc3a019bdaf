// Who is typing where, as data (no DOM): the composer's sending side (at most one `typing`
// every few seconds, one `stop` when the box is cleared or sent) and the receiving side
// (entries that expire without a repeat, cleared by the typist's message).

export const TYPING_EVERY_MS = 3000; // a typist repeats `typing` at most this often
export const TYPING_TTL_MS = 6000; // an entry without a repeat for this long is gone

/** The key of a room's main composer (threadRootId 0) or one thread's. */
export function typingKey(roomId, threadRootId = 0) {
  return `${Number(roomId) || 0}:${Number(threadRootId) || 0}`;
}

/** "Alice is typing...", "Alice and Bob are typing...", "Several people are typing..." or "". */
export function typingText(users) {
  const names = users.map((u) => u.display_name || u.username || "Someone");
  if (names.length === 0) return "";
  if (names.length === 1) return `${names[0]} is typing...`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing...`;
  return "Several people are typing...";
}

/**
 * The sending side of one composer. input(text, now) and sent() say what to emit:
 * "typing", "stop" or null.
 */
export class TypingSender {
  constructor({ every = TYPING_EVERY_MS } = {}) {
    this.every = every;
    this.lastSent = -Infinity;
    this.active = false; // a `typing` went out and no `stop` since
  }

  /** The box now holds text: "typing" when due, "stop" when it was emptied, else null. */
  input(text, now = Date.now()) {
    if (String(text || "").trim() === "") return this.stop();
    if (now - this.lastSent < this.every) return null;
    this.lastSent = now;
    this.active = true;
    return "typing";
  }

  /** The box was sent or cleared: "stop" if others were told I was typing. */
  stop() {
    if (!this.active) return null;
    this.active = false;
    this.lastSent = -Infinity;
    return "stop";
  }
}

/** The receiving side: every typist per room and thread, each expiring ttl after its last repeat. */
export class TypingState {
  constructor({ ttl = TYPING_TTL_MS } = {}) {
    this.ttl = ttl;
    this.entries = new Map(); // key -> Map(user id -> {user, until})
  }

  /**
   * A `typing` event ({room_id, thread_root_id, user, stop}). Returns the key it changed, or
   * null when nothing changed (a stop for someone not shown, a malformed event).
   */
  note(event, now = Date.now()) {
    if (!event || !event.user || !event.room_id) return null;
    const key = typingKey(event.room_id, event.thread_root_id);
    const userId = Number(event.user.id);
    if (event.stop) return this.drop(key, userId) ? key : null;
    let users = this.entries.get(key);
    if (!users) {
      users = new Map();
      this.entries.set(key, users);
    }
    const known = users.get(userId);
    users.set(userId, { user: event.user, until: now + this.ttl, since: known ? known.since : now });
    return key;
  }

  /** A message from userId arrived in that room and thread: they stopped. True if one was shown. */
  clearUser(roomId, threadRootId, userId) {
    return this.drop(typingKey(roomId, threadRootId), Number(userId));
  }

  drop(key, userId) {
    const users = this.entries.get(key);
    if (!users || !users.delete(userId)) return false;
    if (users.size === 0) this.entries.delete(key);
    return true;
  }

  /** The users typing under one key at now, first typist first (expired ones forgotten). */
  users(key, now = Date.now()) {
    const users = this.entries.get(key);
    if (!users) return [];
    for (const [id, entry] of users) if (entry.until <= now) users.delete(id);
    if (users.size === 0) {
      this.entries.delete(key);
      return [];
    }
    return Array.from(users.values()).sort((a, b) => a.since - b.since).map((e) => e.user);
  }

  /** Milliseconds until the next entry expires (null when none is held). */
  nextExpiry(now = Date.now()) {
    let next = null;
    for (const users of this.entries.values()) {
      for (const entry of users.values()) {
        const left = Math.max(0, entry.until - now);
        if (next === null || left < next) next = left;
      }
    }
    return next;
  }
}
