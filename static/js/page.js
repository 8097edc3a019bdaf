// Entry point for signed-in pages other than a room: header, sidebar, local times, notifications.

import { $, $$, api, h, readBootstrap } from "./lib/dom.js";
import { adoptDots, presence } from "./lib/presence.js";
import { excerptOf, followAfterRead, markNotificationsRead, notificationHref, notificationPhrase, startShell } from "./lib/shell.js";
import { formatFull, formatWhen, localizeTimes, parseDate } from "./lib/time.js";

const data = readBootstrap();
localizeTimes(document);

if (data.me) {
  const { socket } = startShell({ me: data.me });
  adoptDots(document);
  setupNotificationsPage(socket);
  setupProfileForm(data.me);
}

/** "2025-06-01T14:30" (what <input type="datetime-local"> holds) for an ISO time, in local time. */
function toLocalInput(iso) {
  const date = iso ? new Date(iso) : null;
  if (!date || Number.isNaN(date.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** The account page's profile: display name, time zone, status, do not disturb (PATCH /me). */
async function setupProfileForm(me) {
  const form = $("#profile-form");
  if (!form) return;
  const name = $("#profile-display-name");
  const zone = $("#profile-time-zone");
  const emoji = $("#profile-status-emoji");
  const text = $("#profile-status-text");
  const dnd = $("#profile-dnd-until");
  const save = $("#profile-save");
  const error = $("#profile-error");
  const saved = $("#profile-saved");
  const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [browserZone];

  function fillZones(current) {
    const all = new Set(zones);
    if (current) all.add(current);
    if (browserZone) all.add(browserZone);
    zone.replaceChildren(...Array.from(all).sort().map((z) => h("option", {
      value: z, text: z === browserZone ? `${z.replace(/_/g, " ")} (this device)` : z.replace(/_/g, " "),
    })));
    zone.value = current || browserZone;
  }
  fillZones("");

  function showError(message) {
    error.textContent = message;
    error.hidden = !message;
  }

  try {
    const profile = await api(`/api/v1/users/${encodeURIComponent(me.username)}`);
    name.value = profile.display_name || "";
    fillZones(profile.time_zone || "");
    emoji.value = profile.status_emoji || "";
    text.value = profile.status_text || "";
    dnd.value = toLocalInput(profile.dnd_until);
  } catch (err) {
    showError("Could not load your profile. What you save replaces it.");
  }

  $("#profile-dnd-hour").addEventListener("click", () => {
    dnd.value = toLocalInput(new Date(Date.now() + 3600 * 1000).toISOString());
  });
  $("#profile-dnd-clear").addEventListener("click", () => {
    dnd.value = "";
  });
  form.addEventListener("input", () => {
    saved.textContent = "";
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("");
    saved.textContent = "";
    const until = dnd.value ? new Date(dnd.value) : null;
    if (until && Number.isNaN(until.getTime())) {
      showError("Give a date and time for do not disturb, or turn it off.");
      return;
    }
    save.disabled = true;
    try {
      const profile = await api("/api/v1/me", {
        method: "PATCH",
        body: {
          display_name: name.value.trim(),
          time_zone: zone.value,
          status_emoji: emoji.value.trim(),
          status_text: text.value.trim(),
          dnd_until: until ? until.toISOString() : null,
        },
      });
      presence.set({ user_id: profile.id, status_text: profile.status_text, status_emoji: profile.status_emoji, dnd_until: profile.dnd_until });
      for (const el of $$(".me-name-text")) el.textContent = profile.display_name;
      saved.textContent = "Saved.";
    } catch (err) {
      showError(err.message || "Could not save your profile.");
    } finally {
      save.disabled = false;
    }
  });
}

function markItemRead(item) {
  item.classList.remove("is-unread");
  const tag = $(".tag-unread", item);
  if (tag) tag.remove();
  const link = $(".notification-link", item);
  if (link) link.dataset.unread = "false";
}

function refreshMarkAllButton() {
  const button = $("#mark-all-read-form button");
  if (button) button.disabled = $$(".notification.is-unread").length === 0;
}

/** On the notifications page: opening one marks it read; other tabs' reads show up live. */
function setupNotificationsPage(socket) {
  const list = $("#notification-list");
  if (!list) return;
  list.addEventListener("click", (event) => {
    const link = event.target.closest(".notification-link");
    if (!link || link.dataset.unread !== "true") return;
    const id = Number(link.dataset.notificationId);
    markItemRead(link.closest(".notification"));
    refreshMarkAllButton();
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) {
      markNotificationsRead([id]); // opens elsewhere; keepalive lets it finish
      return;
    }
    event.preventDefault();
    followAfterRead(id, link.href);
  });
  if (!socket) return;
  socket.on("notification", (n) => {
    if (!n || !n.message || $(`.notification[data-notification-id="${n.id}"]`, list)) return;
    list.prepend(buildItem(n));
    const empty = $("#notifications-empty");
    if (empty) empty.remove();
    refreshMarkAllButton();
  });
  socket.on("notifications_read", (payload) => {
    const ids = payload && Array.isArray(payload.ids) ? new Set(payload.ids) : null;
    for (const item of $$(".notification.is-unread", list)) {
      if (!ids || ids.has(Number(item.dataset.notificationId))) markItemRead(item);
    }
    refreshMarkAllButton();
  });
}

/** A live notification, built like the server-rendered ones (text only, never HTML). */
function buildItem(n) {
  const author = n.message.author || { id: 0, display_name: "Someone" };
  const date = parseDate(n.created_at);
  const roomLink = $(`.room-item[data-room-id="${n.room_id}"] .room-name`);
  const time = h("time", { datetime: n.created_at, text: date ? formatWhen(date) : "" });
  if (date) time.title = formatFull(date);
  const text = excerptOf(n.message, 1000);
  const excerpt = text.length > 200 ? `${text.slice(0, 197)}...` : text;
  return h("li", { class: "notification is-unread", dataset: { notificationId: n.id } },
    h("a", { class: "notification-link", href: notificationHref(n), dataset: { notificationId: n.id, unread: "true" } },
      h("span", { class: `avatar hue-${author.id % 8}`, "aria-hidden": "true", text: author.display_name.slice(0, 1).toUpperCase() }),
      h("span", { class: "notification-main" },
        h("span", { class: "notification-head" },
          h("strong", { class: "notification-author", text: author.display_name }),
          author.username && author.display_name !== author.username
            ? h("span", { class: "notification-handle", text: `@${author.username}` }) : null,
          h("span", { class: "muted", text: notificationPhrase(n, roomLink ? roomLink.textContent : null) }),
          time,
          h("span", { class: "tag tag-unread", text: "New" })),
        h("span", { class: "notification-excerpt", text: excerpt }))));
}
