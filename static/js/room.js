// Entry point for a room page: wires the timeline view, catching up, the outbox, history
// paging, the composer, the message actions and the thread panel to the socket. Each lives
// in room/. Messages are routed by room/thread.js: the main timeline gets top-level
// messages and replies also sent to the room, the panel the open thread's root and replies.

import { $, $$, api, h, newClientId, plural, readBootstrap } from "./lib/dom.js";
import { dmName, findWildcards, joinNames } from "./lib/people.js";
import { adoptDots, presenceDot } from "./lib/presence.js";
import { setRoomUnread, startShell } from "./lib/shell.js";
import { localizeTimes } from "./lib/time.js";
import { attachMessageActions } from "./room/actions.js";
import { createComposer } from "./room/composer.js";
import { createHistory } from "./room/history.js";
import { createOutbox } from "./room/outbox.js";
import { createQuoteDraft } from "./room/quote.js";
import { audienceText, buildNote, buildPending, layoutMessages, setPendingState } from "./room/render.js";
import { createSync } from "./room/sync.js";
import { route, splitStates, threadToOpen } from "./room/thread.js";
import { createThreadPanel } from "./room/threadpanel.js";
import { RevCursor } from "./room/timeline.js";
import { createTypingIndicator } from "./room/typing.js";
import { createTimelineView } from "./room/view.js";

const WAKE_AFTER_MS = 30000; // hidden (or asleep) this long: ask the server what was missed
const HEADS_EVERY_MS = 60000; // how often a watched page checks the room's latest rev

