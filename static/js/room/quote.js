// The quote above the composer while a quote-reply is being written: the quoted message's
// author and first words, and a button to drop it. The text is inserted as text.

import { h } from "../lib/dom.js";

export const QUOTE_EXCERPT = 200;

/** The first words of a message's text, on one line. */
export function excerptOf(state, length = QUOTE_EXCERPT) {
  const text = String((state && state.body) || "").replace(/\s+/g, " ").trim();
  return text.length > length ? `${text.slice(0, length)}…` : text;
}

/** box: the element above the composer's input. onCancel(): after the reader dropped the quote. */
export function createQuoteDraft({ box, onCancel = () => {} }) {
  let quoted = null;

  function render() {
    if (!quoted) {
      box.replaceChildren();
      box.hidden = true;
      return;
    }
    const cancel = h("button", {
      type: "button", class: "composer-quote-cancel", "aria-label": "Cancel quote", title: "Cancel quote", text: "×",
    });
    cancel.addEventListener("click", () => {
      clear();
      onCancel();
    });
    box.replaceChildren(
      h("div", { class: "composer-quote-main" },
        h("span", { class: "composer-quote-label", text: "Quoting " }),
        h("span", { class: "msg-quote-author", text: quoted.author.display_name }),
        h("span", { class: "msg-quote-excerpt", text: excerptOf(quoted) })),
      cancel);
    box.hidden = false;
  }

  function clear() {
    quoted = null;
    render();
  }

  return {
    /** Quote this message (a state from the timeline) in the next message sent. */
    set(state) {
      if (!state || state.deleted) return;
      quoted = state;
      render();
    },
    clear,
    /** The id of the quoted message, or 0. */
    get id() {
      return quoted ? Number(quoted.id) : 0;
    },
    /** Forget a quoted message that was deleted meanwhile. */
    noteState(state) {
      if (quoted && state && Number(state.id) === Number(quoted.id) && state.deleted) clear();
    },
  };
}
