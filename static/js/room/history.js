// Paging through a room's history: older pages above, newer pages below a view opened
// around one message, the latest page on demand, and the states of what is shown again.

import { $, api, h } from "../lib/dom.js";
import { layoutMessages } from "./render.js";

const EDGE_LOAD_PX = 160;
const REFRESH_PAGE = 200;

/**
 * view: the timeline view (room/view.js). statusBoxes: {older, newer} elements.
 * hooks.reloaded(): the latest page replaced the view. hooks.read(): schedule a read marker.
 * A thread's panel pages through the thread instead of the room's main timeline:
 * pageUrl(query) gives the URL of a page, pageMessages(page) the messages of a page to show,
 * startNote() what stands above the first message (null: nothing), ids the ids of the
 * buttons ({older, newer}), keepUrl leaves the page's address alone.
 */
export function createHistory({
  view, room, list, scroller, statusBoxes, hooks,
  pageUrl = (query) => `/api/v1/rooms/${room.id}/messages${query ? `?${query}` : ""}`,
  pageMessages = (page) => page.messages || [],
  startNote = null,
  ids = { older: "load-older", newer: "load-newer" },
  keepUrl = false,
}) {
  const state = view.state;
  let loadingOlder = false;
  let loadingNewer = false;

  function setHistoryStatus(status) {
    const box = statusBoxes.older;
    if (status === "loading") {
      box.replaceChildren(h("p", { class: "muted history-loading", text: "Loading older messages…" }));
    } else if (status === "more" || status === "error") {
      const button = h("button", {
        type: "button",
        class: "button button-quiet button-small",
        id: status === "more" ? ids.older : null,
        text: status === "more" ? "Load older messages" : "Could not load older messages. Try again",
      });
      button.addEventListener("click", () => loadOlder());
      box.replaceChildren(button);
    } else if (startNote) {
      const note = startNote();
      box.replaceChildren(...(note ? [note] : []));
    } else {
      box.replaceChildren(h("p", { class: "room-start" },
        h("strong", { text: room.kind === "dm" ? `This is the very beginning of your conversation with ${room.label || "them"}.` : `This is the very beginning of #${room.name}.` }), h("br"),
        h("span", { class: "muted", text: room.topic || "Say hello!" })));
    }
  }

  function setNewerStatus(status) {
    const box = statusBoxes.newer;
    box.hidden = !state.hasMoreAfter;
    if (!state.hasMoreAfter) {
      box.replaceChildren();
      return;
    }
    if (status === "loading") {
      box.replaceChildren(h("p", { class: "muted history-loading", text: "Loading newer messages…" }));
      return;
    }
    const button = h("button", {
      type: "button", class: "button button-quiet button-small", id: ids.newer,
      text: status === "error" ? "Could not load newer messages. Try again" : "Load newer messages",
    });
    button.addEventListener("click", () => loadNewer());
    box.replaceChildren(button);
  }

  /** Prepend the page before the oldest message shown, keeping the view where it was. */
  async function loadOlder() {
    if (loadingOlder || state.reloading || !state.hasMore || !state.oldestId) return;
    loadingOlder = true;
    setHistoryStatus("loading");
    list.setAttribute("aria-busy", "true");
    const asked = state.generation;
    try {
      const page = await api(pageUrl(`before=${state.oldestId}`));
      if (asked !== state.generation) return;
      // Everything is added above what the reader sees: keep the message they were at in place.
      const anchorEl = view.element(state.oldestId);
      const anchor = $(".msg-body", anchorEl) || anchorEl;
      const offset = () => anchor.getBoundingClientRect().top - scroller.getBoundingClientRect().top;
      const before = offset();
      const messages = pageMessages(page);
      view.addPage(messages);
      state.hasMore = Boolean(page.has_more) && (page.messages || []).length > 0;
      setHistoryStatus(state.hasMore ? "more" : "start");
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
    fillView();
  }

  /** Too few messages to scroll yet: keep filling the view. */
  function fillView() {
    if (state.hasMore && scroller.scrollHeight <= scroller.clientHeight + EDGE_LOAD_PX) loadOlder();
  }

  /** Append the page after the newest message shown (a view opened around an older message). */
  async function loadNewer() {
    if (loadingNewer || state.reloading || !state.hasMoreAfter || !state.newestId) return;
    loadingNewer = true;
    setNewerStatus("loading");
    const asked = state.generation;
    try {
      const page = await api(pageUrl(`after=${state.newestId}`));
      if (asked !== state.generation) return;
      const messages = pageMessages(page);
      view.addPage(messages);
      state.hasMoreAfter = Boolean(page.has_more) && messages.length > 0;
      layoutMessages(list);
      setNewerStatus(state.hasMoreAfter ? "more" : "done");
      if (!state.hasMoreAfter) {
        state.newerArrived = false;
        forgetAround();
        view.flushLive();
      }
    } catch (err) {
      console.warn("chorus: could not load newer messages", err);
      setNewerStatus("error");
      return;
    } finally {
      loadingNewer = false;
      view.updateJump();
    }
    if (state.hasMoreAfter && view.distanceToBottom() < EDGE_LOAD_PX) loadNewer();
  }

  /** The view now holds the latest messages: a reload should show them, not the old link. */
  function forgetAround() {
    if (keepUrl) return;
    if (/[?&]around=/.test(window.location.search) || window.location.hash) {
      // An open thread stays in the address.
      const params = new URLSearchParams(window.location.search);
      params.delete("around");
      const query = params.toString();
      window.history.replaceState(null, "", `/rooms/${room.id}${query ? `?${query}` : ""}`);
    }
  }

  /** Replace the view with the latest page (jump to latest; a gap too large to replay). */
  async function reloadLatest() {
    if (state.reloading) return;
    state.reloading = true;
    list.setAttribute("aria-busy", "true");
    try {
      const page = await api(pageUrl(""));
      view.clear();
      view.addPage(pageMessages(page));
      state.hasMore = Boolean(page.has_more);
      state.hasMoreAfter = false;
      state.newerArrived = false;
      state.unseen = 0;
      setHistoryStatus(state.hasMore ? "more" : "start");
      setNewerStatus("done");
      layoutMessages(list);
      forgetAround();
    } catch (err) {
      console.warn("chorus: could not load the latest messages", err);
      return;
    } finally {
      state.reloading = false;
      list.removeAttribute("aria-busy");
    }
    view.flushLive();
    view.scrollToBottom();
    state.stuckToBottom = true;
    view.updateJump();
    hooks.reloaded();
    hooks.read();
    fillView();
  }

  /**
   * Fetch again the states of every message shown (a view opened around an older message
   * that missed too many changes to replay them): pages from the oldest shown to the newest.
   */
  async function refreshShown() {
    if (!state.oldestId) return;
    const asked = state.generation;
    let after = state.oldestId - 1;
    const newest = state.newestId;
    for (;;) {
      const page = await api(pageUrl(`after=${after}&limit=${REFRESH_PAGE}`));
      if (asked !== state.generation) return;
      const messages = pageMessages(page).filter((m) => m.id <= newest);
      view.receive(messages, { live: false, sameRev: true });
      const last = (page.messages || []).at(-1);
      if (!page.has_more || !last || last.id >= newest) return;
      after = last.id;
    }
  }

  const initialOlder = ids.older && $(`#${ids.older}`);
  if (initialOlder) initialOlder.addEventListener("click", () => loadOlder());
  const initialNewer = ids.newer && $(`#${ids.newer}`);
  if (initialNewer) initialNewer.addEventListener("click", () => loadNewer());

  scroller.addEventListener("scroll", () => {
    if (scroller.scrollTop < EDGE_LOAD_PX) loadOlder();
    if (state.hasMoreAfter && view.distanceToBottom() < EDGE_LOAD_PX) loadNewer();
  }, { passive: true });

  return { loadOlder, loadNewer, reloadLatest, refreshShown, fillView, setNewerStatus, setHistoryStatus };
}
