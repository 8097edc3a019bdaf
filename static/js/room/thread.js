// Threads as data: where a message belongs (the main timeline, a thread, or both), the words
// of a root's summary, where the reader stands in a thread and its unread marker, and the
// list of threads followed.
// No DOM here, so all of it is unit-tested with `node --test`.

import { revOf } from "./timeline.js";

/** How many repliers a root's summary shows. */
export const REPLIERS_SHOWN = 3;

/** The root id of a thread reply, or 0 for a top-level message. */
export function rootIdOf(message) {
  return (message && Number(message.thread_root_id)) || 0;
}

/** Whether a message (or tombstone) is in the room's main timeline: top-level, or a reply sent there too. */
export function inMainTimeline(message) {
  return Boolean(message) && (!rootIdOf(message) || Boolean(message.also_in_room));
}

/** Whether a message is the root (openRootId itself) or a reply of the thread openRootId. */
export function inThread(message, openRootId) {
  const root = Number(openRootId) || 0;
  if (!message || !root) return false;
  return Number(message.id) === root || rootIdOf(message) === root;
}

/**
 * Where a message that arrived (live or by a room-wide catch-up) goes: `main` (the room's
 * timeline), `panel` (the thread open in the side panel, root included), both, or neither
 * (a reply of a thread that is not open).
 */
export function route(message, openRootId = 0) {
  return { main: inMainTimeline(message), panel: inThread(message, openRootId) };
}

/** Split states between the main timeline and the open thread (a catch-up page). */
export function splitStates(states, openRootId = 0) {
  const main = [];
  const panel = [];
  for (const m of states || []) {
    const where = route(m, openRootId);
    if (where.main) main.push(m);
    if (where.panel) panel.push(m);
  }
  return { main, panel };
}

/** The thread to open for a message: its root for a reply, itself for a top-level one. */
export function threadToOpen(message) {
  return rootIdOf(message) || Number(message && message.id) || 0;
}

/** A root's summary in words, or null when it has no replies to show. */
export function summaryOf(thread, shown = REPLIERS_SHOWN) {
  const count = (thread && Number(thread.reply_count)) || 0;
  if (count <= 0) return null;
  const repliers = Array.isArray(thread.repliers) ? thread.repliers : [];
  return {
    count,
    label: `${count} ${count === 1 ? "reply" : "replies"}`,
    lastReplyAt: thread.last_reply_at || null,
    repliers: repliers.slice(0, shown),
    moreRepliers: Math.max(0, repliers.length - shown),
  };
}

/** The link that opens a thread: the room page with ?thread=<root id>. */
export function threadHref(roomId, rootId) {
  return `/rooms/${roomId}?thread=${rootId}`;
}

/** The id of the reply in front of which "New" goes: the first by someone else after lastReadId. */
export function firstUnreadId(replies, lastReadId, meId) {
  const marker = Number(lastReadId) || 0;
  let first = 0;
  for (const m of replies || []) {
    if (!m || m.deleted || !m.author || m.author.id === meId) continue;
    const id = Number(m.id);
    if (id > marker && (!first || id < first)) first = id;
  }
  return first;
}

/**
 * Where the reader stands in a thread, from the `follow` of its page (?thread=): whether they
 * follow it, their read marker, and the marker "New" is placed after (null: no "New", for a
 * thread they do not follow).
 */
export function standingOf(follow) {
  const following = Boolean(follow && follow.following);
  const lastReadId = (follow && Number(follow.last_read_id)) || 0;
  return { following, lastReadId, unreadFrom: following ? lastReadId : null };
}

/** A read marker that never moves back (the server's rule), and what was asked of it. */
export class ReadMarker {
  constructor(value = 0) {
    this.value = Number(value) || 0;
    this.sent = 0;
  }

  /** Move to id if it is further on; true when it moved. */
  moveTo(id) {
    const n = Number(id) || 0;
    if (n <= this.value) return false;
    this.value = n;
    return true;
  }

