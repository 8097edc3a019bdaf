// Keeping one room's timeline complete: the client's rules of the protocol (docs/API.md).
//
// Live changes carry the room's rev. One that skips a rev may simply have overtaken the
// missing one (two server processes, a reply racing a broadcast), so a gap is given a grace
// window before the room is asked for everything since the cursor. At most one catch-up runs
// per room; asking while one runs queues exactly one more after it. No DOM and no globals:
// timers and the fetch are passed in, so the rules are unit-tested with `node --test`.

export const GRACE_MS = 1500;
export const CATCH_UP_PAGE = 200;
// More changes than this since the cursor: reload the view instead of replaying them.
export const CATCH_UP_MAX = 500;

/**
 * cursor: a RevCursor. fetchChanges(since, limit) -> {messages, has_more, head}.
 * apply(states): show the changed states (oldest rev first). reset(head): too much was missed;
 * the view reloads itself (it then holds everything up to head). done(): after each catch-up.
 */
export function createSync({
  cursor,
  fetchChanges,
  apply,
  reset = async () => {},
  done = () => {},
  graceMs = GRACE_MS,
  pageSize = CATCH_UP_PAGE,
  maxReplay = CATCH_UP_MAX,
  setTimer = (fn, ms) => setTimeout(fn, ms),
  clearTimer = (handle) => clearTimeout(handle),
  warn = (...args) => console.warn(...args),
}) {
  let grace = null;
  let running = null;
  let again = null;
  let failures = 0;
  let stopped = false;

  function disarm() {
    if (grace !== null) clearTimer(grace);
    grace = null;
  }

  /** Wait for the missing rev; when the window closes without it, catch up. */
  function arm(delay = graceMs) {
    if (grace !== null || stopped) return;
    grace = setTimer(() => {
      grace = null;
      if (cursor.hasGap()) catchUp();
    }, delay);
  }

  /** A live change (broadcast or own reply) with this rev was applied: move the cursor. */
  function noteRev(rev) {
    const seen = cursor.see(rev);
    if (seen === "gap") arm();
    else if (!cursor.hasGap()) disarm();
    return seen;
  }

  async function run() {
    const start = cursor.value;
    let since = start;
    try {
      for (;;) {
        const page = await fetchChanges(since, pageSize);
        if (stopped) return;
        const messages = (page && page.messages) || [];
        const head = Math.max(Number(page && page.head) || 0, since);
        if (head - start > maxReplay) {
          // Hundreds of changes: the latest view is cheaper than replaying them one by one.
          await reset(head);
          cursor.advanceTo(head);
          break;
        }
        if (messages.length) apply(messages);
        const last = messages.length ? Number(messages[messages.length - 1].rev) || since : since;
        if (!(page && page.has_more)) {
          cursor.advanceTo(head);
          break;
        }
        if (last <= since) break; // a page that moves nothing on: ask again another time
        cursor.advanceTo(last);
        since = last;
      }
      failures = 0;
    } catch (err) {
      failures += 1;
      warn("chorus: catching up failed", err);
    }
    if (cursor.hasGap()) {
      // Still a hole (a change beyond the head we were given, or the fetch failed): wait again,
      // longer after each failure.
      disarm();
      arm(Math.min(graceMs * 2 ** failures, 30000));
    } else {
      disarm();
    }
    try {
      done();
    } catch (err) {
      warn("chorus: after catching up", err);
    }
  }

  function start() {
    disarm();
    running = run().finally(() => {
      running = null;
    });
    return running;
  }

  /** Ask for every change since the cursor; one runs at a time, one more may wait behind it. */
  function catchUp() {
    if (stopped) return Promise.resolve();
    if (!running) return start();
    if (!again) {
      again = running.then(() => {
        again = null;
        return running || start();
      });
    }
    return again;
  }

  /** The room's head as GET /rooms/heads gave it: past the cursor means something was missed. */
  function checkHead(head) {
    if ((Number(head) || 0) > cursor.value) return catchUp();
    return null;
  }

  return {
    noteRev,
    catchUp,
    checkHead,
    get busy() {
      return running !== null;
    },
    get waiting() {
      return grace !== null;
    },
    stop() {
      stopped = true;
      disarm();
    },
  };
}
