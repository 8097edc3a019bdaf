// Entry point for a room page: live messages, sending with local echo, history in both
// directions, links to one message, and catching up after a reconnect or a sleep.

import { $, $$, api, h, newClientId, plural, readBootstrap } from "./lib/dom.js";
import { setRoomUnread, startShell } from "./lib/shell.js";
import { localizeTimes } from "./lib/time.js";
import { attachMentionAutocomplete } from "./room/mentions.js";
import {
  audienceText, buildMessage, buildNote, buildPending, decorateBody, layoutMessages, setPendingState,
} from "./room/render.js";

const SEND_TIMEOUT_MS = 15000;
const SEND_ATTEMPTS = 3; // unanswered sends before the message is shown as failed
const RETRY_DELAY_MS = 2000;
const BOTTOM_SLACK_PX = 48;
const EDGE_LOAD_PX = 160;
const RESYNC_PAGE = 200;
const RESYNC_MAX = 500; // a larger gap reloads the latest page instead of replaying it
const WAKE_AFTER_MS = 30000; // hidden (or asleep) this long: ask the server what was missed
const HEADS_EVERY_MS = 60000; // how often a watched page checks the room's newest seq
const LIVE_BUFFER_MAX = 1000;
// Refusals that sending again cannot fix: the text goes back to the composer to be edited.
const PERMANENT_ERRORS = new Set(["invalid", "too_large", "not_member", "not_found", "forbidden", "unauthorized"]);

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
  const label = $("#member-count-label");
  const update = (event) => {
    if (!label || !event || event.room_id !== room.id || typeof event.member_count !== "number") return;
    label.textContent = plural(event.member_count, "member");
  };
  shell.socket.on("member_joined", update);
  shell.socket.on("member_left", update);
}

