// What every signed-in page shares: the socket, the connection status, the bell and the sidebar.

import { $, $$, api, h, plural } from "./dom.js";
import { inMainTimeline, rootIdOf, threadHref } from "../room/thread.js";
import { setupDms } from "./dms.js";
import { setupDesktopNotifications } from "./notify.js";
import { dndActive } from "./people.js";
import { presence, startPresence } from "./presence.js";
import { setupProfileCard } from "./profile.js";
import { setupThreads } from "./threads.js";
import { formatWhen, parseDate } from "./time.js";

const STATUS_TEXT = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  offline: "Offline",
  signed_out: "Signed out",
};

const BANNER_TEXT = {
  reconnecting: "Connection lost. Reconnecting… Messages you send will go out once it is back.",
  offline: "You are offline. Chorus reconnects by itself when the network is back.",
  signed_out: "Your session has ended.",
};
const BACK_TEXT_MS = 2500;
let bannerTimer = null;

/** The banner under the header: shown while the connection is down, briefly once it is back. */
function setBanner(state, previous) {
  const region = $("#conn-banner");
  if (!region) return;
  clearTimeout(bannerTimer);
  region.dataset.state = state;
  if (BANNER_TEXT[state]) {
    const parts = [h("span", { class: "conn-banner-text", text: BANNER_TEXT[state] })];
    if (state === "signed_out") {
      const next = `${window.location.pathname}${window.location.search}`;
      parts.push(" ", h("a", { href: `/login?next=${encodeURIComponent(next)}`, text: "Log in again" }));
    }
    region.replaceChildren(h("p", { class: `conn-banner conn-banner-${state}` }, ...parts));
  } else if (state === "connected" && (previous === "reconnecting" || previous === "offline")) {
    region.replaceChildren(h("p", { class: "conn-banner conn-banner-back", text: "Reconnected." }));
    bannerTimer = setTimeout(() => region.replaceChildren(), BACK_TEXT_MS);
  } else {
    region.replaceChildren();
  }
}

/** Show the connection state in the header (and the banner): connected, reconnecting or offline. */
function setStatus(state, detail) {
  const el = $("#conn-status");
  if (!el) return;
  const previous = el.dataset.state;
  const visible = state === "signed_out" ? "offline" : state;
  el.dataset.state = visible;
  el.title = detail || STATUS_TEXT[state];
  $(".conn-label", el).textContent = STATUS_TEXT[state];
  document.body.dataset.connection = visible;
  if (previous !== visible || state === "signed_out") setBanner(state, previous);
}

function watchConnection(socket, onConnect) {
  let connectedOnce = false;
  let refused = false;

  socket.on("connect", () => {
    refused = false;
    setStatus("connected");
    const first = !connectedOnce;
    connectedOnce = true;
    for (const callback of onConnect) {
      try {
        callback({ first });
      } catch (err) {
        console.warn("chorus: connect handler failed", err);
      }
    }
  });

  socket.on("disconnect", (reason) => {
    if (reason === "io client disconnect") return setStatus("offline");
    setStatus(navigator.onLine ? "reconnecting" : "offline");
    if (reason === "io server disconnect") {
      // The server closed us (a logout elsewhere, a restart): try once; a refusal means signed out.
      setTimeout(() => socket.connect(), 1000);
    }
  });

  socket.on("connect_error", () => {
    if (!socket.active) {
      // The server refused this session: socket.io will not retry by itself.
      refused = true;
      setStatus("signed_out", "Your session ended. Reload the page to log in again.");
      return;
    }
    setStatus(navigator.onLine ? "reconnecting" : "offline");
  });

  socket.io.on("reconnect_attempt", () => {
    setStatus(navigator.onLine ? "reconnecting" : "offline");
  });

  window.addEventListener("offline", () => setStatus("offline", "Your device is offline."));
  window.addEventListener("online", () => {
    if (socket.connected) return setStatus("connected");
    setStatus("reconnecting");
    if (refused) {
      refused = false;
      socket.connect();
    }
  });
}

// ---------------------------------------------------------------- bell

function setBellCount(count) {
  const badge = $("#bell-count");
  const link = $("#bell-link");
  if (!badge || !link) return;
  const n = Math.max(0, count | 0);
  badge.dataset.count = String(n);
  badge.textContent = n > 99 ? "99+" : String(n);
  badge.hidden = n === 0;
  link.setAttribute("aria-label", `Notifications, ${n} unread`);
}

function bellCount() {
  const badge = $("#bell-count");
  return badge ? Number(badge.dataset.count) || 0 : 0;
}

