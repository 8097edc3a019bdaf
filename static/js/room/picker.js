// The emoji picker: search by name, a "recently used" row, every emoji the server accepts.
// The list (GET /api/v1/emoji) is fetched the first time the picker opens, then kept.

import { h } from "../lib/dom.js";
import { recentEmoji, rememberEmoji, searchEmoji } from "./emoji.js";

const RESULTS_MAX = 240;

function safeStorage() {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}

/** loadEmoji(): a promise of [{emoji, name, aliases}]. Returns {open(anchor, onPick), close(), isOpen}. */
export function createEmojiPicker({ loadEmoji }) {
  const storage = safeStorage();
  let list = null;
  let loading = null;
  let current = null; // {anchor, onPick}

  const search = h("input", {
    type: "search", class: "input emoji-search", placeholder: "Search emoji", "aria-label": "Search emoji",
    autocomplete: "off", spellcheck: "false",
  });
  const recentTitle = h("h3", { class: "emoji-section-title", text: "Recently used" });
  const recentRow = h("div", { class: "emoji-grid emoji-recent", role: "group", "aria-label": "Recently used" });
  const allTitle = h("h3", { class: "emoji-section-title", text: "All emoji" });
  const grid = h("div", { class: "emoji-grid emoji-all", role: "group", "aria-label": "All emoji" });
  const status = h("p", { class: "muted emoji-status", role: "status" });
  const panel = h("div", {
    class: "emoji-picker", role: "dialog", "aria-label": "Add a reaction", hidden: true,
  }, search, h("div", { class: "emoji-scroll" }, recentTitle, recentRow, allTitle, status, grid));
  document.body.append(panel);

  const nameOf = (emoji) => {
    const item = list && list.find((e) => e.emoji === emoji);
    return item ? item.name : emoji;
  };

  function option(item) {
    return h("button", {
      type: "button", class: "emoji-option", title: item.name, "aria-label": item.name,
      dataset: { emoji: item.emoji }, text: item.emoji,
    });
  }

  function renderRecent() {
    const recent = recentEmoji(storage);
    recentRow.replaceChildren(...recent.map((emoji) => option({ emoji, name: nameOf(emoji) })));
    const show = recent.length > 0 && !search.value.trim();
    recentTitle.hidden = !show;
    recentRow.hidden = !show;
  }

  function renderResults() {
    if (!list) return;
    const query = search.value.trim();
    const found = searchEmoji(list, query).slice(0, query ? RESULTS_MAX : list.length);
    allTitle.textContent = query ? "Results" : "All emoji";
    grid.replaceChildren(...found.map(option));
    status.textContent = found.length ? "" : "No emoji by that name.";
    status.hidden = found.length > 0;
  }

  async function ensureList() {
    if (list) return;
    if (!loading) {
      status.hidden = false;
      status.textContent = "Loading emoji…";
      loading = loadEmoji().then((items) => {
        list = items;
      }).catch((err) => {
        loading = null;
        throw err;
      });
    }
    try {
      await loading;
      renderRecent();
      renderResults();
    } catch (err) {
      console.warn("chorus: could not load the emoji", err);
      status.hidden = false;
      status.textContent = "Could not load the emoji. Close and try again.";
    }
  }

  function place(anchor) {
    const rect = anchor.getBoundingClientRect();
    const width = Math.min(320, window.innerWidth - 16);
    panel.style.width = `${width}px`;
    const left = Math.max(8, Math.min(rect.right - width, window.innerWidth - width - 8));
    panel.style.left = `${left}px`;
    const height = Math.min(360, window.innerHeight - 16);
    panel.style.maxHeight = `${height}px`;
    const below = rect.bottom + 6;
    panel.style.top = `${below + height <= window.innerHeight ? below : Math.max(8, rect.top - height - 6)}px`;
  }

  function pick(emoji) {
    if (!current) return;
    const { onPick } = current;
    rememberEmoji(storage, emoji);
    close();
    onPick(emoji);
  }

  function close({ restoreFocus = true } = {}) {
    if (!current) return;
    const { anchor } = current;
    current = null;
    panel.hidden = true;
    if (restoreFocus && anchor && anchor.isConnected) anchor.focus({ preventScroll: true });
  }

  function open(anchor, onPick) {
    current = { anchor, onPick };
    search.value = "";
    panel.hidden = false;
    place(anchor);
    renderRecent();
    renderResults();
    search.focus({ preventScroll: true });
    ensureList();
  }

  panel.addEventListener("click", (event) => {
    const button = event.target.closest(".emoji-option");
    if (button) pick(button.dataset.emoji);
  });
  search.addEventListener("input", () => {
    renderRecent();
    renderResults();
  });
  search.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      const first = grid.querySelector(".emoji-option");
      if (first) pick(first.dataset.emoji);
    }
  });
  panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      close();
    }
  });
  document.addEventListener("pointerdown", (event) => {
    if (current && !panel.contains(event.target) && !current.anchor.contains(event.target)) close({ restoreFocus: false });
  });
  window.addEventListener("resize", () => close({ restoreFocus: false }));

  return {
    open,
    close,
    get isOpen() {
      return current !== null;
    },
  };
}
