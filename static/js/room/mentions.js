// The "@" autocomplete of room members in the composer: an ARIA combobox (the textarea)
// controlling a listbox of suggestions. Arrows move, Enter or Tab picks, Escape closes.

import { h } from "../lib/dom.js";
import { personParts } from "../lib/presence.js";

const MAX_SUGGESTIONS = 8;
// An "@" that starts a mention, as the server reads it (app/lib/mentions.py): not preceded
// by a letter, a digit, "_" or another "@" (that would be an e-mail address or a word).
const QUERY_RE = /(?:^|[^\p{L}\p{N}_@])@([A-Za-z0-9_]{0,32})$/u;

function matches(user, query) {
  if (!query) return 0;
  if (user.username.toLowerCase().startsWith(query)) return 0;
  const words = String(user.display_name || "").toLowerCase().split(/\s+/);
  return words.some((word) => word.startsWith(query)) ? 1 : -1;
}

/** Members whose username (first) or a word of whose display name starts with query. */
export function suggestMembers(members, query, meId) {
  const q = query.toLowerCase();
  return members
    .filter((user) => user.id !== meId)
    .map((user) => ({ user, rank: matches(user, q) }))
    .filter(({ rank }) => rank >= 0)
    .sort((a, b) => a.rank - b.rank || a.user.username.localeCompare(b.user.username))
    .slice(0, MAX_SUGGESTIONS)
    .map(({ user }) => user);
}

/**
 * Wire the autocomplete to the composer textarea.
 * getMembers() returns the room's members ({id, username, display_name}) at call time.
 * Returns {handleKeydown(event) -> true when it used the key, close()}.
 */
export function attachMentionAutocomplete({ input, listbox, getMembers, meId }) {
  let options = []; // the users shown, in order
  let active = -1;
  let start = -1; // index of the "@" being completed
  let dismissedAt = -1; // Escape closes the list until another "@" is typed

  input.setAttribute("role", "combobox");
  input.setAttribute("aria-autocomplete", "list");
  input.setAttribute("aria-controls", listbox.id);
  input.setAttribute("aria-expanded", "false");
  listbox.setAttribute("role", "listbox");

  const isOpen = () => !listbox.hidden;
  const optionId = (user) => `${listbox.id}-${user.id}`;

  function close() {
    listbox.hidden = true;
    listbox.replaceChildren();
    options = [];
    active = -1;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
  }

  function setActive(index) {
    active = index;
    Array.from(listbox.children).forEach((el, i) => {
      el.setAttribute("aria-selected", String(i === index));
      el.classList.toggle("is-active", i === index);
    });
    const user = options[index];
    if (user) {
      input.setAttribute("aria-activedescendant", optionId(user));
      const el = listbox.children[index];
      if (el && typeof el.scrollIntoView === "function") el.scrollIntoView({ block: "nearest" });
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function render(users) {
    const keep = active >= 0 && options[active] ? options[active].id : null;
    options = users;
    listbox.replaceChildren(...users.map((user) => h(
      "li",
      { id: optionId(user), role: "option", class: "mention-option", "aria-selected": "false", dataset: { username: user.username } },
      ...personParts(user),
    )));
    listbox.hidden = false;
    input.setAttribute("aria-expanded", "true");
    const kept = users.findIndex((user) => user.id === keep);
    setActive(kept >= 0 ? kept : 0);
  }

  /** Open, refresh or close the list for the text just before the caret. */
  function update() {
    if (input.disabled || input.selectionStart !== input.selectionEnd) return close();
    const caret = input.selectionStart;
    const match = QUERY_RE.exec(input.value.slice(0, caret));
    if (!match) {
      dismissedAt = -1;
      return close();
    }
    start = caret - match[1].length - 1;
    if (start === dismissedAt) return close();
    const users = suggestMembers(getMembers(), match[1], meId);
    if (!users.length) return close();
    render(users);
  }

  function pick(index) {
    const user = options[index];
    if (!user) return;
    const caret = input.selectionStart;
    const before = input.value.slice(0, start);
    const after = input.value.slice(caret);
    const inserted = `@${user.username}${/^\s/.test(after) ? "" : " "}`;
    input.value = before + inserted + after;
    const position = before.length + inserted.length + (/^\s/.test(after) ? 1 : 0);
    input.setSelectionRange(position, position);
    close();
    // Let the composer resize and enable its send button.
    input.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function handleKeydown(event) {
    if (!isOpen() || event.isComposing) return false;
    const count = options.length;
    switch (event.key) {
      case "ArrowDown":
        setActive((active + 1) % count);
        break;
      case "ArrowUp":
        setActive((active - 1 + count) % count);
        break;
      case "Enter":
      case "Tab":
        if (event.shiftKey || event.altKey || event.ctrlKey || event.metaKey) return false;
        pick(active < 0 ? 0 : active);
        break;
      case "Escape":
        dismissedAt = start;
        close();
        break;
      default:
        return false;
    }
    event.preventDefault();
    event.stopPropagation();
    return true;
  }

  input.addEventListener("input", update);
  input.addEventListener("click", update);
  input.addEventListener("keyup", (event) => {
    if (["ArrowLeft", "ArrowRight", "Home", "End"].includes(event.key)) update();
  });
  input.addEventListener("blur", close);
  // Keep the focus in the textarea when a suggestion is clicked.
  listbox.addEventListener("mousedown", (event) => event.preventDefault());
  listbox.addEventListener("click", (event) => {
    const option = event.target.closest('[role="option"]');
    if (option) pick(Array.from(listbox.children).indexOf(option));
  });
  close();
  return { handleKeydown, close };
}