function startRoom(socket) {
  const ctx = { me, room: { ...room } };
  const scroller = $("#timeline");
  const list = $("#message-list");
  const jump = $("#jump-latest");
  const jumpLabel = $("#jump-latest-label");
  const historyStatus = $("#history-status");
  const newerStatus = $("#newer-status");
  const form = $("#composer");
  const input = $("#composer-input");
  const sendButton = $("#composer-send");
  const errorBox = $("#composer-error");
  const counter = $("#composer-count");
  const maxLength = Number(data.max_length) || Number(input.maxLength) || 4000;

  const known = new Map(); // message id -> element
  const pending = new Map(); // client_id -> {clientId, body, el, inFlight, attempts}
  const members = new Map((data.members || []).map((user) => [user.id, user]));
  // Live messages that arrived while the view was not showing the latest page.
  const liveBuffer = new Map();
  let newestId = 0;
  // The catch-up cursor: every seq up to cursorSeq is here, and cursorId is the highest id
  // among them. An ack can arrive before the broadcast of an earlier message; catching up
  // from cursorId (not newestId) still fetches that one if the connection drops meanwhile.
  const seqIds = new Map(); // seq -> id, for messages of the latest stretch
  let cursorSeq = 0;
  let cursorId = 0;
  function noteSeq(seq, id) {
    if (!seq) return;
    seqIds.set(seq, id);
    if (!cursorSeq) {
      cursorSeq = seq;
      cursorId = id;
    }
    while (seqIds.has(cursorSeq + 1)) {
      cursorSeq += 1;
      cursorId = Math.max(cursorId, seqIds.get(cursorSeq));
    }
  }
  let oldestId = 0;
  let hasMore = Boolean(data.has_more); // older messages beyond the first one shown
  let hasMoreAfter = Boolean(data.has_more_after); // newer ones beyond the last one shown
  let newerArrived = false; // live messages are waiting below a view that is not caught up
  let loadingOlder = false;
  let loadingNewer = false;
  let reloading = false;
  let view = 0; // bumped when the list is replaced: pages asked for before then are dropped
  let resyncing = null;
  let lastSyncAt = Date.now();
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
  // The server renders a contiguous stretch: start the cursor at its newest message.
  for (const el of Array.from(known.values()).sort((a, b) => Number(a.dataset.seq) - Number(b.dataset.seq))) {
    noteSeq(Number(el.dataset.seq) || 0, Number(el.dataset.id));
  }
  layoutMessages(list);

  // ---------------------------------------------------------- scrolling
  const distanceToBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight;
  const atBottom = () => distanceToBottom() <= BOTTOM_SLACK_PX;
  // "At the latest": at the bottom of a view that holds the newest messages.
  const atLatest = () => !hasMoreAfter && atBottom();
  const scrollToBottom = () => {
    scroller.scrollTop = scroller.scrollHeight;
  };

  function updateJump() {
    if (unseen > 0 && !hasMoreAfter) {
      jumpLabel.textContent = plural(unseen, "new message");
    } else if (hasMoreAfter && newerArrived) {
      jumpLabel.textContent = "New messages · Jump to latest";
    } else {
      jumpLabel.textContent = "Jump to latest";
    }
    jump.hidden = !(hasMoreAfter || unseen > 0 || !atBottom());
  }

  jump.addEventListener("click", () => {
    if (hasMoreAfter) {
      reloadLatest();
    } else {
      scrollToBottom();
      unseen = 0;
      updateJump();
    }
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
    stuckToBottom = atLatest();
    if (stuckToBottom) {
      unseen = 0;
      scheduleRead();
    }
    updateJump();
    if (scroller.scrollTop < EDGE_LOAD_PX) loadOlder();
    if (hasMoreAfter && distanceToBottom() < EDGE_LOAD_PX) loadNewer();
  }, { passive: true });

  // ---------------------------------------------------------- inserting messages
  function removeEmptyState() {
    const empty = $("#empty-room");
    if (empty) empty.remove();
  }

  /** Put a stored message in its place by id; false when it was already shown. */
  function insertMessage(m) {
    if (!m || m.room_id !== room.id || known.has(m.id)) {
      if (m && m.client_id && m.author && m.author.id === me.id) resolvePending(m.client_id);
      return false;
    }
    const el = buildMessage(m, ctx);
    if (m.client_id && m.author.id === me.id) resolvePending(m.client_id);
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
    noteSeq(Number(m.seq) || 0, m.id);
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

  /**
   * A message that just happened (broadcast, ack or catch-up). Shown at once when the view
   * holds the latest messages; otherwise kept until the reader gets there, since appending it
   * below an older page would leave a hole in the history.
   */
  function receive(messages) {
    if (!hasMoreAfter && !reloading) {
      addLive(messages);
      return;
    }
    for (const m of messages) {
      if (!m || m.room_id !== room.id) continue;
      if (known.has(m.id)) {
        if (m.client_id && m.author.id === me.id) resolvePending(m.client_id);
        continue;
      }
      liveBuffer.set(m.id, m);
      if (m.author.id !== me.id) newerArrived = true;
    }
    while (liveBuffer.size > LIVE_BUFFER_MAX) liveBuffer.delete(liveBuffer.keys().next().value);
    updateJump();
  }

  /** Once the view reaches the latest page: show what arrived meanwhile. */
  function flushLive() {
    if (hasMoreAfter || reloading || !liveBuffer.size) return;
    const messages = Array.from(liveBuffer.values()).sort((a, b) => a.id - b.id);
    liveBuffer.clear();
    addLive(messages);
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

  function setNewerStatus(state) {
    newerStatus.hidden = !hasMoreAfter;
    if (!hasMoreAfter) {
      newerStatus.replaceChildren();
      return;
    }
    if (state === "loading") {
      newerStatus.replaceChildren(h("p", { class: "muted history-loading", text: "Loading newer messages…" }));
      return;
    }
    const button = h("button", {
      type: "button", class: "button button-quiet button-small", id: "load-newer",
      text: state === "error" ? "Could not load newer messages. Try again" : "Load newer messages",
    });
    button.addEventListener("click", () => loadNewer());
    newerStatus.replaceChildren(button);
  }
  const initialNewerButton = $("#load-newer");
  if (initialNewerButton) initialNewerButton.addEventListener("click", () => loadNewer());

  /** Prepend the page before the oldest message shown, keeping the view where it was. */
  async function loadOlder() {
    if (loadingOlder || reloading || !hasMore || !oldestId) return;
    loadingOlder = true;
    setHistoryStatus("loading");
    list.setAttribute("aria-busy", "true");
    const asked = view;
    try {
      const page = await api(`/api/v1/rooms/${room.id}/messages?before=${oldestId}`);
      if (asked !== view) return;
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
    if (hasMore && scroller.scrollHeight <= scroller.clientHeight + EDGE_LOAD_PX) loadOlder();
  }

  /** Append the page after the newest message shown (a view opened around an older message). */
  async function loadNewer() {
    if (loadingNewer || reloading || !hasMoreAfter || !newestId) return;
    loadingNewer = true;
    setNewerStatus("loading");
    const asked = view;
    try {
      const page = await api(`/api/v1/rooms/${room.id}/messages?after=${newestId}`);
      if (asked !== view) return;
      const messages = page.messages || [];
      for (const m of messages) {
        insertMessage(m);
        liveBuffer.delete(m.id);
      }
      hasMoreAfter = Boolean(page.has_more) && messages.length > 0;
      layoutMessages(list);
      setNewerStatus(hasMoreAfter ? "more" : "done");
      if (!hasMoreAfter) {
        newerArrived = false;
        forgetAround();
        flushLive();
      }
    } catch (err) {
      console.warn("chorus: could not load newer messages", err);
      setNewerStatus("error");
      return;
    } finally {
      loadingNewer = false;
      updateJump();
    }
    if (hasMoreAfter && distanceToBottom() < EDGE_LOAD_PX) loadNewer();
  }

  /** The view now holds the latest messages: a reload should show them, not the old link. */
  function forgetAround() {
    if (/[?&]around=/.test(window.location.search) || window.location.hash) {
      window.history.replaceState(null, "", `/rooms/${room.id}`);
    }
  }

  /** Replace the view with the latest page (jump to latest; a gap too large to replay). */
  async function reloadLatest() {
    if (reloading) return;
    reloading = true;
    list.setAttribute("aria-busy", "true");
    try {
      const page = await api(`/api/v1/rooms/${room.id}/messages`);
      view += 1;
      // Pending echoes stay: they are still on their way.
      for (const child of Array.from(list.children)) {
        if (!child.classList.contains("msg-pending")) child.remove();
      }
      known.clear();
      newestId = 0;
      seqIds.clear();
      cursorSeq = 0;
      cursorId = 0;
      oldestId = 0;
      for (const m of page.messages || []) insertMessage(m);
      hasMore = Boolean(page.has_more);
      hasMoreAfter = false;
      newerArrived = false;
      unseen = 0;
      setHistoryStatus(hasMore ? "more" : "start");
      setNewerStatus("done");
      layoutMessages(list);
      forgetAround();
    } catch (err) {
      console.warn("chorus: could not load the latest messages", err);
      return;
    } finally {
      reloading = false;
      list.removeAttribute("aria-busy");
    }
    flushLive();
    scrollToBottom();
    stuckToBottom = true;
    updateJump();
    scheduleRead();
    if (hasMore && scroller.scrollHeight <= scroller.clientHeight + EDGE_LOAD_PX) loadOlder();
  }

  /**
   * After any (re)connect, and when the page wakes up: fetch what was sent while we were not
   * listening, in order, then send again what is still pending.
   */
  function resync() {
    if (resyncing) return resyncing.then(() => resync());
    resyncing = (async () => {
      try {
        if (hasMoreAfter) {
          // An older page is shown: newer messages load as the reader scrolls down.
        } else if (!newestId) {
          const page = await api(`/api/v1/rooms/${room.id}/messages`);
          receive(page.messages || []);
          if (!hasMore && page.has_more) {
            hasMore = true;
            setHistoryStatus("more");
          }
        } else {
          const missed = [];
          let after = cursorId || newestId;
          let tooMany = false;
          for (;;) {
            const page = await api(`/api/v1/rooms/${room.id}/messages?after=${after}&limit=${RESYNC_PAGE}`);
            const messages = page.messages || [];
            missed.push(...messages);
            if (missed.length > RESYNC_MAX) {
              tooMany = true;
              break;
            }
            if (!page.has_more || !messages.length) break;
            after = messages[messages.length - 1].id;
          }
          if (tooMany) await reloadLatest();
          else receive(missed);
        }
        lastSyncAt = Date.now();
      } catch (err) {
        console.warn("chorus: resync failed", err);
      }
      // Anything still waiting was never confirmed: send again (same client_id, so never twice).
      for (const entry of pending.values()) {
        if (!entry.inFlight && entry.el.dataset.state !== "failed") emitSend(entry);
      }
    })().finally(() => {
      resyncing = null;
    });
    return resyncing;
  }

  // A page that was hidden for a while, or a machine that slept, may have missed events
  // without the socket noticing: ask the server. Timers stop during a sleep, so a tick that
  // comes late tells us the machine slept.
  let hiddenSince = document.hidden ? Date.now() : 0;
  let lastTick = Date.now();
  function wake() {
    if (socket && socket.connected) resync();
  }
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      hiddenSince = Date.now();
      return;
    }
    const away = hiddenSince ? Date.now() - hiddenSince : 0;
    hiddenSince = 0;
    if (away > WAKE_AFTER_MS || Date.now() - lastSyncAt > WAKE_AFTER_MS) wake();
    scheduleRead();
  });
  window.addEventListener("focus", () => {
    if (Date.now() - lastSyncAt > WAKE_AFTER_MS) wake();
    scheduleRead();
  });
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) wake();
  });
  setInterval(() => {
    const now = Date.now();
    if (now - lastTick > WAKE_AFTER_MS) wake();
    lastTick = now;
  }, 10000);
  // A quiet room gives no later message to reveal a lost one: ask for its head now and then.
  setInterval(async () => {
    if (!socket || !socket.connected || document.hidden || hasMoreAfter || resyncing) return;
    try {
      const { heads } = await api("/api/v1/rooms/heads");
      if ((heads && heads[String(room.id)]) > cursorSeq) resync();
    } catch (err) {
      console.warn("chorus: head check failed", err);
    }
  }, HEADS_EVERY_MS);

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

  // ---------------------------------------------------------- composer
  const listbox = $("#mention-list");
  const mentions = listbox
    ? attachMentionAutocomplete({ input, listbox, getMembers: () => Array.from(members.values()), meId: me.id })
    : { handleKeydown: () => false, close() {} };

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
    mentions.close();
    // Sending from an older page: go to the latest first, where the message will be.
    if (hasMoreAfter) reloadLatest();
    const clientId = newClientId();
    const entry = { clientId, body, el: buildPending(body, clientId, ctx), inFlight: false, attempts: 0 };
    pending.set(clientId, entry);
    list.append(entry.el);
    removeEmptyState();
    layoutMessages(list);
    scrollToBottom();
    stuckToBottom = true;
    unseen = 0;
    updateJump();
    input.value = "";
    updateComposer();
    emitSend(entry);
  }

  function emitSend(entry) {
    if (!pending.has(entry.clientId) || entry.inFlight) return;
    if (!socket || !socket.connected) {
      setPendingState(entry.el, "waiting", "Not sent yet: waiting for the connection.");
      return;
    }
    entry.inFlight = true;
    entry.attempts += 1;
    setPendingState(entry.el, "sending", "Sending…");
    socket.timeout(SEND_TIMEOUT_MS).emit(
      "send", { room_id: room.id, body: entry.body, client_id: entry.clientId },
      (err, ack) => {
        entry.inFlight = false;
        if (!pending.has(entry.clientId)) return; // the broadcast got here first, or discarded
        if (err) {
          if (entry.attempts >= SEND_ATTEMPTS) {
            setPendingState(entry.el, "failed", "Not sent: the server did not answer.");
          } else {
            setPendingState(entry.el, "waiting", "Not confirmed yet: trying again…");
            setTimeout(() => emitSend(entry), RETRY_DELAY_MS);
          }
          return;
        }
        if (ack && ack.ok && ack.message) {
          receive([ack.message]);
          return;
        }
        const error = (ack && ack.error) || { message: "The message could not be sent." };
        if (PERMANENT_ERRORS.has(error.code)) {
          failSend(entry, error);
        } else {
          setPendingState(entry.el, "failed", `Not sent: ${error.message || "something went wrong."}`);
        }
      },
    );
  }

  /** A refused send that retrying cannot fix: drop the echo, give the text back, say why. */
  function failSend(entry, error) {
    entry.el.remove();
    pending.delete(entry.clientId);
    layoutMessages(list);
    input.value = input.value.trim() ? `${entry.body}\n${input.value}` : entry.body;
    updateComposer();
    showError(error.message || "The message could not be sent.");
    input.focus();
  }

  /** Drop a message that was not sent; the reader chose to. */
  function discard(entry) {
    entry.el.remove();
    pending.delete(entry.clientId);
    layoutMessages(list);
    updateJump();
    input.focus({ preventScroll: true });
  }

  list.addEventListener("click", (event) => {
    const button = event.target.closest(".msg-retry, .msg-discard");
    if (button) {
      const entry = pending.get(button.closest(".msg-pending").dataset.clientId);
      if (!entry || entry.inFlight) return;
      if (button.classList.contains("msg-discard")) {
        discard(entry);
      } else {
        entry.attempts = 0;
        emitSend(entry);
      }
      return;
    }
    // A message's time is its link: in this page, just go to it.
    const link = event.target.closest("a.msg-time");
    if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const el = link.closest(".msg[data-id]");
    if (!el) return;
    event.preventDefault();
    window.history.replaceState(null, "", `${window.location.pathname}${window.location.search}#${el.id}`);
    highlight(el);
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  input.addEventListener("keydown", (event) => {
    if (mentions.handleKeydown(event)) return;
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
    if (hasMoreAfter) return; // the bottom of an older page is not "now"
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

  // ---------------------------------------------------------- a linked message
  function highlight(el) {
    for (const other of $$(".msg-linked", list)) {
      if (other !== el) other.classList.remove("msg-linked");
    }
    el.classList.add("msg-linked");
    el.scrollIntoView({ block: "center" });
    el.classList.remove("msg-flash");
    void el.offsetWidth; // restart the animation
    el.classList.add("msg-flash");
    stuckToBottom = atLatest();
    updateJump();
  }

  /** Scroll to the message named by #message-<id> (or ?around=); true when one was asked for. */
  function showLinkedMessage() {
    const match = /^#message-(\d+)$/.exec(window.location.hash);
    const id = match ? Number(match[1]) : Number(data.around) || 0;
    if (!id) return false;
    const el = known.get(id);
    if (el) {
      highlight(el);
      return true;
    }
    // Not in this page: let the server open the room around it (once, never in a loop).
    if (new URLSearchParams(window.location.search).get("around") !== String(id)) {
      window.location.replace(`/rooms/${room.id}?around=${id}#message-${id}`);
      return true;
    }
    return false;
  }
  window.addEventListener("hashchange", showLinkedMessage);

  // ---------------------------------------------------------- socket events
  if (socket) {
    socket.on("message", (m) => {
      if (!m || m.room_id !== room.id) return;
      // A jump in seq: a broadcast was lost (a server died after storing it, Redis was
      // down). Catching up fetches the missed ones and this one, in order.
      if (!hasMoreAfter && cursorSeq && Number(m.seq) > cursorSeq + 1) resync();
      else receive([m]);
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
      members.set(event.user.id, event.user);
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
      members.delete(event.user.id);
      const item = memberList && $(`[data-user-id="${event.user.id}"]`, memberList);
      if (item) item.remove();
      if (event.user.id !== me.id) addNote(`${event.user.display_name} left #${room.name}`);
    });
    socket.on("room_membership", (event) => {
      if (!event || !event.room || event.room.id !== room.id || event.action !== "left") return;
      // Left from another tab: this page can no longer send or receive.
      left = true;
      input.disabled = true;
      mentions.close();
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
  setNewerStatus("more");
  if (!showLinkedMessage()) scrollToBottom();
  stuckToBottom = atLatest();
  updateJump();
  if (hasMore && scroller.scrollHeight <= scroller.clientHeight + EDGE_LOAD_PX) loadOlder();
  if (!window.matchMedia("(pointer: coarse)").matches) input.focus({ preventScroll: true });
}
