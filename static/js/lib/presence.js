// Presence on the page: one store for everyone shown (lib/people.js), dots that follow it,
// the `presence` socket event, GET /presence for people first seen, and the page's own
// `activity` (input, at most once a minute).

import { api, avatar, h } from "./dom.js";
import { ACTIVITY_EVERY_MS, ActivityGate, PRESENCE_LABEL, PresenceStore, statusLine } from "./people.js";

const FETCH_DELAY_MS = 50; // dots drawn together are asked for in one request
const FETCH_MAX_IDS = 100;
const IDLE_AFTER_MS = 300000; // the server's PRESENCE_IDLE_SECONDS, for my own dot only

export const presence = new PresenceStore();

let wanted = new Set(); // ids waiting for the next GET /presence
let fetchTimer = null;

async function fetchWanted() {
  fetchTimer = null;
  const ids = Array.from(wanted);
  wanted = new Set();
  for (let i = 0; i < ids.length; i += FETCH_MAX_IDS) {
    const chunk = ids.slice(i, i + FETCH_MAX_IDS);
    try {
      const data = await api(`/api/v1/presence?user_ids=${chunk.join(",")}`);
      for (const row of (data && data.presence) || []) presence.set(row);
    } catch (err) {
      console.warn("chorus: could not load presence", err);
    }
  }
}

/** Ask for these people's presence unless it is known (or force: again, after a reconnect). */
export function wantPresence(userIds, { force = false } = {}) {
  const ids = force ? userIds.map(Number).filter((id) => id > 0) : presence.missing(userIds);
  for (const id of ids) wanted.add(id);
  if (wanted.size && !fetchTimer) fetchTimer = setTimeout(fetchWanted, FETCH_DELAY_MS);
}

function dotTitle(entry) {
  if (!entry) return "";
  const status = statusLine(entry);
  return `${PRESENCE_LABEL[entry.state] || entry.state}${status ? ` · ${status}` : ""}`;
}

function paint(dot, entry) {
  dot.dataset.state = entry ? entry.state : "unknown";
  const label = entry ? PRESENCE_LABEL[entry.state] || entry.state : "";
  dot.title = dotTitle(entry);
  if (label) dot.setAttribute("aria-label", label);
  else dot.removeAttribute("aria-label");
}

/** A presence dot for userId: painted now if known, asked for otherwise, kept live. */
export function presenceDot(userId, { className = "" } = {}) {
  const dot = h("span", {
    class: `presence-dot${className ? ` ${className}` : ""}`,
    role: "img",
    dataset: { userId: String(userId), state: "unknown" },
  });
  paint(dot, presence.get(userId));
  wantPresence([userId]);
  return dot;
}

/** Paint the dots the server rendered (.presence-dot[data-user-id]) and ask for their states. */
/** A person as a list option shows them: avatar, presence dot, display name, @username. */
export function personParts(user) {
  return [
    avatar(user, "sm"),
    presenceDot(user.id),
    h("span", { class: "mention-option-name", text: user.display_name || user.username }),
    h("span", { class: "mention-option-handle", text: `@${user.username}` }),
  ];
}

export function adoptDots(root = document) {
  const ids = [];
  for (const dot of root.querySelectorAll(".presence-dot[data-user-id]")) {
    paint(dot, presence.get(dot.dataset.userId));
    ids.push(Number(dot.dataset.userId));
  }
  wantPresence(ids);
}

presence.subscribe((userId, entry) => {
  for (const dot of document.querySelectorAll(`.presence-dot[data-user-id="${userId}"]`)) paint(dot, entry);
});

const INPUT_EVENTS = ["keydown", "pointerdown", "wheel", "touchstart"];

/**
 * Wire presence to the socket: `presence` events update the store; each (re)connect asks
 * again for everyone shown; the page's input is reported as `activity` at most once a minute.
 */
export function startPresence(socket, me) {
  if (!socket) return;
  const gate = new ActivityGate();
  let idleTimer = null;
  const report = () => {
    if (!socket.connected || document.visibilityState !== "visible") return;
    if (!gate.shouldSend()) return;
    socket.emit("activity", {});
    // My own dots: the server tells the people I share rooms with, maybe not me.
    if (me) {
      presence.set({ user_id: me.id, state: "active" });
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => {
        if (presence.stateOf(me.id) === "active") presence.set({ user_id: me.id, state: "idle" });
      }, IDLE_AFTER_MS + ACTIVITY_EVERY_MS);
    }
  };
  for (const name of INPUT_EVENTS) window.addEventListener(name, report, { passive: true, capture: true });
  let lastMove = 0;
  window.addEventListener("mousemove", () => {
    const now = Date.now();
    if (now - lastMove < 5000) return; // a moving mouse is input too, but cheap to check
    lastMove = now;
    report();
  }, { passive: true });
  window.addEventListener("focus", report);
  document.addEventListener("visibilitychange", report);

  socket.on("presence", (entry) => {
    if (Array.isArray(entry)) entry.forEach((e) => presence.set(e));
    else presence.set(entry);
  });
  socket.on("connect", () => {
    gate.reset();
    // A page open and in front when the socket comes (back) is being used.
    if (document.visibilityState === "visible" && document.hasFocus()) report();
    const ids = Array.from(document.querySelectorAll(".presence-dot[data-user-id]"), (d) => Number(d.dataset.userId));
    if (me) ids.push(me.id);
    wantPresence(Array.from(new Set(ids)), { force: true });
  });
}
