// Direct messages in the sidebar (GET /dms: newest activity first, unread counts, presence
// dots), kept live by the socket, and the "New message" picker (GET /users?q=, POST /dms).

import { inMainTimeline } from "../room/thread.js";
import { $, $$, api, avatar, h } from "./dom.js";
import { dmName, dmOthers, sortDms } from "./people.js";
import { personParts, presence, presenceDot, wantPresence } from "./presence.js";
import { openDm } from "./profile.js";

const REFRESH_DELAY_MS = 300;
const SEARCH_DELAY_MS = 250;
const MAX_OTHERS = 7; // a DM holds 2..8 people, me included

/**
 * Wire the sidebar's "Direct messages". Returns {has(roomId), refresh(), nameOf(roomId)}.
 * currentRoomId: the room on screen (its unread count stays hidden).
 */
export function setupDms({ socket, me, currentRoomId = null }) {
  const list = $("#dm-list");
  const empty = $("#dm-list-empty");
  const dms = new Map(); // room id -> room view of a DM
  let timer = null;
  let loaded = false;

  function unreadBadge(dm) {
    const n = dm.id === currentRoomId ? 0 : Math.max(0, dm.unread | 0);
    return h("span", {
      class: "badge dm-unread",
      "aria-label": `${n} unread`,
      hidden: n === 0,
      dataset: { count: String(n) },
      text: n > 99 ? "99+" : String(n),
    });
  }

  function item(dm) {
    const others = dmOthers(dm, me.id);
    const one = others.length === 1 ? others[0] : null;
    const isCurrent = dm.id === currentRoomId;
    const unread = !isCurrent && (dm.unread | 0) > 0;
    const face = one
      ? h("button", { type: "button", class: "dm-face", dataset: { profile: one.username }, "aria-label": `${one.display_name || one.username}'s profile`, title: `@${one.username}` },
        avatar(one, "sm"),
        presenceDot(one.id, { className: "presence-dot-badge" }))
      : h("span", { class: "dm-face dm-group", "aria-hidden": "true" }, h("span", { class: "avatar avatar-sm hue-0", text: String(others.length + 1) }));
    return h("li", { class: `dm-item${isCurrent ? " is-current" : ""}${unread ? " has-unread" : ""}`, dataset: { roomId: dm.id } },
      face,
      h("a", { href: `/rooms/${dm.id}`, "aria-current": isCurrent ? "page" : null },
        h("span", { class: "dm-name", text: dmName(dm, me.id) }),
        unreadBadge(dm)));
  }

  function render() {
    if (!list) return;
    const shown = sortDms(Array.from(dms.values()));
    list.replaceChildren(...shown.map(item));
    if (empty) empty.hidden = !loaded || shown.length > 0;
  }

  async function refresh() {
    try {
      const data = await api("/api/v1/dms");
      dms.clear();
      for (const dm of (data && data.dms) || []) dms.set(dm.id, dm);
      loaded = true;
      render();
      wantPresence(Array.from(dms.values()).flatMap((dm) => dmOthers(dm, me.id).map((u) => u.id)));
    } catch (err) {
      console.warn("chorus: could not load direct messages", err);
    }
  }

  function refreshSoon() {
    clearTimeout(timer);
    timer = setTimeout(refresh, REFRESH_DELAY_MS);
  }

  async function refreshUnread(roomId) {
    try {
      const room = await api(`/api/v1/rooms/${roomId}`);
      const dm = dms.get(roomId);
      if (dm && typeof room.unread === "number") {
        dm.unread = room.unread;
        render();
      }
    } catch {
      /* gone or hidden: the next refresh settles it */
    }
  }

  if (socket) {
    socket.on("message", (m) => {
      if (!m || !m.room_id) return;
      const dm = dms.get(m.room_id);
      if (!dm) {
        // A DM I closed got a new message, or a new DM: the server's list has it now.
        if (!$(`#room-list .room-item[data-room-id="${m.room_id}"]`)) refreshSoon();
        return;
      }
      dm.last_message_at = m.created_at || new Date().toISOString();
      if (m.room_id !== currentRoomId && m.author && m.author.id !== me.id && inMainTimeline(m)) {
        dm.unread = (dm.unread | 0) + 1;
      }
      render();
    });
    socket.on("room_membership", (event) => {
      if (!event || !event.room) return;
      const roomId = event.room.id;
      // "hidden": closed (here or in another tab); "shown": opened again; a DM "joined": new.
      if (event.action === "hidden" || (event.action === "left" && dms.has(roomId))) {
        dms.delete(roomId);
        render();
      } else if (event.action === "shown" || (event.action === "joined" && event.room.kind === "dm")) {
        refreshSoon();
      }
    });
    socket.on("room_read", (event) => {
      if (event && dms.has(event.room_id) && event.room_id !== currentRoomId) refreshUnread(event.room_id);
    });
  }
  setupPicker(me);

  return {
    refresh,
    has: (roomId) => dms.has(Number(roomId)),
    nameOf: (roomId) => (dms.has(Number(roomId)) ? dmName(dms.get(Number(roomId)), me.id) : null),
  };
}

