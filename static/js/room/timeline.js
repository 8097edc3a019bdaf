// A room's timeline as data: the messages (and tombstones) held, and the rev cursor.
// No DOM here, so both are unit-tested with `node --test`.

/** A state's rev as a number (0 for a state that has none, such as a pending echo). */
export function revOf(state) {
  return (state && Number(state.rev)) || 0;
}

/**
 * Whether the viewer made reaction r: `me` when the server said so (replies to one viewer),
 * else their username among the first reactors a broadcast names.
 */
export function reactedByMe(reaction, username) {
  if (typeof reaction.me === "boolean") return reaction.me;
  return Array.isArray(reaction.users) && reaction.users.includes(username);
}

/**
 * A broadcast carries no `me` on its reactions: give each one the viewer's flag, from the
 * change itself when the viewer made it, else from the state held before, else from the
 * names the broadcast lists. Returns a new state; the one given is left alone.
 */
export function withViewerFlags(state, held, username, change = null) {
  if (!state || !Array.isArray(state.reactions)) return state;
  const before = new Map(((held && held.reactions) || []).map((r) => [r.emoji, r]));
  const reactions = state.reactions.map((r) => {
    if (typeof r.me === "boolean") return r;
    let me;
    if (change && change.kind === "reaction" && change.emoji === r.emoji && change.by
      && change.by.username === username) {
      me = Boolean(change.on);
    } else if (before.has(r.emoji) && typeof before.get(r.emoji).me === "boolean") {
      // Someone else's reaction changed the count, not whether the viewer is among them,
      // unless the names listed say so (a list of the first 20 can only prove presence).
      me = before.get(r.emoji).me || r.users.includes(username);
    } else {
      me = reactedByMe(r, username);
    }
    return { ...r, me };
  });
  return { ...state, reactions };
}

/** The messages of one room by id, each kept at its newest state (the highest rev). */
export class Timeline {
  constructor() {
    this.states = new Map();
  }

  get size() {
    return this.states.size;
  }

  get(id) {
    return this.states.get(Number(id));
  }

  has(id) {
    return this.states.has(Number(id));
  }

  /**
   * Hold state unless a newer one (a higher rev) is held already. An equal rev replaces only
   * with `sameRev` (a reply to this viewer, which says more than the broadcast of the same
   * change). Returns the state now held, or null when nothing changed.
   */
  upsert(state, { sameRev = false } = {}) {
    if (!state || state.id === undefined || state.id === null) return null;
    const id = Number(state.id);
    const held = this.states.get(id);
    if (held) {
      const next = revOf(state);
      const have = revOf(held);
      if (next < have || (next === have && !sameRev)) return null;
    }
    this.states.set(id, state);
    return state;
  }

  delete(id) {
    return this.states.delete(Number(id));
  }

  clear() {
    this.states.clear();
  }

  /** Every state held, oldest message first. */
  values() {
    return Array.from(this.states.values()).sort((a, b) => a.id - b.id);
  }
}

/**
 * The rev up to which every change of a room has been seen. A rev right after it moves it
 * on (and past any held ones that are then contiguous); a rev further on is held without
 * moving it, leaving a gap until the missing ones arrive or a catch-up fills it.
 */
export class RevCursor {
  constructor(value = 0) {
    this.value = Math.max(0, Number(value) || 0);
    this.held = new Set();
  }

  /** Note a rev seen live: "next" (the cursor moved), "old" (at or below it) or "gap". */
  see(rev) {
    const n = Number(rev) || 0;
    if (!n) return "old";
    if (n <= this.value) return "old";
    if (n === this.value + 1) {
      this.value = n;
      this.drain();
      return "next";
    }
    this.held.add(n);
    return "gap";
  }

  /** Every change up to rev has been seen (a catch-up got that far). */
  advanceTo(rev) {
    const n = Number(rev) || 0;
    if (n > this.value) this.value = n;
    this.drain();
  }

  /** Start again from rev, forgetting what was held. */
  reset(rev) {
    this.value = Math.max(0, Number(rev) || 0);
    this.held.clear();
  }

  /** Whether some rev beyond the cursor arrived while one before it did not. */
  hasGap() {
    return this.held.size > 0;
  }

  /** The highest rev seen, held ones included. */
  get highest() {
    let top = this.value;
    for (const rev of this.held) top = Math.max(top, rev);
    return top;
  }

  drain() {
    for (const rev of Array.from(this.held)) if (rev <= this.value) this.held.delete(rev);
    while (this.held.has(this.value + 1)) {
      this.value += 1;
      this.held.delete(this.value);
    }
  }
}
