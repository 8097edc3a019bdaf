// Messages on their way: each send carries a client_id, an unanswered one is sent again
// with the same id (so the server stores it once), and a refusal that sending again cannot
// fix gives the text back. No DOM: the page shows entries through the hooks it passes.

export const SEND_TIMEOUT_MS = 15000;
export const SEND_ATTEMPTS = 3; // unanswered sends before the message is shown as failed
export const RETRY_DELAY_MS = 2000;
// Refusals that sending again cannot fix: the text goes back to the composer to be edited.
export const PERMANENT_ERRORS = new Set(["invalid", "too_large", "not_member", "not_found", "forbidden", "unauthorized"]);

/**
 * emit(payload, timeoutMs, callback(err, ack)): one socket send with an ack deadline.
 * connected(): whether the socket is up. show(entry, state, text): "sending", "waiting" or
 * "failed". confirmed(message): the server stored it. refused(entry, error): permanently.
 */
export function createOutbox({
  roomId, emit, connected, show, confirmed, refused,
  setTimer = (fn, ms) => setTimeout(fn, ms),
  timeoutMs = SEND_TIMEOUT_MS, attempts = SEND_ATTEMPTS, retryDelayMs = RETRY_DELAY_MS,
}) {
  const pending = new Map(); // client_id -> {clientId, body, inFlight, attempts, state, el}

  function send(entry) {
    if (!pending.has(entry.clientId) || entry.inFlight) return;
    if (!connected()) {
      entry.state = "waiting";
      show(entry, "waiting", "Not sent yet: waiting for the connection.");
      return;
    }
    entry.inFlight = true;
    entry.attempts += 1;
    entry.state = "sending";
    show(entry, "sending", "Sending…");
    // A thread reply or a quote-reply carries its fields (thread_root_id, also_in_room, quote_of) on every try.
    emit({ ...entry.fields, room_id: roomId, body: entry.body, client_id: entry.clientId }, timeoutMs, (err, ack) => {
      entry.inFlight = false;
      if (!pending.has(entry.clientId)) return; // the broadcast got here first, or discarded
      if (err) {
        if (entry.attempts >= attempts) {
          entry.state = "failed";
          show(entry, "failed", "Not sent: the server did not answer.");
        } else {
          entry.state = "waiting";
          show(entry, "waiting", "Not confirmed yet: trying again…");
          setTimer(() => send(entry), retryDelayMs);
        }
        return;
      }
      if (ack && ack.ok && ack.message) {
        confirmed(ack.message);
        return;
      }
      const error = (ack && ack.error) || { message: "The message could not be sent." };
      if (PERMANENT_ERRORS.has(error.code)) {
        pending.delete(entry.clientId);
        refused(entry, error);
      } else {
        entry.state = "failed";
        show(entry, "failed", `Not sent: ${error.message || "something went wrong."}`);
      }
    });
  }

  return {
    pending,
    /**
     * Queue body under clientId. extra rides along (the echo element; `fields`, sent with
     * the body: thread_root_id, also_in_room, quote_of).
     */
    add(clientId, body, extra = {}) {
      const entry = { clientId, body, inFlight: false, attempts: 0, state: "sending", ...extra };
      pending.set(clientId, entry);
      send(entry);
      return entry;
    },
    get(clientId) {
      return pending.get(clientId);
    },
    /** The server has the message: forget it (the caller removes the echo). */
    resolve(clientId) {
      const entry = pending.get(clientId);
      if (entry) pending.delete(clientId);
      return entry || null;
    },
    /** Drop a message that was not sent; the reader chose to. */
    discard(clientId) {
      const entry = pending.get(clientId);
      if (!entry || entry.inFlight) return null;
      pending.delete(clientId);
      return entry;
    },
    /** Try a failed one again from the start. */
    retry(clientId) {
      const entry = pending.get(clientId);
      if (!entry || entry.inFlight) return;
      entry.attempts = 0;
      send(entry);
    },
    /** After a (re)connect: send again whatever is still waiting and not given up on. */
    resendWaiting() {
      for (const entry of pending.values()) {
        if (!entry.inFlight && entry.state !== "failed") send(entry);
      }
    },
  };
}
