// The room's timeline on screen: one element per message held in the store, kept in id
// order, updated in place when a newer state arrives, scrolled as a reader expects.

import { $, $$, plural } from "../lib/dom.js";
import { buildMessage, decorateBody, layoutMessages } from "./render.js";
import { Timeline, revOf, withViewerFlags } from "./timeline.js";

const BOTTOM_SLACK_PX = 48;
const LIVE_BUFFER_MAX = 1000;

/**
 * elements: {scroller, list, jump, jumpLabel, emptyState (a selector, or null for none)}. ctx: {me, room}
 * (and inThread, the root id, for a thread's panel). hasMore / hasMoreAfter: what
 * the server-rendered page said about older and newer messages; initial: their states.
 * hooks.replaced(oldEl, newEl): a message was re-rendered. hooks.resolved(clientId): the
 * server has a pending message. hooks.read(): the reader may have seen something new.
 */
export function createTimelineView({ scroller, list, jump, jumpLabel, emptyState = "#empty-room" }, ctx, { hasMore, hasMoreAfter, initial }, hooks) {
  const { me, room } = ctx;
  const store = new Timeline();
  const elements = new Map(); // message id -> element shown
  // Live messages that arrived while the view was not showing the latest page (ids; states in store).
  const liveBuffer = new Set();

  const state = {
    store,
    elements,
    hasMore: Boolean(hasMore), // older messages beyond the first one shown
    hasMoreAfter: Boolean(hasMoreAfter), // newer ones beyond the last one shown
    newerArrived: false, // live messages are waiting below a view that is not caught up
    reloading: false,
    generation: 0, // bumped when the list is replaced: pages asked for before then are dropped
    unseen: 0,
    stuckToBottom: true,
    newestId: 0,
    oldestId: 0,
  };

  // ---------------------------------------------------------- the server-rendered messages
  // Their states come with the page (the editor needs a message's text, the cursor its rev).
  for (const m of initial || []) store.upsert(m);
  for (const el of $$(".msg[data-id]", list)) {
    const id = Number(el.dataset.id);
    elements.set(id, el);
    state.newestId = Math.max(state.newestId, id);
    state.oldestId = state.oldestId ? Math.min(state.oldestId, id) : id;
    const body = $(".msg-body", el);
    if (body) decorateBody(body, me);
  }
  layoutMessages(list);

  /** The highest rev among the messages shown: where the cursor can start. */
  function highestRev() {
    let top = 0;
    for (const s of store.states.values()) top = Math.max(top, revOf(s));
    return top;
  }

  // ---------------------------------------------------------- scrolling
  const distanceToBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight;
  const atBottom = () => distanceToBottom() <= BOTTOM_SLACK_PX;
  // "At the latest": at the bottom of a view that holds the newest messages.
  const atLatest = () => !state.hasMoreAfter && atBottom();
  const scrollToBottom = () => {
    scroller.scrollTop = scroller.scrollHeight;
  };

  function updateJump() {
    if (state.unseen > 0 && !state.hasMoreAfter) {
      jumpLabel.textContent = plural(state.unseen, "new message");
    } else if (state.hasMoreAfter && state.newerArrived) {
      jumpLabel.textContent = "New messages · Jump to latest";
    } else {
      jumpLabel.textContent = "Jump to latest";
    }
    jump.hidden = !(state.hasMoreAfter || state.unseen > 0 || !atBottom());
  }

  /**
   * Wire the jump button and the scroll listener. reloadLatest(): bring the latest page (the
   * view shows an older one); jumped(): after a jump (the caller's composer takes the focus).
   * At the latest, the reader has seen everything: hooks.read().
   */
  function wireScrolling({ reloadLatest, jumped }) {
    jump.addEventListener("click", () => {
      if (state.hasMoreAfter) {
        reloadLatest();
      } else {
        scrollToBottom();
        state.unseen = 0;
        updateJump();
      }
      jumped();
    });
    scroller.addEventListener("scroll", () => {
      state.stuckToBottom = atLatest();
      if (state.stuckToBottom) {
        state.unseen = 0;
        hooks.read();
      }
      updateJump();
    }, { passive: true });
  }

  // When the view shrinks (the composer grows, an error shows, the keyboard opens), a reader
  // who was at the bottom stays there.
  if (typeof ResizeObserver === "function") {
    new ResizeObserver(() => {
      if (state.stuckToBottom) scrollToBottom();
    }).observe(scroller);
  }

  // ---------------------------------------------------------- inserting and updating
  function removeEmptyState() {
    const empty = emptyState && $(emptyState);
    if (empty) empty.remove();
  }

  /** Put a message's element in its place by id (pending echoes always stay below). */
  function place(m) {
    const el = buildMessage(m, ctx);
    const stored = $$(":scope > .msg[data-id]", list);
    let next = null;
    for (let i = stored.length - 1; i >= 0 && Number(stored[i].dataset.id) > m.id; i -= 1) next = stored[i];
    let before = next || $(":scope > .msg-pending", list);
    // The day separator in front of the next message goes with it.
    if (next && next.previousElementSibling && next.previousElementSibling.classList.contains("day-sep")) {
      before = next.previousElementSibling;
    }
    list.insertBefore(el, before);
    elements.set(m.id, el);
    state.newestId = Math.max(state.newestId, m.id);
    state.oldestId = state.oldestId ? Math.min(state.oldestId, m.id) : m.id;
    removeEmptyState();
    return el;
  }

  /** Show the newer state of a message already on screen. */
  function rerender(m) {
    const old = elements.get(m.id);
    const el = buildMessage(m, ctx);
    for (const keep of ["msg-linked", "msg-cont"]) el.classList.toggle(keep, old.classList.contains(keep));
    old.replaceWith(el);
    elements.set(m.id, el);
    hooks.replaced(old, el, m);
  }

  /**
   * Take one state (a broadcast, a reply or a catch-up): hold it if it is newer than what is
   * held, and show it where it belongs. live: it just happened (kept for later when the view
   * is not at the latest page); otherwise it is dropped when the view does not reach it.
   * Returns "added", "updated" or null.
   */
  function take(m, { live = true, sameRev = false, change = null } = {}) {
    if (!m || m.room_id !== room.id) return null;
    const id = Number(m.id);
    if (m.client_id && m.author && m.author.id === me.id) hooks.resolved(m.client_id);
    const held = store.get(id);
    const flagged = withViewerFlags(m, held, me.username, change);
    if (!store.upsert(flagged, { sameRev })) return null;
    if (elements.has(id)) {
      rerender(flagged);
      return "updated";
    }
    if (liveBuffer.has(id)) return null;
    if (state.hasMoreAfter || state.reloading) {
      // A view around an older message keeps only what happens live (the pages below bring
      // the rest); a view being replaced by the latest page keeps everything for after it.
      if (state.hasMoreAfter ? live && id > state.newestId : true) {
        liveBuffer.add(id);
        while (liveBuffer.size > LIVE_BUFFER_MAX) {
          const first = liveBuffer.values().next().value;
          liveBuffer.delete(first);
          store.delete(first);
        }
        if (m.author.id !== me.id && !m.deleted) state.newerArrived = true;
      } else {
        store.delete(id);
      }
      return null;
    }
    if (state.hasMore && state.oldestId && id < state.oldestId) {
      store.delete(id); // older than the view: the page that holds it will bring its state
      return null;
    }
    place(flagged);
    return "added";
  }

  /** Take several states, then lay out and scroll once; follows them only if the reader was at the bottom. */
  function receive(states, options = {}, { follow = false } = {}) {
    const wasAtBottom = atBottom();
    let added = 0;
    let updated = 0;
    let fromOthers = 0;
    for (const m of states) {
      const result = take(m, options);
      if (result === "added") {
        added += 1;
        if (m.author.id !== me.id && !m.deleted) fromOthers += 1;
      } else if (result === "updated") {
        updated += 1;
      }
    }
    if (!added && !updated && !follow) {
      updateJump();
      return;
    }
    layoutMessages(list);
    if (wasAtBottom || follow) {
      scrollToBottom();
      if (added) state.unseen = 0;
    } else {
      state.unseen += fromOthers;
    }
    updateJump();
    if (added) hooks.read();
  }

  /** Once the view reaches the latest page: show what arrived meanwhile. */
  function flushLive() {
    if (state.hasMoreAfter || state.reloading || !liveBuffer.size) return;
    const waiting = Array.from(liveBuffer).sort((a, b) => a - b).map((id) => store.get(id)).filter(Boolean);
    liveBuffer.clear();
    for (const m of waiting) store.delete(m.id);
    receive(waiting, { live: true });
  }

  /** Forget every message shown (not the pending echoes nor the live ones waiting): a new page comes. */
  function clear() {
    state.generation += 1;
    for (const child of Array.from(list.children)) {
      if (!child.classList.contains("msg-pending")) child.remove();
    }
    for (const id of elements.keys()) if (!liveBuffer.has(id)) store.delete(id);
    elements.clear();
    state.newestId = 0;
    state.oldestId = 0;
  }

  /** A page of history: each message shown in its place, at the newest state known. */
  function addPage(messages) {
    for (const m of messages) {
      if (!m || m.room_id !== room.id) continue;
      liveBuffer.delete(m.id);
      const held = store.get(m.id);
      const best = held && revOf(held) > revOf(m) ? held : m;
      store.delete(m.id);
      store.upsert(best);
      if (!elements.has(m.id)) place(best);
      else if (best !== held) rerender(best);
    }
  }

  return {
    state,
    store,
    elements,
    liveBuffer,
    highestRev,
    atBottom,
    atLatest,
    distanceToBottom,
    scrollToBottom,
    updateJump,
    wireScrolling,
    receive,
    flushLive,
    clear,
    addPage,
    removeEmptyState,
    /** The state of a message shown, or null. */
    get(id) {
      return store.get(id) || null;
    },
    /** The element of a message shown, or undefined. */
    element(id) {
      return elements.get(Number(id));
    },
  };
}