function roomName(roomId) {
  const link = $(`.room-item[data-room-id="${roomId}"] .room-name`);
  return link ? link.textContent : null;
}

/** The link to a notification's message: its thread for a thread reply, else its room opened around it. */
export function notificationHref(notification) {
  const id = notification.message.id;
  const rootId = rootIdOf(notification.message);
  if (rootId) return threadHref(notification.room_id, rootId);
  return `/rooms/${notification.room_id}?around=${id}#message-${id}`;
}

/** The wildcard a message used ("@room", "@here", ...), read from its rendered chip. */
export function wildcardOf(message) {
  const html = (message && message.html) || "";
  const chip = /<span[^>]*class="[^"]*mention-wildcard[^"]*"[^>]*>(@[A-Za-z]+)<\/span>/.exec(html);
  if (chip) return chip[1];
  const named = /data-wildcard="([A-Za-z]+)"/.exec(html);
  return `@${named ? named[1] : "room"}`;
}

/** What a notification says happened: "mentioned you", "replied in a thread", ... */
export function notificationVerb(notification) {
  const inThread = Boolean(notification.message && rootIdOf(notification.message));
  if (notification.kind === "dm") return "sent you a direct message";
  if (notification.kind === "wildcard") return `mentioned ${wildcardOf(notification.message)}`;
  if (notification.kind === "thread_reply") return "replied in a thread";
  return inThread ? "mentioned you in a thread" : "mentioned you";
}

/** The verb and where: "mentioned @room in #general", "sent you a direct message" (a DM has no #name). */
export function notificationPhrase(notification, roomName) {
  const verb = notificationVerb(notification);
  if (notification.kind === "dm" || !roomName) return verb;
  return `${verb} in #${roomName}`;
}

/** Mark notifications read on the server; the notifications_read event updates every tab. */
export function markNotificationsRead(ids) {
  return api("/api/v1/notifications/read", { method: "POST", body: { ids }, keepalive: true })
    .then((data) => {
      if (data && typeof data.unread === "number") setBellCount(data.unread);
      return data;
    })
    .catch((err) => console.warn("chorus: could not mark notifications read", err));
}

/** Mark a notification read, then open its link (so the next page shows the new count). */
export async function followAfterRead(id, href) {
  const timeout = new Promise((resolve) => setTimeout(resolve, 1500));
  await Promise.race([markNotificationsRead([id]), timeout]);
  window.location.assign(href);
}

/** A notification's preview of its message: a deleted one's text is gone. */
export function excerptOf(message, length) {
  if (message.deleted) return "This message was deleted";
  return (message.body || "").replace(/\s+/g, " ").slice(0, length);
}

function renderBellItem(n) {
  const message = n.message || {};
  const author = (message.author && message.author.display_name) || "Someone";
  const where = roomName(n.room_id);
  const date = parseDate(n.created_at);
  const excerpt = excerptOf(message, 140);
  const link = h(
    "a",
    { class: "bell-item-link", href: notificationHref(n) },
    h("span", { class: "bell-item-head" },
      h("strong", { text: author }),
      ` ${notificationPhrase(n, where)}`,
      date ? h("time", { datetime: n.created_at, text: formatWhen(date) }) : null),
    h("span", { class: "bell-item-excerpt", text: excerpt }),
  );
  link.addEventListener("click", (event) => {
    if (n.read_at || event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    n.read_at = new Date().toISOString();
    followAfterRead(n.id, link.href);
  });
  return h("li", { class: `bell-item${n.read_at ? "" : " is-unread"}`, dataset: { notificationId: n.id } }, link);
}

function setupBell(socket, me) {
  const bell = $("#bell");
  const link = $("#bell-link");
  const panel = $("#bell-panel");
  const list = $("#bell-list");
  if (!bell || !link || !panel || !list) return;

  const close = () => {
    panel.hidden = true;
    link.setAttribute("aria-expanded", "false");
  };
  const open = async () => {
    panel.hidden = false;
    link.setAttribute("aria-expanded", "true");
    list.replaceChildren(h("li", { class: "bell-empty muted", text: "Loading…" }));
    try {
      const data = await api("/api/v1/notifications");
      setBellCount(data.unread);
      const items = (data.notifications || []).slice(0, 8);
      list.replaceChildren(
        ...(items.length
          ? items.map(renderBellItem)
          : [h("li", { class: "bell-empty muted", text: "No notifications yet." })]),
      );
    } catch {
      list.replaceChildren(h("li", { class: "bell-empty muted", text: "Could not load notifications." }));
    }
  };

  link.addEventListener("click", (event) => {
    // Modified clicks open the full page as a normal link would.
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    if (panel.hidden) open();
    else close();
  });
  document.addEventListener("click", (event) => {
    if (!panel.hidden && !bell.contains(event.target)) close();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !panel.hidden) {
      close();
      link.focus();
    }
  });

  const notifyMention = setupDesktopNotifications();
  socket.on("notification", (n) => {
    setBellCount(bellCount() + 1);
    bell.classList.remove("ring");
    void bell.offsetWidth; // restart the animation
    bell.classList.add("ring");
    if (!panel.hidden) list.prepend(renderBellItem(n));
    if (!n || !n.message) return;
    // Do not disturb: the bell counts it, the desktop stays quiet.
    const mine = presence.get(me.id);
    if (mine && dndActive(mine.dnd_until)) return;
    const author = (n.message.author && n.message.author.display_name) || "Someone";
    const where = roomName(n.room_id);
    const href = notificationHref(n);
    notifyMention(n, {
      title: `${author} ${notificationPhrase(n, where)}`,
      body: excerptOf(n.message, 180),
      href,
      open: () => followAfterRead(n.id, href),
    });
  });
  socket.on("notifications_read", (data) => {
    if (data && typeof data.unread === "number") setBellCount(data.unread);
    const ids = data && Array.isArray(data.ids) ? new Set(data.ids) : null;
    for (const item of $$(".bell-item.is-unread", list)) {
      if (!ids || ids.has(Number(item.dataset.notificationId))) item.classList.remove("is-unread");
    }
  });
}

