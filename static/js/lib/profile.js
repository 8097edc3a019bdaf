// The profile card: a click on a person's name or avatar anywhere (messages, member list,
// DM list, mention chips, anything with data-profile="<username>") opens a card from
// GET /users/<username> with their presence, status, local time and a "Message" button.

import { $, api, avatar, h } from "./dom.js";
import { dndActive, localTimeIn, PRESENCE_LABEL, statusLine } from "./people.js";
import { presence, presenceDot } from "./presence.js";
import { formatFull, formatWhen, parseDate } from "./time.js";

const MESSAGE_AUTHOR = ".msg-author, .msg .avatar, .msg-handle";

/** The username a clicked element stands for, or "" when it is no person. */
export function usernameOf(target) {
  // A thread's summary (its repliers' initials) and a quote open what they link to.
  if (target.closest("a.thread-summary, a.msg-quote, .msg-editor")) return "";
  const tagged = target.closest("[data-profile]");
  if (tagged) return tagged.dataset.profile;
  const chip = target.closest("span.mention[data-username]");
  if (chip && !chip.classList.contains("mention-wildcard")) return chip.dataset.username;
  const inMessage = target.closest(MESSAGE_AUTHOR);
  if (inMessage) {
    const msg = inMessage.closest(".msg");
    const author = msg && $(".msg-author", msg);
    const title = author ? author.getAttribute("title") || "" : "";
    return title.startsWith("@") ? title.slice(1) : "";
  }
  return "";
}

/** Open a DM with these people (POST /dms) and go there. */
export async function openDm(usernames) {
  const dm = await api("/api/v1/dms", { method: "POST", body: { usernames } });
  window.location.assign(`/rooms/${dm.id}`);
  return dm;
}

/** Wire the card for the whole page. me: the viewer ({id, username}). */
export function setupProfileCard(me) {
  const card = h("div", {
    class: "profile-card", id: "profile-card", role: "dialog", "aria-modal": "false", "aria-labelledby": "profile-card-name", hidden: true,
  });
  document.body.append(card);
  let anchor = null;
  let ticket = 0;

  function place() {
    if (!anchor || !anchor.isConnected) return;
    const rect = anchor.getBoundingClientRect();
    const width = Math.min(300, window.innerWidth - 16);
    card.style.width = `${width}px`;
    card.style.left = `${Math.max(8, Math.min(rect.left, window.innerWidth - width - 8))}px`;
    const height = card.offsetHeight || 220;
    const below = rect.bottom + 6;
    card.style.top = `${below + height <= window.innerHeight - 8 ? below : Math.max(8, rect.top - height - 6)}px`;
  }

  function close({ restoreFocus = false } = {}) {
    if (card.hidden) return;
    card.hidden = true;
    ticket += 1;
    const was = anchor;
    anchor = null;
    if (restoreFocus && was && was.isConnected && typeof was.focus === "function") was.focus({ preventScroll: true });
  }

  function render(profile) {
    const entry = presence.get(profile.id);
    const state = entry ? entry.state : profile.presence;
    const status = statusLine(entry || profile);
    const dndUntil = entry ? entry.dnd_until : profile.dnd_until;
    const local = localTimeIn(profile.time_zone);
    const isMe = profile.id === me.id;
    const message = h("button", { type: "button", class: "button button-primary button-small profile-message", text: "Message" });
    const error = h("p", { class: "profile-error", role: "alert", hidden: true });
    message.addEventListener("click", async () => {
      message.disabled = true;
      try {
        await openDm([profile.username]);
      } catch (err) {
        error.textContent = err.message || "Could not open the conversation.";
        error.hidden = false;
        message.disabled = false;
      }
    });
    const dnd = dndActive(dndUntil) ? parseDate(dndUntil) : null;
    card.replaceChildren(...[
      h("div", { class: "profile-head" },
        avatar(profile, "lg"),
        h("div", { class: "profile-names" },
          h("strong", { class: "profile-name", id: "profile-card-name", text: profile.display_name || profile.username }),
          h("span", { class: "profile-handle muted", text: `@${profile.username}` })),
        h("button", { type: "button", class: "icon-button profile-close", "aria-label": "Close", text: "×" })),
      h("p", { class: "profile-presence" },
        presenceDot(profile.id),
        h("span", { class: "profile-presence-label", text: state ? PRESENCE_LABEL[state] || state : "Presence not shared" })),
      status ? h("p", { class: "profile-status", text: status }) : null,
      dnd ? h("p", { class: "profile-dnd", title: formatFull(dnd) }, `Do not disturb until ${formatWhen(dnd)}`) : null,
      local ? h("p", { class: "profile-time muted", text: `${local} local time` }) : null,
      h("div", { class: "profile-actions" },
        isMe ? h("a", { class: "button button-small", href: "/account#profile", text: "Edit your profile" }) : message),
      error,
    ].filter(Boolean)); // replaceChildren would write a null as the text "null"
    place();
  }

  async function open(username, target) {
    if (!card.hidden && anchor === target) return close();
    const mine = (ticket += 1);
    anchor = target;
    card.hidden = false;
    card.replaceChildren(h("p", { class: "muted", text: "Loading…" }));
    place();
    try {
      const profile = await api(`/api/v1/users/${encodeURIComponent(username)}`);
      if (mine !== ticket) return;
      if (profile.presence) {
        presence.set({ user_id: profile.id, state: profile.presence, status_text: profile.status_text, status_emoji: profile.status_emoji, dnd_until: profile.dnd_until });
      }
      render(profile);
      const button = $(".profile-message", card) || $(".profile-actions a", card);
      if (button) button.focus({ preventScroll: true });
    } catch (err) {
      if (mine !== ticket) return;
      card.replaceChildren(h("p", { class: "muted", text: err && err.status === 404 ? "No such person." : "Could not load this profile." }));
    }
  }

  document.addEventListener("click", (event) => {
    if (card.contains(event.target)) {
      if (event.target.closest(".profile-close")) close({ restoreFocus: true });
      return;
    }
    const plain = event.button === 0 && !event.metaKey && !event.ctrlKey && !event.shiftKey && !event.altKey
      && !event.defaultPrevented;
    const username = plain ? usernameOf(event.target) : "";
    if (!username) {
      close();
      return;
    }
    event.preventDefault();
    const target = event.target.closest("[data-profile], span.mention, .msg-author, .avatar, .msg-handle") || event.target;
    open(username, target);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !card.hidden) {
      event.stopPropagation();
      close({ restoreFocus: true });
    }
  }, true);
  window.addEventListener("resize", () => close());
  document.addEventListener("scroll", () => place(), { passive: true, capture: true });
  return { open, close };
}
