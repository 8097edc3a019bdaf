// Entry point for a room page: live messages, sending with local echo, history and resync.

import { $, $$, api, h, newClientId, plural, readBootstrap } from "./lib/dom.js";
import { setRoomUnread, startShell } from "./lib/shell.js";
import { localizeTimes } from "./lib/time.js";
import {
  audienceText, buildMessage, buildNote, buildPending, decorateBody, layoutMessages, setPendingState,
} from "./room/render.js";

const SEND_TIMEOUT_MS = 15000;
const BOTTOM_SLACK_PX = 48;
const TOP_LOAD_PX = 160;
const RESYNC_PAGE = 200;

const data = readBootstrap();
const me = data.me;
const room = data.room;
const shell = startShell({ me, currentRoomId: room ? room.id : null });
localizeTimes(document);

if (room && room.is_member) {
  startRoom(shell.socket);
} else if (room && shell.socket) {
  // Joined from another tab: show the conversation.
  shell.socket.on("room_membership", (event) => {
    if (event && event.action === "joined" && event.room && event.room.id === room.id) window.location.reload();
  });
}

function startRoom(socket) {
  const ctx = { me, room: { ...room } };
  const scroller = $("#timeline");
  const list = $("#message-list");
  const jump = $("#jump-latest");
  const jumpLabel = $("#jump-latest-label");
  const historyStatus = $("#history-status");
  const form = $("#composer");
  const input = $("#composer-input");
  const sendButton = $("#composer-send");
  const errorBox = $("#composer-error");
  const counter = $("#composer-count");
  const maxLength = Number(data.max_length) || Number(input.maxLength) || 4000;

  const known = new Map(); // message id -> element
  const pending = new Map(); // client_id -> {clientId, body, el, inFlight}
  let newestId = 0;
  let oldestId = 0;
  let hasMore = Boolean(data.has_more);
  let loadingOlder = false;
  let unseen = 0;
  let lastReadSent = 0;
  let readTimer = null;
  let left = false;

  // ---------------------------------------------------------- the server-rendered messages
  for (const el of $$(".msg[data-id]", list)) {
    const id = Number(el.dataset.id);
    known.set(id, el);
    newestId = Math.max(newestId, id);
    oldestId = oldestId ? Math.min(oldestId, id) : id;
    decorateBody($(".msg-body", el), me);
  }
  layoutMessages(list);

  // ---------------------------------------------------------- scrolling
  const atBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight <= BOTTOM_SLACK_PX;
  const scrollToBottom = () => {
    scroller.scrollTop = scroller.scrollHeight;
  };

  function updateJump() {
    if (unseen > 0) {
      jumpLabel.textContent = `${plural(unseen, "new message")}`;
      jump.hidden = false;
    } else if (!atBottom()) {
      jumpLabel.textContent = "Jump to latest";
      jump.hidden = false;
    } else {
      jump.hidden = true;
    }
  }

  jump.addEventListener("click", () => {
    scrollToBottom();
    unseen = 0;
    updateJump();
    input.focus({ preventScroll: true });
  });

  // When the view shrinks (the composer grows, an error shows, the keyboard opens), a reader
  // who was at the bottom stays there.
  let stuckToBottom = true;
  if (typeof ResizeObserver === "function") {
    new ResizeObserver(() => {
      if (stuckToBottom) scrollToBottom();
    }).observe(scroller);
  }

  scroller.addEventListener("scroll", () => {
    stuckToBottom = atBottom();
    if (stuckToBottom) {
      unseen = 0;
      scheduleRead();
    }
    updateJump();
    if (scroller.scrollTop < TOP_LOAD_PX) loadOlder();
  }, { passive: true });

  // ---------------------------------------------------------- inserting messages
  function removeEmptyState() {
    const empty = $("#empty-room");
    if (empty) empty.remove();
  }

  /** Put a stored message in its place by id; false when it was already shown. */
  function insertMessage(m) {
    if (!m || m.room_id !== room.id || known.has(m.id)) {
      if (m && m.client_id) resolvePending(m.client_id);
      return false;
    }
    const el = buildMessage(m, ctx);
    const entry = m.client_id && m.author.id === me.id ? pending.get(m.client_id) : null;
    if (entry) {
      entry.el.remove();
      pending.delete(m.client_id);
    }
    // Messages are ordered by id; pending echoes always stay below the stored ones.
    const stored = $$(":scope > .msg[data-id]", list);
    let next = null;
    for (let i = stored.length - 1; i >= 0 && Number(stored[i].dataset.id) > m.id; i -= 1) next = stored[i];
    let before = next || $(":scope > .msg-pending", list);
    // The day separator in front of the next message goes with it.
    if (next && next.previousElementSibling && next.previousElementSibling.classList.contains("day-sep")) {
      before = next.previousElementSibling;
    }
    list.insertBefore(el, before);
    known.set(m.id, el);
    newestId = Math.max(newestId, m.id);
    oldestId = oldestId ? Math.min(oldestId, m.id) : m.id;
    removeEmptyState();
    return true;
  }

  function resolvePending(clientId) {
    const entry = pending.get(clientId);
    if (entry) {
      entry.el.remove();
      pending.delete(clientId);
    }
  }

  /** Add live messages at the bottom, following them only if the reader was already there. */
  function addLive(messages, { follow = false } = {}) {
    const wasAtBottom = atBottom();
    let added = 0;
    let fromOthers = 0;
    for (const m of messages) {
      if (insertMessage(m)) {
        added += 1;
        if (m.author.id !== me.id) fromOthers += 1;
      }
    }
    if (!added && !follow) return;
    layoutMessages(list);
    if (wasAtBottom || follow) {
      scrollToBottom();
      unseen = 0;
    } else {
      unseen += fromOthers;
    }
    updateJump();
    scheduleRead();
  }

  // ---------------------------------------------------------- history
  function setHistoryStatus(state) {
    if (state === "loading") {
      historyStatus.replaceChildren(h("p", { class: "muted history-loading", text: "Loading older messages…" }));
    } else if (state === "more") {
      const button = h("button", { type: "button", class: "button button-quiet button-small", id: "load-older", text: "Load older messages" });
      button.addEventListener("click", () => loadOlder());
      historyStatus.replaceChildren(button);
    } else if (state === "error") {
      const button = h("button", { type: "button", class: "button button-quiet button-small", text: "Could not load older messages. Try again" });
      button.addEventListener("click", () => loadOlder());
      historyStatus.replaceChildren(button);
    } else {
      historyStatus.replaceChildren(h("p", { class: "room-start" },
        h("strong", { text: `This is the very beginning of #${room.name}.` }), h("br"),
        h("span", { class: "muted", text: room.topic || "Say hello!" })));
    }
  }
  const initialLoadButton = $("#load-older");
  if (initialLoadButton) initialLoadButton.addEventListener("click", () => loadOlder());

  /** Prepend the page before the oldest message shown, keeping the view where it was. */
  async function loadOlder() {
    if (loadingOlder || !hasMore || !oldestId) return;
    loadingOlder = true;
    setHistoryStatus("loading");
    list.setAttribute("aria-busy", "true");
    try {
      const page = await api(`/api/v1/rooms/${room.id}/messages?before=${oldestId}`);
      // Everything is added above what the reader sees: keep the message they were at in place.
      const anchor = $(".msg-body", known.get(oldestId)) || known.get(oldestId);
      const offset = () => anchor.getBoundingClientRect().top - scroller.getBoundingClientRect().top;
      const before = offset();
      for (const m of page.messages || []) insertMessage(m);
      hasMore = Boolean(page.has_more) && (page.messages || []).length > 0;
      setHistoryStatus(hasMore ? "more" : "start");
      layoutMessages(list);
      scroller.scrollTop += offset() - before;
    } catch (err) {
      console.warn("chorus: could not load older messages", err);
      setHistoryStatus("error");
      return;
    } finally {
      list.removeAttribute("aria-busy");
      loadingOlder = false;
    }
    // Too few messages to scroll yet: keep filling the view.
    if (hasMore && scroller.scrollHeight <= scroller.clientHeight + TOP_LOAD_PX) loadOlder();
  }

  /** After any (re)connect: fetch what was sent while we were not listening, in order. */
  async function resync() {
    try {
      if (!newestId) {
        const page = await api(`/api/v1/rooms/${room.id}/messages`);
        addLive(page.messages || []);
        hasMore = Boolean(page.has_more);
        if (hasMore) setHistoryStatus("more");
      } else {
        for (let round = 0; round < 50; round += 1) {
          const page = await api(`/api/v1/rooms/${room.id}/messages?after=${newestId}&limit=${RESYNC_PAGE}`);
          addLive(page.messages || []);
          if (!page.has_more || !(page.messages || []).length) break;
        }
      }
    } catch (err) {
      console.warn("chorus: resync failed", err);
    }
    // Anything still pending was never confirmed: send again (same client_id, so never twice).
    for (const entry of pending.values()) {
      if (!entry.inFlight) emitSend(entry);
    }
  }

  // ---------------------------------------------------------- read marker
  function scheduleRead() {
    clearTimeout(readTimer);
    readTimer = setTimeout(markRead, 400);
  }

  function markRead() {
    if (left || !socket || !socket.connected || document.visibilityState !== "visible") return;
    if (!atBottom() || newestId <= lastReadSent) return;
    const messageId = newestId;
    lastReadSent = messageId;
    socket.emit("read", { room_id: room.id, message_id: messageId }, (ack) => {
      if (!ack || !ack.ok) lastReadSent = 0; // try again on the next occasion
    });
  }
  document.addEventListener("visibilitychange", scheduleRead);
  window.addEventListener("focus", scheduleRead);

  // ---------------------------------------------------------- composer
  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = !text;
  }

  function updateComposer() {
    const length = input.value.length;
    sendButton.disabled = left || input.value.trim() === "";
    const remaining = maxLength - length;
    counter.hidden = remaining > 200;
    counter.textContent = `${remaining} left`;
    counter.classList.toggle("is-low", remaining <= 20);
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 240)}px`;
  }

  function send() {
    const body = input.value;
    if (left || body.trim() === "") return;
    if (body.length > maxLength) {
      showError(`Messages are at most ${maxLength} characters.`);
      return;
    }
    showError("");
    const clientId = newClientId();
    const entry = { clientId, body, el: buildPending(body, clientId, ctx), inFlight: false };
    pending.set(clientId, entry);
    list.append(entry.el);
    removeEmptyState();
    layoutMessages(list);
    scrollToBottom();
    unseen = 0;
    updateJump();
    input.value = "";
    updateComposer();
    emitSend(entry);
  }

  function emitSend(entry) {
    if (!pending.has(entry.clientId)) return;
    if (!socket || !socket.connected) {
      setPendingState(entry.el, "waiting", "Not sent yet: waiting for the connection.");
      return;
    }
    entry.inFlight = true;
    setPendingState(entry.el, "sending", "Sending…");
    socket.timeout(SEND_TIMEOUT_MS).emit(
      "send", { room_id: room.id, body: entry.body, client_id: entry.clientId },
      (err, ack) => {
        entry.inFlight = false;
        if (!pending.has(entry.clientId)) return; // the broadcast got here first
        if (err) {
          setPendingState(entry.el, "waiting", "Not confirmed yet: it will be retried.");
          return;
        }
        if (ack && ack.ok && ack.message) {
          addLive([ack.message]);
          return;
        }
        failSend(entry, (ack && ack.error) || { message: "The message could not be sent." });
      },
    );
  }

  /** A refused send: drop the echo, give the text back to the composer, say why. */
  function failSend(entry, error) {
    entry.el.remove();
    pending.delete(entry.clientId);
    layoutMessages(list);
    input.value = input.value.trim() ? `${entry.body}\n${input.value}` : entry.body;
    updateComposer();
    showError(error.message || "The message could not be sent.");
    input.focus();
  }

  list.addEventListener("click", (event) => {
    const retry = event.target.closest(".msg-retry");
    if (!retry) return;
    const entry = pending.get(retry.closest(".msg-pending").dataset.clientId);
    if (entry && !entry.inFlight) emitSend(entry);
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    event.preventDefault();
    send();
  });
  input.addEventListener("input", () => {
    updateComposer();
    if (!errorBox.hidden && input.value.trim() === "") showError("");
  });
  updateComposer();

  // ---------------------------------------------------------- members
  const memberList = $("#member-list");
  const memberCount = $("#member-count");

  function setMemberCount(count) {
    ctx.room.member_count = count;
    memberCount.textContent = String(count);
    const { title, text } = audienceText(ctx.room);
    for (const label of $$(".msg-audience", list)) {
      label.title = title;
      $(".msg-audience-text", label).textContent = text;
    }
  }

  function addNote(text) {
    const wasAtBottom = atBottom();
    list.append(buildNote(text));
    layoutMessages(list);
    if (wasAtBottom) scrollToBottom();
  }

  function memberItem(user) {
    return h("li", { dataset: { userId: user.id } },
      h("span", { class: `avatar avatar-sm hue-${user.id % 8}`, "aria-hidden": "true", text: user.display_name.slice(0, 1).toUpperCase() }),
      h("span", { class: "member-name", text: user.display_name }),
      h("span", { class: "member-handle", text: `@${user.username}` }));
  }

  // ---------------------------------------------------------- focus a linked message
  async function showLinkedMessage() {
    const match = /^#message-(\d+)$/.exec(window.location.hash);
    if (!match) return false;
    const id = Number(match[1]);
    for (let round = 0; round < 20 && !known.has(id) && hasMore && oldestId > id; round += 1) {
      await loadOlder();
    }
    const el = known.get(id);
    if (!el) return false;
    el.scrollIntoView({ block: "center" });
    el.classList.remove("msg-flash");
    void el.offsetWidth;
    el.classList.add("msg-flash");
    updateJump();
    return true;
  }
  window.addEventListener("hashchange", showLinkedMessage);

  // ---------------------------------------------------------- socket events
  if (socket) {
    socket.on("message", (m) => {
      if (m && m.room_id === room.id) addLive([m]);
    });
    socket.on("notification", (n) => {
      if (!n || n.room_id !== room.id || !n.message) return;
      const el = known.get(n.message.id);
      if (!el) return;
      el.classList.add("msg-mentions-me");
      el.classList.remove("msg-flash");
      void el.offsetWidth;
      el.classList.add("msg-flash");
    });
    socket.on("member_joined", (event) => {
      if (!event || event.room_id !== room.id) return;
      setMemberCount(event.member_count);
      if (memberList && !$(`[data-user-id="${event.user.id}"]`, memberList)) {
        const item = memberItem(event.user);
        const after = $$("li", memberList).find(
          (li) => $(".member-handle", li).textContent.toLowerCase() > `@${event.user.username.toLowerCase()}`,
        );
        memberList.insertBefore(item, after || null);
      }
      addNote(`${event.user.display_name} joined #${room.name}`);
    });
    socket.on("member_left", (event) => {
      if (!event || event.room_id !== room.id) return;
      setMemberCount(event.member_count);
      const item = memberList && $(`[data-user-id="${event.user.id}"]`, memberList);
      if (item) item.remove();
      if (event.user.id !== me.id) addNote(`${event.user.display_name} left #${room.name}`);
    });
    socket.on("room_membership", (event) => {
      if (!event || !event.room || event.room.id !== room.id || event.action !== "left") return;
      // Left from another tab: this page can no longer send or receive.
      left = true;
      input.disabled = true;
      updateComposer();
      showError("You left this room. Rejoin it from the room list to keep chatting.");
    });
    shell.onConnect(() => {
      resync();
      scheduleRead();
    });
  }

  // ---------------------------------------------------------- first paint
  setRoomUnread(room.id, 0);
  showLinkedMessage().then((shown) => {
    if (!shown) scrollToBottom();
    updateJump();
    if (hasMore && scroller.scrollHeight <= scroller.clientHeight + TOP_LOAD_PX) loadOlder();
  });
  if (!window.matchMedia("(pointer: coarse)").matches) input.focus({ preventScroll: true });
}
