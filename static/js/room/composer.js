// The message box: Enter sends, Shift+Enter breaks the line, `@` offers members, `Up` in an
// empty box edits your last message; a counter near the limit and one error line.

import { attachMentionAutocomplete } from "./mentions.js";

/**
 * elements: {form, input, sendButton, errorBox, counter, listbox}. getMembers(): the room's
 * members. onSend(body): a message to send. onEditLast(): `Up` in the empty box.
 * onDraft(text): the box's text changed (typed, or emptied by a send). confirmSend(body):
 * true, false or a promise of either; false keeps the text in the box unsent.
 */
export function createComposer(
  { form, input, sendButton, errorBox, counter, listbox },
  { maxLength, meId, getMembers, onSend, onEditLast, onDraft = () => {}, confirmSend = null },
) {
  let left = false;
  let confirming = false;
  const mentions = listbox
    ? attachMentionAutocomplete({ input, listbox, getMembers, meId })
    : { handleKeydown: () => false, close() {} };

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = !text;
  }

  function update() {
    const length = input.value.length;
    sendButton.disabled = left || input.value.trim() === "";
    const remaining = maxLength - length;
    counter.hidden = remaining > 200;
    counter.textContent = `${remaining} left`;
    counter.classList.toggle("is-low", remaining <= 20);
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 240)}px`;
  }

  async function send() {
    const body = input.value;
    if (left || confirming || body.trim() === "") return;
    if (body.length > maxLength) {
      showError(`Messages are at most ${maxLength} characters.`);
      return;
    }
    showError("");
    mentions.close();
    let ok = confirmSend ? confirmSend(body) : true;
    if (ok && typeof ok.then === "function") {
      // Asked first (a dialog): the box keeps the text until the answer.
      confirming = true;
      try {
        ok = await ok;
      } finally {
        confirming = false;
      }
      input.focus({ preventScroll: true });
      if (input.value !== body) return;
    }
    if (!ok) return;
    input.value = "";
    update();
    onDraft("");
    onSend(body);
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  input.addEventListener("keydown", (event) => {
    if (mentions.handleKeydown(event)) return;
    if (event.key === "ArrowUp" && input.value === "" && !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey) {
      if (onEditLast()) event.preventDefault();
      return;
    }
    if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    event.preventDefault();
    send();
  });
  input.addEventListener("input", () => {
    update();
    onDraft(input.value);
    if (!errorBox.hidden && input.value.trim() === "") showError("");
  });
  update();

  return {
    input,
    showError,
    update,
    /** Put a refused message's text back, above anything typed since. */
    giveBack(body, error) {
      input.value = input.value.trim() ? `${body}\n${input.value}` : body;
      update();
      showError(error);
      input.focus();
    },
    /** Left the room from another tab: nothing more can be sent from here. */
    leave(text) {
      left = true;
      input.disabled = true;
      mentions.close();
      update();
      showError(text);
    },
    focus(options) {
      input.focus(options);
    },
  };
}