const data = readBootstrap();
const me = data.me;
const room = data.room;
if (room && room.kind === "dm") room.label = dmName(room, me.id); // a DM has no name of its own
const shell = startShell({ me, currentRoomId: room ? room.id : null });
localizeTimes(document);
adoptDots(document);

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
  const members = new Map((data.members || []).map((user) => [user.id, user]));
  let lastSyncAt = Date.now();
  let lastReadSent = 0;
  let readTimer = null;
  let actions = null;
  let outbox = null;
  let panel = null;
  let composerLeft = false;

  // ---------------------------------------------------------- the timeline
  const view = createTimelineView(
    { scroller, list, jump: $("#jump-latest"), jumpLabel: $("#jump-latest-label") },
    ctx,
    { hasMore: data.has_more, hasMoreAfter: data.has_more_after, initial: data.messages },
    {
      replaced: (old, el, state) => actions && actions.replaced(old, el, state),
      resolved: (clientId) => {
        const entry = outbox && outbox.resolve(clientId);
        if (entry) entry.el.remove();
      },
      read: () => scheduleRead(),
    },
  );
  const state = view.state;

  // ---------------------------------------------------------- catching up
  // The page holds every change up to the newest rev it was rendered with; the first connect
  // asks for anything after that.
  const cursor = new RevCursor(view.highestRev());
  const history = createHistory({
    view, room, list, scroller,
    statusBoxes: { older: $("#history-status"), newer: $("#newer-status") },
    hooks: {
      reloaded: () => cursor.advanceTo(view.highestRev()),
      read: () => scheduleRead(),
    },
  });
  const sync = createSync({
    cursor,
    fetchChanges: (since, limit) => api(`/api/v1/rooms/${room.id}/messages?since=${since}&limit=${limit}`),
    apply: (states) => {
      // The catch-up is room-wide: each change goes where it is shown.
      const where = splitStates(states, panel ? panel.rootId : 0);
      if (where.main.length) view.receive(where.main, { live: false, sameRev: true });
      if (where.panel.length && panel) panel.receive(where.panel, { live: false, sameRev: true });
      for (const m of states) quote.noteState(m);
    },
    // Too much missed: the latest page (or, for a view around an older message, what it shows) again.
    reset: () => {
      if (panel) panel.reload();
      return state.hasMoreAfter ? history.refreshShown() : history.reloadLatest();
    },
    done: () => {
      lastSyncAt = Date.now();
    },
  });

  /** A change that just happened: show it where it belongs, then move the cursor by its rev. */
  function live(message, { reply = false } = {}) {
    if (!message || message.room_id !== room.id) return;
    if (message.client_id && message.author && message.author.id === me.id) {
      // My own send is stored, wherever it is shown (a reply to a thread no longer open too).
      const entry = outbox && outbox.resolve(message.client_id);
      if (entry) entry.el.remove();
    }
    const options = { live: true, sameRev: reply, change: message.change || null };
    const where = route(message, panel ? panel.rootId : 0);
    if (where.main) view.receive([message], options);
    if (where.panel) panel.receive([message], options);
    quote.noteState(message);
    sync.noteRev(message.rev);
  }

  /** After any (re)connect: fetch what was missed, then send again what is still pending. */
  async function resync() {
    await sync.catchUp();
    outbox.resendWaiting();
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
    if (panel) panel.scheduleRead();
  });
  window.addEventListener("focus", () => {
    if (Date.now() - lastSyncAt > WAKE_AFTER_MS) wake();
    scheduleRead();
    if (panel) panel.scheduleRead();
  });
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) wake();
  });
  setInterval(() => {
    const now = Date.now();
    if (now - lastTick > WAKE_AFTER_MS) wake();
    lastTick = now;
  }, 10000);
  // A quiet room gives no later change to reveal a lost one: ask for its head now and then.
  setInterval(async () => {
    if (!socket || !socket.connected || document.hidden || sync.busy) return;
    try {
      const { heads } = await api("/api/v1/rooms/heads");
      sync.checkHead(heads && heads[String(room.id)]);
    } catch (err) {
      console.warn("chorus: head check failed", err);
    }
  }, HEADS_EVERY_MS);

  // ---------------------------------------------------------- scrolling
  view.wireScrolling({
    reloadLatest: () => history.reloadLatest(),
    jumped: () => composer.focus({ preventScroll: true }),
  });

  // ---------------------------------------------------------- read marker
  function scheduleRead() {
    clearTimeout(readTimer);
    readTimer = setTimeout(markRead, 400);
  }

  function markRead() {
    if (composerLeft || !socket || !socket.connected || document.visibilityState !== "visible") return;
    if (!view.atBottom() || state.newestId <= lastReadSent) return;
    const messageId = state.newestId;
    lastReadSent = messageId;
    socket.emit("read", { room_id: room.id, message_id: messageId }, (ack) => {
      if (!ack || !ack.ok) lastReadSent = 0; // try again on the next occasion
    });
  }

  // ---------------------------------------------------------- typing
  const typing = createTypingIndicator({
    socket,
    roomId: room.id,
    meId: me.id,
    lines: { main: $("#composer-typing"), thread: $("#thread-typing") },
    threadRoot: () => (panel && panel.isOpen ? panel.rootId : 0),
  });

  // ---------------------------------------------------------- @room, @all, @everyone, @here
  // In a big room these notify many people: ask first (above data-wildcard-warn members).
  const wildcardDialog = $("#wildcard-dialog");
  const warnAbove = Number($("#room").dataset.wildcardWarn) || 20;
  function confirmWildcards(body) {
    const found = findWildcards(body);
    if (!found.length || !(ctx.room.member_count > warnAbove) || !wildcardDialog) return true;
    const names = joinNames(found.map((name) => `@${name}`));
    const who = found.every((name) => name === "here")
      ? `everyone active in ${ctx.room.kind === "dm" ? "this conversation" : `#${room.name}`}`
      : `all ${ctx.room.member_count} members of ${ctx.room.kind === "dm" ? "this conversation" : `#${room.name}`}`;
    $("#wildcard-dialog-text").textContent = `${names} will notify ${who}. Send it anyway?`;
    return new Promise((resolve) => {
      wildcardDialog.returnValue = "";
      wildcardDialog.addEventListener("close", () => resolve(wildcardDialog.returnValue === "send"), { once: true });
      wildcardDialog.showModal();
      $("#wildcard-send").focus();
    });
  }

  // ---------------------------------------------------------- sending
  outbox = createOutbox({
    roomId: room.id,
    emit: (payload, timeout, callback) => socket.timeout(timeout).emit("send", payload, callback),
    connected: () => Boolean(socket && socket.connected),
    show: (entry, pendingState, text) => setPendingState(entry.el, pendingState, text),
    confirmed: (message) => live(message, { reply: true }),
    refused: (entry, error) => {
      const shownIn = entry.el.parentElement;
      entry.el.remove();
      if (shownIn) layoutMessages(shownIn);
      // A thread reply goes back to the thread's composer.
      (entry.composer || composer).giveBack(entry.body, error.message || "The message could not be sent.");
    },
  });

  function send(body) {
    // Sending from an older page: go to the latest first, where the message will be.
    if (state.hasMoreAfter) history.reloadLatest();
    const clientId = newClientId();
    const el = buildPending(body, clientId, ctx);
    list.append(el);
    view.removeEmptyState();
    layoutMessages(list);
    view.scrollToBottom();
    state.stuckToBottom = true;
    state.unseen = 0;
    view.updateJump();
    const fields = quote.id ? { quote_of: quote.id } : {};
    quote.clear();
    outbox.add(clientId, body, { el, fields });
  }

  const composer = createComposer(
    {
      form: $("#composer"),
      input: $("#composer-input"),
      sendButton: $("#composer-send"),
      errorBox: $("#composer-error"),
      counter: $("#composer-count"),
      listbox: $("#mention-list"),
    },
    {
      maxLength: Number(data.max_length) || Number($("#composer-input").maxLength) || 4000,
      meId: me.id,
      getMembers: () => Array.from(members.values()),
      onSend: send,
      onEditLast: () => actions.editLast(),
      onDraft: (text) => typing.draft(text, 0),
      confirmSend: confirmWildcards,
    },
  );

  // The quote-reply being written, above the composer.
  const quote = createQuoteDraft({
    box: $("#composer-quote"),
    onCancel: () => composer.focus({ preventScroll: true }),
  });

  list.addEventListener("click", (event) => {
    const plainClick = event.button === 0 && !event.metaKey && !event.ctrlKey && !event.shiftKey && !event.altKey;
    // A root's summary and a reply's "replied to a thread" open the thread beside the room.
    const threadLink = event.target.closest("a.thread-summary, a.msg-thread-link");
    if (threadLink && plainClick && panel) {
      event.preventDefault();
      panel.open(Number(threadLink.dataset.threadRoot));
      return;
    }
    // A quote links to the quoted message: scroll to it when it is on screen.
    const quoteLink = event.target.closest("a.msg-quote");
    if (quoteLink && plainClick) {
      const quoted = view.element(quoteLink.dataset.quoteId);
      if (quoted) {
        event.preventDefault();
        highlight(quoted);
      }
      return;
    }
    const button = event.target.closest(".msg-retry, .msg-discard");
    if (button) {
      const clientId = button.closest(".msg-pending").dataset.clientId;
      if (button.classList.contains("msg-discard")) {
        const entry = outbox.discard(clientId);
        if (!entry) return;
        entry.el.remove();
        layoutMessages(list);
        view.updateJump();
        composer.focus({ preventScroll: true });
      } else {
        outbox.retry(clientId);
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

  // ---------------------------------------------------------- message actions
  actions = attachMessageActions({
    list, view, ctx, socket, composer,
    applyReply: (message) => live(message, { reply: true }),
    onReply: (message) => panel && panel.open(threadToOpen(message)),
    onQuote: (message) => {
      quote.set(message);
      composer.focus({ preventScroll: true });
    },
  });

  // ---------------------------------------------------------- the thread panel
  panel = createThreadPanel({
    ctx, socket, outbox,
    threads: shell.threads,
    getMembers: () => Array.from(members.values()),
    maxLength: Number(data.max_length) || 4000,
    applyReply: (message) => live(message, { reply: true }),
    confirmSend: confirmWildcards,
    hooks: {
      opened: (rootId) => {
        typing.stopOthers(rootId);
        typing.render();
      },
      closed: () => {
        typing.stopOthers(0);
        typing.render();
        composer.focus({ preventScroll: true });
      },
      draft: (text, rootId) => typing.draft(text, rootId),
    },
  });
  shell.threads.setOpener((roomId, rootId) => {
    if (roomId !== room.id) return false;
    panel.open(rootId);
    return true;
  });

  // ---------------------------------------------------------- closing a DM
  const closeDm = $("#close-dm");
  if (closeDm) {
    closeDm.addEventListener("click", async () => {
      closeDm.disabled = true;
      try {
        await api(`/api/v1/rooms/${room.id}/members/me`, { method: "DELETE" });
        window.location.assign("/");
      } catch (err) {
        closeDm.disabled = false;
        composer.showError(err.message || "Could not close the conversation.");
      }
    });
  }

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
    if (state.hasMoreAfter) return; // the bottom of an older page is not "now"
    const wasAtBottom = view.atBottom();
    list.append(buildNote(text));
    layoutMessages(list);
    if (wasAtBottom) view.scrollToBottom();
  }

  function memberItem(user) {
    return h("li", { dataset: { userId: user.id, profile: user.username } },
      h("span", { class: `avatar avatar-sm hue-${user.id % 8}`, "aria-hidden": "true", text: user.display_name.slice(0, 1).toUpperCase() }),
      presenceDot(user.id),
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
    state.stuckToBottom = view.atLatest();
    view.updateJump();
  }

  /** Scroll to the message named by #message-<id> (or ?around=); true when one was asked for. */
  function showLinkedMessage() {
    const match = /^#message-(\d+)$/.exec(window.location.hash);
    const id = match ? Number(match[1]) : Number(data.around) || 0;
    if (!id) return false;
    const el = view.element(id);
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
    socket.on("message", (m) => live(m));
    socket.on("message_updated", (m) => live(m));
    socket.on("notification", (n) => {
      if (!n || n.room_id !== room.id || !n.message) return;
      const el = view.element(n.message.id) || panel.element(n.message.id);
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
      if (room.kind === "dm") return; // a closed DM is only hidden: writing in it brings it back
      // Left from another tab: this page can no longer send or receive.
      composerLeft = true;
      composer.leave("You left this room. Rejoin it from the room list to keep chatting.");
    });
    shell.onConnect(() => {
      resync();
      scheduleRead();
      panel.scheduleRead();
    });
  }

  // ---------------------------------------------------------- first paint
  setRoomUnread(room.id, 0);
  history.setNewerStatus("more");
  if (!showLinkedMessage()) view.scrollToBottom();
  state.stuckToBottom = view.atLatest();
  view.updateJump();
  history.fillView();
  // A thread link (/rooms/<id>?thread=<root id>) opens the thread beside the room.
  const linkedThread = Number(new URLSearchParams(window.location.search).get("thread")) || 0;
  // "Copy link" in a thread gives ?thread=<root>#thread-message-<reply>: open at that reply.
  const linkedReply = /^#thread-message-(\d+)$/.exec(window.location.hash);
  if (linkedThread) panel.open(linkedThread, { scrollTo: linkedReply ? Number(linkedReply[1]) : 0 });
  else if (!window.matchMedia("(pointer: coarse)").matches) composer.focus({ preventScroll: true });
}
