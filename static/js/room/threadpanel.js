// A thread in the side panel (the whole screen on a phone): its root, its replies live, its
// own composer ("also send to the room" per reply), paging back, an unread marker and a
// Follow toggle. The room page routes messages here (room/thread.js); the timeline view,
// history paging, composer and message actions are the room's own modules.

import { $, api, h, newClientId } from "../lib/dom.js";
import { attachMessageActions } from "./actions.js";
import { createComposer } from "./composer.js";
import { createHistory } from "./history.js";
import { buildMessage, buildPending, layoutMessages } from "./render.js";
import { ReadMarker, firstUnreadId, rootIdOf, standingOf, summaryOf, threadHref } from "./thread.js";
import { revOf, withViewerFlags } from "./timeline.js";
import { createTimelineView } from "./view.js";

/**
 * ctx: the room page's {me, room}. socket, outbox: the room's. threads: the followed list
 * (lib/threads.js). getMembers(): for mentions. applyReply(state): a server reply to show
 * (routed like any change). hooks.opened(rootId) / hooks.closed(): the panel came or went;
 * hooks.draft(text, rootId): the reply box changed (for typing); confirmSend(body): as the composer's.
 */
export function createThreadPanel({ ctx, socket, outbox, threads, getMembers, maxLength, applyReply, hooks = {}, confirmSend = null }) {
  const panel = $("#thread-panel");
  const scroller = $("#thread-timeline");
  const list = $("#thread-list");
  const rootBox = $("#thread-root");
  const countLine = $("#thread-count-line");
  const followButton = $("#thread-follow");
  const also = $("#thread-also");
  const tctx = { me: ctx.me, room: ctx.room, inThread: 0 };
  let rootId = 0;
  let root = null;
  let rootEl = null;
  let following = false;
  let marker = new ReadMarker(0);
  let unreadFrom = null; // the read marker when the thread was opened: "New" stays where it was
  let readTimer = null;
  let opening = 0; // bumped at each open: answers for a thread no longer shown are dropped

  const view = createTimelineView(
    { scroller, list, jump: $("#thread-jump"), jumpLabel: $("#thread-jump-label"), emptyState: null },
    tctx,
    { hasMore: false, hasMoreAfter: false, initial: [] },
    {
      replaced: (old, el, state) => actions.replaced(old, el, state),
      resolved: (clientId) => {
        const entry = outbox.resolve(clientId);
        if (entry) entry.el.remove();
      },
      read: () => scheduleRead(),
    },
  );
  const state = view.state;

  const history = createHistory({
    view, room: ctx.room, list, scroller,
    statusBoxes: { older: $("#thread-history-status"), newer: $("#thread-newer-status") },
    hooks: { reloaded: () => {}, read: () => scheduleRead() },
    pageUrl: (query) => `/api/v1/rooms/${ctx.room.id}/messages?thread=${rootId}${query ? `&${query}` : ""}`,
    pageMessages: (page) => {
      if (page.root && Number(page.root.id) === rootId) setRoot(page.root);
      // Older unread replies may come with the page: "New" moves up to the first of them once it is shown.
      if (unreadFrom !== null) queueMicrotask(() => placeUnreadMarker(unreadFrom));
      return (page.messages || []).filter((m) => rootIdOf(m) === rootId);
    },
    startNote: () => null,
    ids: { older: "thread-load-older", newer: "thread-load-newer" },
    keepUrl: true,
  });

  // ---------------------------------------------------------- the root, above the replies
  function showCount() {
    const summary = root && summaryOf(root.thread);
    countLine.textContent = summary ? summary.label : "No replies yet";
  }

  /** Hold the root's newer state (the higher rev wins) and draw it. */
  function setRoot(m, { sameRev = false, change = null } = {}) {
    if (!m || Number(m.id) !== rootId) return false;
    if (root && (revOf(m) < revOf(root) || (revOf(m) === revOf(root) && !sameRev))) return false;
    root = withViewerFlags(m, root, ctx.me.username, change);
    const el = buildMessage(root, tctx);
    el.classList.add("thread-root-msg");
    if (rootEl) {
      const old = rootEl;
      old.replaceWith(el);
      rootEl = el;
      actions.replaced(old, el, root);
    } else {
      rootBox.replaceChildren(el);
      rootEl = el;
    }
    composer.input.disabled = Boolean(root.deleted);
    composer.input.placeholder = root.deleted ? "The thread's first message was deleted" : "Reply…";
    showCount();
    return true;
  }

  // ---------------------------------------------------------- following
  function setFollowing(value) {
    following = Boolean(value);
    followButton.textContent = following ? "Following" : "Follow";
    followButton.setAttribute("aria-pressed", String(following));
    followButton.title = following ? "Stop getting notified of replies" : "Get notified of every reply";
  }

  followButton.addEventListener("click", async () => {
    const asked = rootId;
    const want = !following;
    followButton.disabled = true;
    try {
      const reply = await api(`/api/v1/threads/${asked}/follow`, { method: want ? "PUT" : "DELETE" });
      if (asked !== rootId) return;
      setFollowing(reply.following);
      if (reply.following) {
        // What is on screen now is read: the list then counts only what comes after.
        await markRead();
        threads.refresh();
      } else {
        threads.list.remove(asked);
        threads.render();
      }
    } catch (err) {
      console.warn("chorus: could not change following", err);
    } finally {
      followButton.disabled = false;
    }
  });

  // ---------------------------------------------------------- the unread marker
  function placeUnreadMarker(lastReadId) {
    for (const old of list.querySelectorAll(".unread-sep")) old.remove();
    if (lastReadId === null) return null;
    const first = firstUnreadId(view.store.values(), lastReadId, ctx.me.id);
    const el = first && view.element(first);
    if (!el) return null;
    const sep = h("li", { class: "unread-sep", role: "separator", "aria-label": "New replies" }, h("span", { text: "New" }));
    const before = el.previousElementSibling && el.previousElementSibling.classList.contains("day-sep")
      ? el.previousElementSibling : el;
    list.insertBefore(sep, before);
    return sep;
  }

  function scheduleRead() {
    clearTimeout(readTimer);
    readTimer = setTimeout(markRead, 400);
  }

  /** The newest reply is on screen: tell the server (only for a thread I follow: it has a marker). */
  function markRead() {
    if (!rootId || panel.hidden || !following || document.visibilityState !== "visible") return Promise.resolve();
    if (state.hasMoreAfter || !view.atBottom()) return Promise.resolve();
    const newest = state.newestId;
    if (!newest || !marker.shouldSend(newest)) return Promise.resolve();
    marker.sent = newest;
    const asked = rootId;
    return api(`/api/v1/threads/${asked}/read`, { method: "POST", body: { message_id: newest } })
      .then((reply) => {
        if (asked === rootId) marker.moveTo(reply.last_read_id);
        if (threads.list.applyRead(reply)) threads.render();
      })
      .catch((err) => {
        marker.sent = 0;
        console.warn("chorus: could not mark the thread read", err);
      });
  }

  // ---------------------------------------------------------- scrolling
  view.wireScrolling({
    reloadLatest: () => history.reloadLatest(),
    jumped: () => composer.focus({ preventScroll: true }),
  });

  // ---------------------------------------------------------- replying
  function send(body) {
    if (!rootId) return;
    if (state.hasMoreAfter) history.reloadLatest();
    const clientId = newClientId();
    const el = buildPending(body, clientId, tctx);
    list.append(el);
    layoutMessages(list);
    view.scrollToBottom();
    state.stuckToBottom = true;
    state.unseen = 0;
    view.updateJump();
    const fields = { thread_root_id: rootId };
    if (also.checked) fields.also_in_room = true;
    also.checked = false; // per reply
    outbox.add(clientId, body, { el, fields, composer });
  }

  const composer = createComposer(
    {
      form: $("#thread-composer"),
      input: $("#thread-input"),
      sendButton: $("#thread-send"),
      errorBox: $("#thread-error"),
      counter: $("#thread-char-count"),
      listbox: $("#thread-mention-list"),
    },
    {
      maxLength, meId: ctx.me.id, getMembers, onSend: send, onEditLast: () => actions.editLast(), confirmSend,
      onDraft: (text) => hooks.draft && rootId && hooks.draft(text, rootId),
    },
  );

  // The root is drawn above the list: the actions see it as one of the thread's messages.
  const actionView = {
    get: (id) => (Number(id) === rootId ? root : view.get(id)),
    element: (id) => (Number(id) === rootId ? rootEl : view.element(id)),
    elements: view.elements,
  };
  const actions = attachMessageActions({
    list: $("#thread-messages"),
    view: actionView,
    ctx: tctx,
    socket,
    composer,
    applyReply,
    idPrefix: "thread-",
    hrefOf: (id) => `${threadHref(ctx.room.id, rootId)}#thread-message-${id}`,
  });

  // ---------------------------------------------------------- opening and closing
  function setAddress(id, { keepHash = false } = {}) {
    const params = new URLSearchParams(window.location.search);
    if (id) params.set("thread", String(id));
    else params.delete("thread");
    const query = params.toString();
    // A link to a reply of a thread means nothing once another (or none) is open.
    const hash = /^#thread-message-/.test(window.location.hash) && !keepHash ? "" : window.location.hash;
    window.history.replaceState(null, "", `${window.location.pathname}${query ? `?${query}` : ""}${hash}`);
  }

  function forget() {
    view.clear();
    view.liveBuffer.clear();
    view.store.clear();
    for (const pending of Array.from(list.children)) pending.remove();
    state.hasMore = false;
    state.hasMoreAfter = false;
    state.unseen = 0;
    state.newerArrived = false;
    root = null;
    rootEl = null;
    unreadFrom = null;
    rootBox.replaceChildren();
    history.setHistoryStatus("start");
    history.setNewerStatus("done");
    view.updateJump();
  }

  /** Open the thread of rootId (a reply's id opens its root's, as the server reads it). */
  async function open(id, { focus = true, scrollTo = 0 } = {}) {
    const wanted = Number(id) || 0;
    if (!wanted) return;
    if (wanted === rootId && !panel.hidden) {
      if (focus) composer.focus({ preventScroll: true });
      return;
    }
    const ticket = (opening += 1);
    forget();
    rootId = wanted;
    tctx.inThread = wanted;
    marker = new ReadMarker(0);
    setFollowing(false);
    composer.showError("");
    also.checked = false;
    panel.hidden = false;
    document.body.classList.add("thread-open");
    countLine.textContent = "Loading…";
    setAddress(wanted, { keepHash: Boolean(scrollTo) });
    if (hooks.opened) hooks.opened(wanted);
    state.reloading = true; // live replies wait until the first page is shown
    let page;
    try {
      page = await api(`/api/v1/rooms/${ctx.room.id}/messages?thread=${wanted}`);
    } catch (err) {
      if (ticket !== opening) return;
      state.reloading = false;
      countLine.textContent = err && err.status === 404 ? "This thread is not in this room." : "Could not load the thread. Try again.";
      return;
    }
    if (ticket !== opening) return;
    // The server reads a reply's id as its root's thread.
    if (page.root && Number(page.root.id) !== rootId) {
      rootId = Number(page.root.id);
      tctx.inThread = rootId;
      setAddress(rootId, { keepHash: Boolean(scrollTo) });
    }
    setRoot(page.root, { sameRev: true });
    view.addPage((page.messages || []).filter((m) => rootIdOf(m) === rootId));
    state.hasMore = Boolean(page.has_more);
    state.reloading = false;
    history.setHistoryStatus(state.hasMore ? "more" : "start");
    layoutMessages(list);
    view.flushLive();
    // The page says where I stand in this thread, followed or not, however many others I follow.
    const standing = standingOf(page.follow);
    setFollowing(standing.following);
    marker = new ReadMarker(standing.lastReadId);
    unreadFrom = standing.unreadFrom;
    const sep = placeUnreadMarker(unreadFrom);
    const target = scrollTo ? view.element(scrollTo) : null;
    if (target) {
      target.classList.add("msg-linked");
      target.scrollIntoView({ block: "center" });
    }
    else if (sep) sep.scrollIntoView({ block: "start" });
    else view.scrollToBottom();
    state.stuckToBottom = view.atLatest();
    view.updateJump();
    history.fillView();
    scheduleRead();
    if (focus && !window.matchMedia("(pointer: coarse)").matches) composer.focus({ preventScroll: true });
  }

  function close() {
    if (!rootId && panel.hidden) return;
    opening += 1;
    forget();
    rootId = 0;
    tctx.inThread = 0;
    panel.hidden = true;
    document.body.classList.remove("thread-open");
    setAddress(0);
    if (hooks.closed) hooks.closed();
  }

  $("#thread-close").addEventListener("click", () => close());
  panel.addEventListener("keydown", (event) => {
    // Escape closes the panel unless something inside it (an editor, the mention list) used it.
    if (event.key === "Escape" && !event.defaultPrevented && !event.target.closest(".msg-editor")) close();
  });

  /**
   * States routed to this thread (its root and replies): the root is drawn above, the
   * replies in the list. Options as view.receive's.
   */
  function receive(states, options = {}) {
    if (!rootId) return;
    const replies = [];
    for (const m of states) {
      if (Number(m.id) === rootId) setRoot(m, options);
      else if (rootIdOf(m) === rootId) {
        replies.push(m);
        if (m.author && m.author.id === ctx.me.id && !m.deleted && options.live) setFollowing(true); // replying follows
      }
    }
    if (replies.length) view.receive(replies, options);
  }

  return {
    open,
    close,
    receive,
    get rootId() {
      return rootId;
    },
    get isOpen() {
      return !panel.hidden;
    },
    /** Reload the shown thread (a catch-up found too much to replay). */
    reload() {
      if (!rootId) return;
      const id = rootId;
      rootId = 0;
      open(id, { focus: false });
    },
    /** After a reconnect or wake-up: read the marker again when the newest reply is on screen. */
    scheduleRead,
    element: (id) => (Number(id) === rootId ? rootEl : view.element(id)),
  };
}
