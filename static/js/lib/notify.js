// Desktop notifications for mentions while Chorus is in the background (the Notification API).
//
// Every open tab receives the same `notification` event. Only hidden tabs show one, all with
// the tag "chorus-mention-<message id>", so the browser keeps a single notification per
// message; a tab the person is looking at tells the others (BroadcastChannel) to stay quiet.

import { $ } from "./dom.js";

const CHANNEL = "chorus-desktop-notifications";
const SETTLE_MS = 250; // time for a visible tab to say "seen" before a hidden one shows it

const supported = () => typeof window.Notification === "function";

const STATE_TEXT = {
  granted: "Desktop notifications are on: mentions pop up while Chorus is in the background.",
  denied: "Desktop notifications are blocked for this site in your browser settings.",
  unsupported: "",
};

/** The tag that makes every tab's notification for one message the same one. */
export function mentionTag(messageId) {
  return `chorus-mention-${messageId}`;
}

/**
 * Wire the "Turn on desktop notifications" button in the bell panel; the permission is only
 * ever asked for from that click. Returns notifyMention(n, {title, href, open}).
 */
export function setupDesktopNotifications() {
  const box = $("#desktop-notify");
  const button = $("#desktop-notify-button");
  const state = $("#desktop-notify-state");
  const seen = new Set();
  const channel = typeof BroadcastChannel === "function" ? new BroadcastChannel(CHANNEL) : null;
  if (channel) {
    channel.addEventListener("message", (event) => {
      if (event.data && event.data.seen) seen.add(event.data.seen);
    });
  }

  function refresh() {
    if (!box) return;
    const permission = supported() ? Notification.permission : "unsupported";
    box.hidden = permission === "unsupported";
    if (button) button.hidden = permission !== "default";
    if (state) {
      state.textContent = STATE_TEXT[permission] || "";
      state.hidden = !state.textContent;
    }
  }

  if (button) {
    button.addEventListener("click", () => {
      if (!supported()) return;
      // Older Safari only takes a callback; current browsers return a promise.
      const result = Notification.requestPermission(refresh);
      if (result && typeof result.then === "function") result.then(refresh, refresh);
    });
  }
  refresh();

  return function notifyMention(n, { title, body, href, open }) {
    const messageId = n && n.message && n.message.id;
    if (!messageId) return;
    if (!document.hidden) {
      if (channel) channel.postMessage({ seen: messageId });
      return;
    }
    if (!supported() || Notification.permission !== "granted") return;
    setTimeout(() => {
      if (seen.has(messageId) || !document.hidden) return;
      try {
        const note = new Notification(title, {
          body,
          tag: mentionTag(messageId),
          icon: "/static/img/chorus.svg",
          data: { href },
        });
        note.addEventListener("click", () => {
          window.focus();
          note.close();
          open();
        });
      } catch (err) {
        // Some mobile browsers only allow notifications from a service worker.
        console.warn("chorus: could not show a desktop notification", err);
      }
    }, SETTLE_MS);
  };
}
