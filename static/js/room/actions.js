// What can be done to a message: react, edit (your own), delete (your own, or as the room's
// owner or an admin), copy its link; the edit history of an edited one. The actions show on
// hover, on focus and on a long press; every change goes to the server over the socket and
// the reply (the viewer's state of the message) is shown at once.

import { $, api, h } from "../lib/dom.js";
import { sanitizeHtml } from "../lib/sanitize.js";
import { formatFull, formatWhen, parseDate } from "../lib/time.js";
import { createEmojiPicker } from "./picker.js";
import { messageHref } from "./render.js";

const REQUEST_TIMEOUT_MS = 10000;
const LONG_PRESS_MS = 500;
const TOAST_MS = 2500;

/** A socket request with an ack: resolves with the reply's message, rejects with {code, message}. */
export function socketRequest(socket, event, payload) {
  return new Promise((resolve, reject) => {
    if (!socket || !socket.connected) {
      reject({ code: "offline", message: "Not connected: try again once the connection is back." });
      return;
    }
    socket.timeout(REQUEST_TIMEOUT_MS).emit(event, payload, (err, ack) => {
      if (err) reject({ code: "timeout", message: "The server did not answer. Try again." });
      else if (ack && ack.ok) resolve(ack.message);
      else reject((ack && ack.error) || { code: "error", message: "That did not work. Try again." });
    });
  });
}

function icon(paths) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("width", "15");
  svg.setAttribute("height", "15");
  for (const d of paths) {
    const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", d);
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", "currentColor");
    path.setAttribute("stroke-width", "1.4");
    path.setAttribute("stroke-linecap", "round");
    path.setAttribute("stroke-linejoin", "round");
    svg.append(path);
  }
  return svg;
}

const ICONS = {
  react: ["M8 14.5a6.5 6.5 0 1 1 0-13 6.5 6.5 0 0 1 0 13Z", "M5.5 9.5c.6.9 1.5 1.4 2.5 1.4s1.9-.5 2.5-1.4", "M6 6.3v.2M10 6.3v.2"],
  edit: ["M10.5 2.5l3 3-8 8H2.5v-3z", "M9 4l3 3"],
  delete: ["M2.5 4.5h11", "M6 4.5V3h4v1.5", "M4 4.5l.8 9h6.4l.8-9", "M6.8 7v4.5M9.2 7v4.5"],
  link: ["M6.5 9.5l3-3", "M7 4.5l1.2-1.2a2.8 2.8 0 0 1 4 4L11 8.5", "M9 11.5l-1.2 1.2a2.8 2.8 0 0 1-4-4L5 7.5"],
  reply: ["M2.5 3.5h11v7h-6l-3 2.5v-2.5h-2z"],
  quote: ["M3 4.5h4v4H4.5L3 11.5", "M9 4.5h4v4h-2.5L9 11.5"],
};

/**
 * view: the timeline view. ctx: {me (with is_admin), room (with owner_id)}. socket: the
 * page's socket. applyReply(state): show the server's reply and note its rev.
 * composer: to go back to after editing. onReply(state) / onQuote(state): offer "Reply in
 * thread" / "Quote" (left out when not given). idPrefix keeps the ids of a second set of
 * dialogs (a thread's panel) apart from the room's. hrefOf(id): the link "Copy link" copies.
 */