// ---------------------------------------------------------------- sidebar

function sidebarItem(roomId) {
  return $(`#room-list .room-item[data-room-id="${roomId}"]`);
}

/** Show a room's unread count in the sidebar (0 hides the badge). */
export function setRoomUnread(roomId, count) {
  const item = sidebarItem(roomId);
  if (!item) return;
  const badge = $(".room-unread", item);
  const n = Math.max(0, count | 0);
  badge.textContent = n > 99 ? "99+" : String(n);
  badge.dataset.count = String(n);
  badge.setAttribute("aria-label", `${n} unread`);
  badge.hidden = n === 0 || item.classList.contains("is-current");
  item.classList.toggle("has-unread", n > 0 && !item.classList.contains("is-current"));
}

function roomUnread(roomId) {
  const item = sidebarItem(roomId);
  if (!item) return 0;
  return Number($(".room-unread", item).dataset.count || $(".room-unread", item).textContent) || 0;
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** The same lock or hash the templates draw before a room's name. */
function roomIcon(isPrivate) {
  if (!isPrivate) return h("span", { class: "room-icon room-hash", "aria-hidden": "true", text: "#" });
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("class", "room-icon");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("width", "14");
  svg.setAttribute("height", "14");
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("d", "M4.5 7V5a3.5 3.5 0 0 1 7 0v2M3.5 7h9v6.5h-9z");
  path.setAttribute("fill", "none");
  path.setAttribute("stroke", "currentColor");
  path.setAttribute("stroke-width", "1.5");
  path.setAttribute("stroke-linejoin", "round");
  svg.append(path);
  return svg;
}

function addSidebarRoom(room, currentRoomId) {
  const list = $("#room-list");
  if (!list || sidebarItem(room.id) || room.kind === "dm") return; // DMs have their own list (dms.js)
  const icon = roomIcon(room.is_private);
  const isCurrent = room.id === currentRoomId;
  const item = h(
    "li",
    { class: `room-item${isCurrent ? " is-current" : ""}`, dataset: { roomId: room.id } },
    h("a", { href: `/rooms/${room.id}`, "aria-current": isCurrent ? "page" : null },
      icon,
      h("span", { class: "room-name", text: room.name }),
      h("span", { class: "badge room-unread", hidden: true, text: "0" })),
  );
  const name = String(room.name).toLowerCase();
  const after = $$(".room-item", list).find(
    (li) => $(".room-name", li).textContent.toLowerCase() > name,
  );
  list.insertBefore(item, after || null);
  setRoomUnread(room.id, room.unread || 0);
  const empty = $("#room-list-empty");
  if (empty) empty.hidden = true;
}

function removeSidebarRoom(roomId) {
  const item = sidebarItem(roomId);
  if (item) item.remove();
  const empty = $("#room-list-empty");
  if (empty) empty.hidden = $$("#room-list .room-item").length > 0;
}

async function refreshRoomUnread(roomId) {
  try {
    const room = await api(`/api/v1/rooms/${roomId}`);
    if (typeof room.unread === "number") setRoomUnread(roomId, room.unread);
  } catch {
    /* the room may be gone; the next full refresh settles it */
  }
}

async function refreshSidebar(currentRoomId) {
  try {
    const data = await api("/api/v1/rooms");
    const mine = (data.rooms || []).filter((r) => r.is_member && r.kind !== "dm");
    const ids = new Set(mine.map((r) => r.id));
    for (const item of $$("#room-list .room-item")) {
      if (!ids.has(Number(item.dataset.roomId))) removeSidebarRoom(item.dataset.roomId);
    }
    for (const room of mine) {
      addSidebarRoom(room, currentRoomId);
      if (room.id !== currentRoomId) setRoomUnread(room.id, room.unread || 0);
    }
  } catch (err) {
    console.warn("chorus: could not refresh the room list", err);
  }
}

async function refreshBell() {
  try {
    const me = await api("/api/v1/me");
    setBellCount(me.unread_notifications);
  } catch {
    /* a later reconnect tries again */
  }
}

function setupSidebarToggle() {
  const toggle = $("#sidebar-toggle");
  const backdrop = $("#sidebar-backdrop");
  if (!toggle || !$("#sidebar")) return;
  const set = (open) => {
    document.body.classList.toggle("sidebar-open", open);
    toggle.setAttribute("aria-expanded", String(open));
    toggle.setAttribute("aria-label", open ? "Hide rooms" : "Show rooms");
    if (backdrop) backdrop.hidden = !open;
  };
  toggle.addEventListener("click", () => set(!document.body.classList.contains("sidebar-open")));
  if (backdrop) backdrop.addEventListener("click", () => set(false));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && document.body.classList.contains("sidebar-open")) {
      set(false);
      toggle.focus();
    }
  });
}