// ---------------------------------------------------------------- the "New message" picker

function setupPicker(me) {
  const opener = $("#new-dm");
  const dialog = $("#new-dm-dialog");
  if (!opener || !dialog) return;
  const form = $("#new-dm-form", dialog);
  const search = $("#new-dm-search", dialog);
  const results = $("#new-dm-results", dialog);
  const chosenBox = $("#new-dm-chosen", dialog);
  const start = $("#new-dm-start", dialog);
  const error = $("#new-dm-error", dialog);
  const hint = $("#new-dm-hint", dialog);
  let chosen = []; // users picked, in order
  let found = [];
  let active = -1;
  let timer = null;
  let asked = 0;

  function showError(text) {
    error.textContent = text;
    error.hidden = !text;
  }

  function renderChosen() {
    chosenBox.replaceChildren(...chosen.map((user) => h("li", { class: "dm-chip" },
      h("span", { text: user.display_name || user.username }),
      h("button", { type: "button", class: "dm-chip-remove", "aria-label": `Remove ${user.display_name || user.username}`, dataset: { userId: user.id }, text: "×" }))));
    chosenBox.hidden = chosen.length === 0;
    start.disabled = chosen.length === 0;
    const full = chosen.length >= MAX_OTHERS;
    search.disabled = full;
    hint.textContent = full ? `A conversation holds at most ${MAX_OTHERS + 1} people, you included.` : `Pick up to ${MAX_OTHERS} people.`;
  }

  function setActive(index) {
    active = index;
    $$('[role="option"]', results).forEach((el, i) => {
      el.setAttribute("aria-selected", String(i === index));
      el.classList.toggle("is-active", i === index);
    });
    if (found[index]) search.setAttribute("aria-activedescendant", `new-dm-option-${found[index].id}`);
    else search.removeAttribute("aria-activedescendant");
  }

  function renderResults(users, query) {
    found = users;
    results.replaceChildren(...users.map((user) => h("li", {
      id: `new-dm-option-${user.id}`, role: "option", class: "mention-option", "aria-selected": "false", dataset: { userId: user.id },
    },
    ...personParts(user))));
    if (!users.length && query) results.append(h("li", { class: "muted dm-none", text: "Nobody by that name." }));
    search.setAttribute("aria-expanded", String(users.length > 0));
    setActive(users.length ? 0 : -1);
  }

  async function lookUp() {
    const query = search.value.trim();
    const mine = (asked += 1);
    if (!query) {
      renderResults([], "");
      return;
    }
    try {
      const data = await api(`/api/v1/users?q=${encodeURIComponent(query)}&limit=10`);
      if (mine !== asked) return;
      const taken = new Set(chosen.map((u) => u.id));
      const users = ((data && data.users) || []).filter((u) => u.id !== me.id && !taken.has(u.id));
      for (const u of users) if (u.presence) presence.set({ user_id: u.id, state: u.presence });
      renderResults(users, query);
    } catch (err) {
      if (mine === asked) showError(err.message || "Could not search.");
    }
  }

  function pick(index) {
    const user = found[index];
    if (!user || chosen.length >= MAX_OTHERS) return;
    chosen.push(user);
    search.value = "";
    renderResults([], "");
    renderChosen();
    showError("");
    if (!search.disabled) search.focus();
  }

  opener.addEventListener("click", () => {
    chosen = [];
    search.value = "";
    renderResults([], "");
    renderChosen();
    showError("");
    start.textContent = "Start conversation";
    dialog.showModal();
    search.focus();
  });
  $("#new-dm-cancel", dialog).addEventListener("click", () => dialog.close());
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(lookUp, SEARCH_DELAY_MS);
  });
  search.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" && found.length) {
      event.preventDefault();
      setActive((active + 1) % found.length);
    } else if (event.key === "ArrowUp" && found.length) {
      event.preventDefault();
      setActive((active - 1 + found.length) % found.length);
    } else if (event.key === "Enter") {
      event.preventDefault();
      if (found.length && active >= 0) pick(active);
      else if (!search.value.trim() && chosen.length) form.requestSubmit();
    } else if (event.key === "Backspace" && search.value === "" && chosen.length) {
      chosen.pop();
      renderChosen();
    }
  });
  results.addEventListener("mousedown", (event) => event.preventDefault());
  results.addEventListener("click", (event) => {
    const option = event.target.closest('[role="option"]');
    if (option) pick($$('[role="option"]', results).indexOf(option));
  });
  chosenBox.addEventListener("click", (event) => {
    const remove = event.target.closest(".dm-chip-remove");
    if (!remove) return;
    chosen = chosen.filter((u) => u.id !== Number(remove.dataset.userId));
    renderChosen();
    search.focus();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!chosen.length) return;
    start.disabled = true;
    start.textContent = "Opening…";
    try {
      await openDm(chosen.map((u) => u.username));
    } catch (err) {
      showError(err.message || "Could not start the conversation.");
      start.disabled = false;
      start.textContent = "Start conversation";
    }
  });
}