export function attachMessageActions({
  list, view, ctx, socket, applyReply, composer, onReply = null, onQuote = null, idPrefix = "",
  hrefOf = (id) => messageHref(ctx.room.id, id),
}) {
  const { me, room } = ctx;
  const picker = createEmojiPicker({ loadEmoji: () => api("/api/v1/emoji").then((data) => data.emoji || []) });

  // ---------------------------------------------------------- who may do what
  const canEdit = (state) => Boolean(state && !state.deleted && state.author && state.author.id === me.id);
  const canDelete = (state) => Boolean(state && !state.deleted && state.author
    && (state.author.id === me.id || room.owner_id === me.id || me.is_admin));

  // ---------------------------------------------------------- a short note at the bottom
  const toast = h("p", { class: "room-toast", role: "status", hidden: true });
  (list.closest(".timeline-wrap") || document.body).append(toast);
  let toastTimer = null;
  function say(text) {
    clearTimeout(toastTimer);
    toast.textContent = text;
    toast.hidden = false;
    toastTimer = setTimeout(() => {
      toast.hidden = true;
    }, TOAST_MS);
  }

  // ---------------------------------------------------------- the toolbar
  const button = (action, label) => h("button", {
    type: "button", class: `msg-action msg-action-${action}`, title: label, "aria-label": label, dataset: { action },
  }, icon(ICONS[action]));
  const buttons = {
    reply: onReply ? button("reply", "Reply in thread") : null,
    quote: onQuote ? button("quote", "Quote") : null,
    react: button("react", "Add reaction"),
    edit: button("edit", "Edit message"),
    delete: button("delete", "Delete message"),
    link: button("link", "Copy link to message"),
  };
  const toolbar = h("div", { class: "msg-actions", role: "toolbar", "aria-label": "Message actions", hidden: true },
    buttons.reply, buttons.quote, buttons.react, buttons.edit, buttons.delete, buttons.link);
  let target = null; // the message element the toolbar is on

  function showToolbar(el) {
    if (!el || el.classList.contains("msg-pending")) return;
    const state = view.get(el.dataset.id);
    if (!state || state.deleted) {
      hideToolbar();
      return;
    }
    if (target !== el) {
      if (target) target.classList.remove("msg-actions-open");
      target = el;
      el.append(toolbar);
    }
    buttons.edit.hidden = !canEdit(state) || editing !== null;
    buttons.delete.hidden = !canDelete(state);
    toolbar.hidden = false;
  }

  function hideToolbar({ force = false } = {}) {
    if (!force && (picker.isOpen || toolbar.contains(document.activeElement))) return;
    if (target) target.classList.remove("msg-actions-open");
    target = null;
    toolbar.hidden = true;
    toolbar.remove();
  }

  list.addEventListener("mouseover", (event) => {
    const el = event.target.closest(".msg[data-id]");
    if (el && !el.contains(editorOf(el))) showToolbar(el);
  });
  list.addEventListener("mouseleave", () => {
    if (!toolbar.contains(document.activeElement)) hideToolbar();
  });
  list.addEventListener("focusin", (event) => {
    const el = event.target.closest(".msg[data-id]");
    if (el && !event.target.closest(".msg-editor")) showToolbar(el);
  });
  list.addEventListener("focusout", (event) => {
    if (!event.relatedTarget || !list.contains(event.relatedTarget)) {
      setTimeout(() => {
        if (!list.contains(document.activeElement)) hideToolbar();
      }, 0);
    }
  });

  // A long press on a touch screen opens the actions (and not the browser's menu).
  let pressTimer = null;
  let pressed = false;
  list.addEventListener("touchstart", (event) => {
    const el = event.target.closest(".msg[data-id]");
    pressed = false;
    clearTimeout(pressTimer);
    if (!el || event.target.closest("a, button, textarea")) return;
    pressTimer = setTimeout(() => {
      pressed = true;
      showToolbar(el);
      el.classList.add("msg-actions-open");
    }, LONG_PRESS_MS);
  }, { passive: true });
  for (const type of ["touchend", "touchmove", "touchcancel"]) {
    list.addEventListener(type, () => clearTimeout(pressTimer), { passive: true });
  }
  list.addEventListener("contextmenu", (event) => {
    if (pressed) event.preventDefault();
  });
  document.addEventListener("touchstart", (event) => {
    if (target && !target.contains(event.target) && !picker.isOpen) hideToolbar();
  }, { passive: true });

  toolbar.addEventListener("click", (event) => {
    const action = event.target.closest(".msg-action");
    if (!action || !target) return;
    const id = Number(target.dataset.id);
    if (action.dataset.action === "react") {
      picker.open(action, (emoji) => react(id, emoji, true));
    } else if (action.dataset.action === "edit") {
      startEdit(id);
    } else if (action.dataset.action === "delete") {
      confirmDelete(id);
    } else if (action.dataset.action === "link") {
      copyLink(id);
    } else if (action.dataset.action === "reply") {
      hideToolbar({ force: true });
      onReply(view.get(id));
    } else if (action.dataset.action === "quote") {
      hideToolbar({ force: true });
      onQuote(view.get(id));
    }
  });

  // ---------------------------------------------------------- reactions
  async function react(id, emoji, on) {
    try {
      applyReply(await socketRequest(socket, "react", { message_id: id, emoji, on }));
    } catch (error) {
      say(error.message || "Could not react.");
    }
  }

  list.addEventListener("click", (event) => {
    const chip = event.target.closest(".reaction[data-emoji]");
    if (chip) {
      const el = chip.closest(".msg[data-id]");
      react(Number(el.dataset.id), chip.dataset.emoji, chip.getAttribute("aria-pressed") !== "true");
      return;
    }
    const edited = event.target.closest(".msg-edited");
    if (edited) showHistory(Number(edited.closest(".msg[data-id]").dataset.id), edited);
  });

  // ---------------------------------------------------------- editing
  let editing = null; // {id, form, input}

  function editorOf(el) {
    return el ? $(":scope .msg-editor", el) : null;
  }

  /** Edit a message in place; false when it cannot be edited. */
  function startEdit(id) {
    const state = view.get(id);
    const el = view.element(id);
    if (!el || !canEdit(state)) return false;
    if (editing) stopEdit({ focusComposer: false });
    const input = h("textarea", { class: "input msg-editor-input", rows: "2", "aria-label": "Edit message" });
    input.value = state.body || "";
    const error = h("p", { class: "msg-editor-error", role: "alert", hidden: true });
    const cancel = h("button", { type: "button", class: "button button-quiet button-small", text: "Cancel" });
    const save = h("button", { type: "submit", class: "button button-primary button-small", text: "Save" });
    const form = h("form", { class: "msg-editor" }, input,
      h("div", { class: "msg-editor-foot" },
        h("span", { class: "msg-editor-hint muted" }, h("kbd", { text: "Esc" }), " to cancel · ", h("kbd", { text: "Enter" }), " to save"),
        cancel, save),
      error);
    editing = { id, form, input, error };
    mountEditor(el);
    hideToolbar({ force: true });
    const size = () => {
      input.style.height = "auto";
      input.style.height = `${Math.min(input.scrollHeight, 240)}px`;
    };
    input.addEventListener("input", size);
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        stopEdit();
      } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        saveEdit();
      }
    });
    cancel.addEventListener("click", () => stopEdit());
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      saveEdit();
    });
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
    size();
    el.scrollIntoView({ block: "nearest" });
    return true;
  }

  function mountEditor(el) {
    const body = $(".msg-body", el);
    if (body) {
      body.hidden = true;
      body.after(editing.form);
    } else {
      $(".msg-main", el).append(editing.form);
    }
    el.classList.add("msg-editing");
  }

  function stopEdit({ focusComposer = true } = {}) {
    if (!editing) return;
    const el = view.element(editing.id);
    editing.form.remove();
    if (el) {
      const body = $(".msg-body", el);
      if (body) body.hidden = false;
      el.classList.remove("msg-editing");
    }
    editing = null;
    if (focusComposer) composer.focus({ preventScroll: true });
  }

  async function saveEdit() {
    if (!editing) return;
    const { id, input, error } = editing;
    const state = view.get(id);
    const body = input.value;
    if (state && body === state.body) {
      stopEdit();
      return;
    }
    if (!body.trim()) {
      error.textContent = "A message cannot be empty. To remove it, delete it.";
      error.hidden = false;
      return;
    }
    input.disabled = true;
    try {
      const reply = await socketRequest(socket, "edit", { message_id: id, body });
      if (editing && editing.id === id) stopEdit();
      applyReply(reply);
    } catch (err) {
      if (!editing || editing.id !== id) return;
      input.disabled = false;
      error.textContent = err.message || "Could not save the change.";
      error.hidden = false;
      input.focus();
    }
  }

  /** `Up` in the empty composer: edit your newest message shown. */
  function editLast() {
    const mine = Array.from(view.elements.entries())
      .filter(([id]) => canEdit(view.get(id)))
      .sort((a, b) => b[0] - a[0]);
    return mine.length ? startEdit(mine[0][0]) : false;
  }

  // ---------------------------------------------------------- deleting
  const confirmText = h("p", { class: "confirm-excerpt" });
  const confirmError = h("p", { class: "composer-error", role: "alert", hidden: true });
  const confirmDeleteButton = h("button", { type: "submit", class: "button button-danger", value: "delete", text: "Delete" });
  const confirmCancel = h("button", { type: "button", class: "button button-quiet", text: "Cancel" });
  const confirmDialog = h("dialog", { class: "dialog", "aria-labelledby": `${idPrefix}confirm-delete-title`, id: `${idPrefix}confirm-delete` },
    h("form", { method: "dialog", class: "dialog-body" },
      h("h2", { class: "dialog-title", id: `${idPrefix}confirm-delete-title`, text: "Delete this message?" }),
      h("p", { class: "muted", text: `It will be gone for everyone in ${room.kind === "dm" ? "this conversation" : `#${room.name}`}. This cannot be undone.` }),
      confirmText, confirmError,
      h("div", { class: "dialog-actions" }, confirmCancel, confirmDeleteButton)));
  document.body.append(confirmDialog);
  let deleting = null;
  confirmCancel.addEventListener("click", () => confirmDialog.close());
  confirmDialog.addEventListener("close", () => {
    const el = deleting && view.element(deleting);
    deleting = null;
    if (el && el.isConnected) $("a.msg-time", el)?.focus({ preventScroll: true });
  });
  confirmDialog.querySelector("form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = deleting;
    if (!id) return;
    confirmDeleteButton.disabled = true;
    try {
      applyReply(await socketRequest(socket, "delete", { message_id: id }));
      confirmDialog.close();
    } catch (err) {
      confirmError.textContent = err.message || "Could not delete the message.";
      confirmError.hidden = false;
    } finally {
      confirmDeleteButton.disabled = false;
    }
  });

  function confirmDelete(id) {
    const state = view.get(id);
    if (!canDelete(state)) return;
    deleting = id;
    const excerpt = (state.body || "").replace(/\s+/g, " ").trim();
    confirmText.textContent = excerpt.length > 200 ? `${excerpt.slice(0, 200)}…` : excerpt;
    confirmError.hidden = true;
    confirmDialog.showModal();
    confirmCancel.focus();
  }

  // ---------------------------------------------------------- the edit history
  const historyList = h("ol", { class: "edit-history" });
  const historyClose = h("button", { type: "submit", class: "button button-quiet", text: "Close" });
  const historyDialog = h("dialog", { class: "dialog dialog-history", "aria-labelledby": `${idPrefix}edit-history-title`, id: `${idPrefix}edit-history` },
    h("form", { method: "dialog", class: "dialog-body" },
      h("h2", { class: "dialog-title", id: `${idPrefix}edit-history-title`, text: "Edit history" }),
      historyList,
      h("div", { class: "dialog-actions" }, historyClose)));
  document.body.append(historyDialog);
  let historyOpener = null;
  historyDialog.addEventListener("close", () => {
    if (historyOpener && historyOpener.isConnected) historyOpener.focus({ preventScroll: true });
    historyOpener = null;
  });
  historyDialog.addEventListener("click", (event) => {
    if (event.target === historyDialog) historyDialog.close(); // a click on the backdrop
  });

  async function showHistory(id, opener) {
    historyOpener = opener;
    historyList.replaceChildren(h("li", { class: "muted", text: "Loading…" }));
    historyDialog.showModal();
    try {
      const data = await api(`/api/v1/messages/${id}/history`);
      const versions = data.versions || [];
      historyList.replaceChildren(...versions.map((version, i) => {
        const date = parseDate(version.at);
        const label = i === 0 ? "Original" : i === versions.length - 1 ? "Current" : "Edited";
        const body = h("div", { class: "msg-body" });
        body.append(sanitizeHtml(version.html));
        return h("li", { class: "edit-version" },
          h("div", { class: "edit-version-meta" },
            h("strong", { text: label }), " · ",
            date ? h("time", { datetime: version.at, title: formatFull(date), text: formatWhen(date) }) : null,
            version.by ? ` · ${version.by.display_name}` : null),
          body);
      }));
    } catch (err) {
      const gone = err && err.status === 410;
      historyList.replaceChildren(h("li", {
        class: "muted", text: gone ? "This message was deleted." : "Could not load the edit history.",
      }));
    }
  }

  // ---------------------------------------------------------- copying a link
  async function copyLink(id) {
    const url = new URL(hrefOf(id), window.location.href).href;
    try {
      await navigator.clipboard.writeText(url);
    } catch {
      // No clipboard permission (an insecure origin, an old browser): the old way.
      const area = h("textarea", { class: "visually-hidden", readonly: true });
      area.value = url;
      document.body.append(area);
      area.select();
      const copied = document.execCommand && document.execCommand("copy");
      area.remove();
      if (!copied) {
        say(url);
        return;
      }
    }
    say("Link copied");
  }

  return {
    editLast,
    startEdit,
    /** A message was drawn again: keep the toolbar and the editor on it (or close them if it was deleted). */
    replaced(old, el, state) {
      if (target === old) {
        target = null;
        if (state.deleted) hideToolbar({ force: true });
        else showToolbar(el);
      }
      if (editing && editing.id === state.id) {
        if (state.deleted) {
          editing.form.remove();
          editing = null;
          say("That message was deleted.");
          composer.focus({ preventScroll: true });
        } else {
          mountEditor(el);
          // Moving the editor out of the replaced element took the focus with it.
          if (!document.activeElement || document.activeElement === document.body) editing.input.focus({ preventScroll: true });
        }
      }
      if (deleting === state.id && state.deleted && confirmDialog.open) confirmDialog.close();
    },
  };
}
