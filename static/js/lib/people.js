// People as data (no DOM): presence states, the `activity` pace, DM names and order,
// wildcard mentions in a draft, a person's local time.

export const ACTIVITY_EVERY_MS = 60000; // `activity` at most once a minute

export const PRESENCE_LABEL = { active: "Active", idle: "Away", offline: "Offline" };

/** Each known person's presence ({state, status_text, status_emoji, dnd_until}), with listeners. */
export class PresenceStore {
  constructor() {
    this.states = new Map(); // user id -> {state, status_text, status_emoji, dnd_until}
    this.listeners = new Set();
  }

  /** Record a `presence` event or a row of GET /presence; listeners hear of real changes. */
  set(entry) {
    if (!entry || entry.user_id === undefined || entry.user_id === null) return false;
    const id = Number(entry.user_id);
    const old = this.states.get(id);
    const next = {
      state: entry.state || (old && old.state) || "offline",
      status_text: entry.status_text !== undefined ? entry.status_text || "" : (old && old.status_text) || "",
      status_emoji: entry.status_emoji !== undefined ? entry.status_emoji || "" : (old && old.status_emoji) || "",
      dnd_until: entry.dnd_until !== undefined ? entry.dnd_until || null : (old && old.dnd_until) || null,
    };
    if (old && old.state === next.state && old.status_text === next.status_text
      && old.status_emoji === next.status_emoji && old.dnd_until === next.dnd_until) return false;
    this.states.set(id, next);
    for (const listener of this.listeners) listener(id, next);
    return true;
  }

  /** The person's presence, or null when it is not known (yet, or not shared with me). */
  get(userId) {
    return this.states.get(Number(userId)) || null;
  }

  /** "active", "idle", "offline" or "" when unknown. */
  stateOf(userId) {
    const entry = this.get(userId);
    return entry ? entry.state : "";
  }

  /** Of these ids, the ones with no known state: what to ask GET /presence for. */
  missing(userIds) {
    return Array.from(new Set(userIds.map(Number))).filter((id) => id > 0 && !this.states.has(id));
  }

  /** listener(userId, entry) after each change; returns a function that stops it. */
  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** Paces `activity`: at most one per interval; after a reconnect the next input sends at once. */
export class ActivityGate {
  constructor({ every = ACTIVITY_EVERY_MS } = {}) {
    this.every = every;
    this.lastSent = -Infinity;
  }

  /** True when an input at now should be reported (and counts it as sent). */
  shouldSend(now = Date.now()) {
    if (now - this.lastSent < this.every) return false;
    this.lastSent = now;
    return true;
  }

  /** A new connection: the server may not have heard from this page yet. */
  reset() {
    this.lastSent = -Infinity;
  }
}

/** "Alice", "Alice and Bob", "Alice, Bob and Carol" (no Oxford comma, as the typing line). */
export function joinNames(names) {
  if (names.length <= 1) return names.join("");
  return `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}

/** A DM's other participants (everyone but me), in the server's order. */
export function dmOthers(dm, meId) {
  const members = (dm && dm.members) || [];
  const others = members.filter((u) => Number(u.id) !== Number(meId));
  return others.length ? others : members;
}

/** A DM's name: its other participants' display names. */
export function dmName(dm, meId) {
  const names = dmOthers(dm, meId).map((u) => u.display_name || u.username);
  return names.length ? joinNames(names) : "Just you";
}

function activityOf(dm) {
  const value = dm.last_message_at || dm.created_at || "";
  const time = Date.parse(value);
  return Number.isNaN(time) ? 0 : time;
}

/** DMs newest activity first (ties: the higher id first). */
export function sortDms(dms) {
  return [...dms].sort((a, b) => activityOf(b) - activityOf(a) || b.id - a.id);
}

// An "@" that is not inside a word or an address (app/lib/mentions.py: no \w or "@" before it),
// a wildcard name, and no name character after it.
const WILDCARD_RE = /(^|[^\p{L}\p{N}\p{M}_@])@(room|all|everyone|here)(?![A-Za-z0-9_])/giu;

/** Code is not read for mentions: fenced blocks and `inline` spans, blanked out. */
function withoutCode(body) {
  const kept = [];
  let fence = null; // the open fence ("```" or "~~~", or longer)
  for (const line of String(body || "").split("\n")) {
    const mark = /^ {0,3}(`{3,}|~{3,})/.exec(line);
    if (fence) {
      if (mark && mark[1][0] === fence[0] && mark[1].length >= fence.length) fence = null;
      kept.push("");
    } else if (mark) {
      fence = mark[1];
      kept.push("");
    } else {
      kept.push(line);
    }
  }
  return kept.join("\n").replace(/(`+)[\s\S]*?\1/g, " ");
}

/** The wildcard mentions of a draft outside code, lower case, first seen first ("room", "here", ...). */
export function findWildcards(body) {
  const found = [];
  for (const match of withoutCode(body).matchAll(WILDCARD_RE)) {
    const name = match[2].toLowerCase();
    if (!found.includes(name)) found.push(name);
  }
  return found;
}

/** Whether sending body should be confirmed first: a wildcard and more than threshold members. */
export function needsWildcardConfirm(body, memberCount, threshold) {
  return Number(memberCount) > Number(threshold) && findWildcards(body).length > 0;
}

/** "14:05" in timeZone, as the viewer's locale writes it; "" for an unknown or empty zone. */
export function localTimeIn(timeZone, date = new Date(), locale = undefined) {
  if (!timeZone) return "";
  try {
    return new Intl.DateTimeFormat(locale, { hour: "numeric", minute: "2-digit", timeZone }).format(date);
  } catch {
    return "";
  }
}

/** Whether dnd_until (ISO) is still ahead of now. */
export function dndActive(dndUntil, now = Date.now()) {
  if (!dndUntil) return false;
  const until = Date.parse(dndUntil);
  return !Number.isNaN(until) && until > now;
}

/** A status line: "🌴 On holiday", "🌴" or "On holiday"; "" when none. */
export function statusLine(entry) {
  if (!entry) return "";
  return [entry.status_emoji, entry.status_text].filter(Boolean).join(" ");
}