  /** Whether id should be reported to the server (past the marker and not asked already). */
  shouldSend(id) {
    const n = Number(id) || 0;
    return n > this.value && n > this.sent;
  }
}

/**
 * The threads followed across rooms, as GET /threads gives them, kept current by what
 * happens live: a root's new state (the higher rev wins), a new reply (unread when someone
 * else wrote it past the marker), a read marker moved (here or in another tab).
 */
export class ThreadList {
  constructor(meId) {
    this.meId = meId;
    this.entries = new Map(); // root id -> {root, reply_count, unread, last_reply_at, last_read_id}
    this.counted = new Set(); // reply ids already counted as unread
  }

  /** Replace the list with a GET /threads page. */
  load(threads) {
    this.entries.clear();
    this.counted.clear();
    for (const t of threads || []) {
      if (!t || !t.root) continue;
      this.entries.set(Number(t.root.id), {
        root: t.root,
        reply_count: Number(t.reply_count) || 0,
        unread: Number(t.unread) || 0,
        last_reply_at: t.last_reply_at || null,
        last_read_id: Number(t.last_read_id) || 0,
      });
    }
  }

  get(rootId) {
    return this.entries.get(Number(rootId)) || null;
  }

  has(rootId) {
    return this.entries.has(Number(rootId));
  }

  /** A root's newer state: its summary gives the counts. Returns true when the entry changed. */
  applyRoot(root) {
    const entry = root && this.entries.get(Number(root.id));
    if (!entry || revOf(root) <= revOf(entry.root)) return false;
    entry.root = root;
    if (root.thread) {
      entry.reply_count = Number(root.thread.reply_count) || 0;
      entry.last_reply_at = root.thread.last_reply_at || entry.last_reply_at;
    }
    return true;
  }

  /** A reply seen live or caught up: counts as unread once, if someone else wrote it past the marker. */
  applyReply(reply) {
    const entry = this.entries.get(rootIdOf(reply));
    if (!entry) return false;
    const id = Number(reply.id);
    if (reply.deleted) {
      // A deleted reply no longer counts (the server's rule); only what this list counted can be taken back.
      if (this.counted.delete(id)) entry.unread = Math.max(0, entry.unread - 1);
      return true;
    }
    if (!reply.author || reply.author.id === this.meId || id <= entry.last_read_id || this.counted.has(id)) return false;
    this.counted.add(id);
    entry.unread += 1;
    if (!entry.last_reply_at || String(reply.created_at) > String(entry.last_reply_at)) entry.last_reply_at = reply.created_at;
    return true;
  }

  /** A thread_read event or a POST /threads/<root>/read reply. */
  applyRead({ root_id: rootId, last_read_id: lastReadId, unread }) {
    const entry = this.entries.get(Number(rootId));
    if (!entry) return false;
    const marker = Number(lastReadId) || 0;
    if (marker < entry.last_read_id) return false; // never back
    entry.last_read_id = marker;
    if (typeof unread === "number") entry.unread = unread;
    for (const id of Array.from(this.counted)) if (id <= marker) this.counted.delete(id);
    return true;
  }

  /** Stop listing a thread (unfollowed). */
  remove(rootId) {
    return this.entries.delete(Number(rootId));
  }

  /** How many threads have unread replies. */
  get unreadThreads() {
    let n = 0;
    for (const entry of this.entries.values()) if (entry.unread > 0) n += 1;
    return n;
  }

  /** Threads with unread replies first, then by latest reply, newest first (the server's order). */
  sorted() {
    return Array.from(this.entries.values()).sort((a, b) => {
      if ((a.unread > 0) !== (b.unread > 0)) return a.unread > 0 ? -1 : 1;
      const at = String(b.last_reply_at || "").localeCompare(String(a.last_reply_at || ""));
      return at || Number(b.root.id) - Number(a.root.id);
    });
  }
}