// ---------------------------------------------------------------- title

function setupTitleCounter(socket, me) {
  const base = document.title;
  let unseen = 0;
  socket.on("message", (m) => {
    if (document.visibilityState === "visible" || !m || !m.author || m.author.id === me.id) return;
    if (!inMainTimeline(m)) return; // a thread reply: the bell says so when it is for me
    unseen += 1;
    document.title = `(${unseen}) ${base}`;
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") {
      unseen = 0;
      document.title = base;
    }
  });
}

/**
 * Connect the socket and wire the shared header and sidebar.
 * Returns {socket, threads, onConnect(callback)}; callbacks run on every (re)connect with
 * {first}; threads is the followed threads' list (lib/threads.js).
 */
export function startShell({ me, currentRoomId = null }) {
  setupSidebarToggle();
  if (typeof window.io !== "function") {
    setStatus("offline", "The realtime client did not load.");
    setupProfileCard(me);
    return { socket: null, onConnect() {}, threads: setupThreads({ socket: null, me }), dms: setupDms({ socket: null, me, currentRoomId }) };
  }
  const onConnect = [];
  const socket = window.io({ transports: ["websocket", "polling"] });
  watchConnection(socket, onConnect);
  setupBell(socket, me);
  setupTitleCounter(socket, me);
  const threads = setupThreads({ socket, me });
  startPresence(socket, me);
  setupProfileCard(me);
  const dms = setupDms({ socket, me, currentRoomId });

  socket.on("message", (m) => {
    if (!m || m.room_id === currentRoomId || !m.author || m.author.id === me.id) return;
    if (!inMainTimeline(m)) return; // thread replies are counted in Threads, not the room
    setRoomUnread(m.room_id, roomUnread(m.room_id) + 1);
  });
  socket.on("room_membership", (data) => {
    if (!data || !data.room) return;
    if (data.action === "joined") addSidebarRoom(data.room, currentRoomId);
    else if (data.action === "left") removeSidebarRoom(data.room.id);
  });
  socket.on("room_read", (data) => {
    if (data && data.room_id !== currentRoomId) refreshRoomUnread(data.room_id);
  });
  socket.on("member_joined", (data) => updateLobbyCount(data));
  socket.on("member_left", (data) => updateLobbyCount(data));

  onConnect.push(() => {
    // Events sent before this socket was listening are lost: ask for the current state.
    refreshBell();
    refreshSidebar(currentRoomId);
    threads.refresh();
    dms.refresh();
  });
  return { socket, threads, dms, onConnect: (callback) => onConnect.push(callback) };
}

function updateLobbyCount(data) {
  if (!data || typeof data.member_count !== "number") return;
  for (const el of $$(`.room-card[data-room-id="${data.room_id}"] .room-card-members`)) {
    el.textContent = plural(data.member_count, "member");
  }
}
