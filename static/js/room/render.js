// Building message elements (the same markup as templates/chat/_message.html) and laying them out.

import { $, $$, avatar, h, plural } from "../lib/dom.js";
import { sanitizeHtml } from "../lib/sanitize.js";
import { dayKey, dayLabel, formatFull, formatTime, formatWhen, parseDate } from "../lib/time.js";
import { summaryOf, threadHref } from "./thread.js";
import { reactedByMe } from "./timeline.js";

const GROUP_GAP_MS = 5 * 60 * 1000;
const SVG_NS = "http://www.w3.org/2000/svg";

function audienceIcon() {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("width", "12");
  svg.setAttribute("height", "12");
  const shapes = [
    ["circle", { cx: "6", cy: "5.5", r: "2.5" }],
    ["path", { d: "M1.5 13.5c.5-2.5 2.3-3.8 4.5-3.8s4 1.3 4.5 3.8M10.5 3.2a2.5 2.5 0 0 1 0 4.6M12 10c1.3.5 2.2 1.6 2.5 3.5", "stroke-linecap": "round" }],
  ];
  for (const [tag, attrs] of shapes) {
    const shape = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries({ fill: "none", stroke: "currentColor", "stroke-width": "1.4", ...attrs })) {
      shape.setAttribute(k, v);
    }
    svg.append(shape);
  }
  return svg;
}

/** The "sent to everyone in #room" label's tooltip and text. */
export function audienceText(room) {
  const where = roomWhere(room);
  return {
    title: `Sent to everyone in ${where} (${plural(room.member_count, "member")})`,
    text: `to ${where} · all ${room.member_count}`,
  };
}

/** "#general", or "this conversation" for a DM (it has no name). */
export function roomWhere(room) {
  return room.kind === "dm" ? "this conversation" : `#${room.name}`;
}

function audience(room) {
  const { title, text } = audienceText(room);
  return h("span", { class: "msg-audience", title }, audienceIcon(), h("span", { class: "msg-audience-text", text }));
}

/** The link to one message: its room opened around it, scrolled to it. */
export function messageHref(roomId, messageId) {
  return `/rooms/${roomId}?around=${messageId}#message-${messageId}`;
}

function timeLink(href, iso) {
  const date = parseDate(iso);
  const time = h("time", { datetime: iso, text: date ? formatTime(date) : "" });
  if (date) {
    time.title = formatFull(date);
    time.dataset.localized = "1";
  }
  return href ? h("a", { class: "msg-time", href }, time) : h("span", { class: "msg-time" }, time);
}

/** Mark mention chips that name the viewer, and make links open in a new tab. */
export function decorateBody(body, me) {
  const mine = me.username.toLowerCase();
  for (const chip of $$("span.mention", body)) {
    if (chip.classList.contains("mention-wildcard")) {
      chip.title = chip.dataset.wildcard === "here" ? "Notifies everyone active here" : "Notifies everyone here";
      continue;
    }
    const name = chip.dataset.username || "";
    chip.classList.toggle("mention-me", name.toLowerCase() === mine);
    chip.title = `@${name}`;
  }
  for (const link of $$("a[href]", body)) {
    link.target = "_blank";
    link.rel = "noopener noreferrer nofollow";
  }
}

/**
 * The author's name and, unless it is the same, their @username beside it: display names
 * need not be unique, so the username is what tells "Alice Archer @alice" from
 * "Alice Archer @mallory".
 */
export function authorLine(user) {
  const name = h("span", { class: "msg-author", title: `@${user.username}`, text: user.display_name });
  if (user.display_name === user.username) return [name];
  return [name, h("span", { class: "msg-handle", text: `@${user.username}` })];
}

/**
 * Who reacted, for a chip's tooltip: "alice, bob and carol reacted with 👍", or "… and 3 more"
 * past the names the server lists (the first 20). The same words as the template's.
 */
export function reactedByText(reaction) {
  const users = reaction.users || [];
  const others = reaction.count - users.length;
  let names;
  if (others > 0) names = `${users.join(", ")} and ${others} more`;
  else if (users.length > 1) names = `${users.slice(0, -1).join(", ")} and ${users[users.length - 1]}`;
  else names = users.join("");
  return `${names} reacted with ${reaction.emoji}`;
}

/** The chips under a message: emoji and count, the viewer's own pressed. */
export function buildReactions(reactions, me) {
  if (!reactions || !reactions.length) return null;
  return h("ul", { class: "reactions", "aria-label": "Reactions" },
    ...reactions.map((r) => {
      const mine = reactedByMe(r, me.username);
      return h("li", {},
        h("button", {
          type: "button",
          class: mine ? "reaction is-mine" : "reaction",
          "aria-pressed": String(mine),
          title: reactedByText(r),
          dataset: { emoji: r.emoji },
        }, h("span", { class: "reaction-emoji", text: r.emoji }), h("span", { class: "reaction-count", text: String(r.count) })));
    }));
}

/** A time shown with its date unless it is today (localizeTimes' data-format="datetime"). */
function whenTime(iso) {
  const date = parseDate(iso);
  const time = h("time", { datetime: iso, text: date ? formatWhen(date) : "", dataset: { format: "datetime" } });
  if (date) {
    time.title = formatFull(date);
    time.dataset.localized = "1";
  }
  return time;
}

/**
 * Under a thread's root: "3 replies", the first repliers' initials and the last reply's
 * time, linking to the thread. Nothing before the first reply, nor inside the thread itself.
 */
export function buildThreadSummary(m, inThread = 0) {
  const summary = summaryOf(m.thread);
  if (!summary || inThread) return null;
  return h("a", { class: "thread-summary", href: threadHref(m.room_id, m.id), dataset: { threadRoot: m.id } },
    h("span", { class: "thread-repliers", "aria-hidden": "true" },
      ...summary.repliers.map((name) => h("span", {
        class: "avatar avatar-xs", title: `@${name}`, text: String(name).slice(0, 1).toUpperCase(),
      }))),
    h("span", { class: "thread-count", text: summary.label }),
    summary.lastReplyAt ? h("span", { class: "thread-last" }, "Last reply ", whenTime(summary.lastReplyAt)) : null);
}

/** In the main timeline, a reply sent there too links to its thread. */
function threadLink(m, inThread) {
  if (!m.thread_root_id || !m.also_in_room || inThread) return null;
  return h("a", {
    class: "msg-thread-link", href: threadHref(m.room_id, m.thread_root_id), dataset: { threadRoot: m.thread_root_id },
  }, "replied to a thread");
}

/** A quote-reply's compact quote: the quoted message's author and first words, linking to it. */
export function buildQuote(m) {
  if (!m.quote_of) return null;
  const quote = m.quote;
  const gone = !quote || quote.deleted;
  return h("a", {
    class: gone ? "msg-quote msg-quote-deleted" : "msg-quote",
    href: messageHref(m.room_id, m.quote_of),
    dataset: { quoteId: m.quote_of },
  },
  quote && quote.author ? h("span", { class: "msg-quote-author", text: quote.author.display_name }) : null,
  h("span", { class: "msg-quote-excerpt", text: gone ? "deleted message" : quote.excerpt || "" }));
}

/**
 * The element for a stored message or its tombstone (m as app.lib.serializers makes them).
 * inThread: the root id when drawn in that thread's panel (no summary, no link to itself).
 */
export function buildMessage(m, { me, room, inThread = 0 }) {
  const own = m.author.id === me.id;
  if (m.deleted) {
    return h(
      "li",
      {
        class: own ? "msg msg-own msg-deleted" : "msg msg-deleted",
        id: `${inThread ? "thread-" : ""}message-${m.id}`,
        dataset: { id: m.id, seq: m.seq, rev: m.rev, authorId: m.author.id, created: m.created_at, deleted: "1" },
      },
      avatar(m.author),
      h("div", { class: "msg-main" },
        h("div", { class: "msg-meta" },
          ...authorLine(m.author),
          own ? h("span", { class: "tag tag-you", text: "you" }) : null,
          timeLink(messageHref(m.room_id, m.id), m.created_at)),
        threadLink(m, inThread),
        h("p", { class: "msg-tombstone", text: "This message was deleted" }),
        buildThreadSummary(m, inThread)),
    );
  }
  const mentionsMe = Array.isArray(m.mentions)
    && m.mentions.some((name) => String(name).toLowerCase() === me.username.toLowerCase());
  const body = h("div", { class: "msg-body" });
  body.append(sanitizeHtml(m.html));
  decorateBody(body, me);
  const classes = ["msg"];
  if (own) classes.push("msg-own");
  if (mentionsMe) classes.push("msg-mentions-me");
  return h(
    "li",
    {
      class: classes.join(" "),
      id: `${inThread ? "thread-" : ""}message-${m.id}`,
      dataset: {
        id: m.id, seq: m.seq, rev: m.rev, authorId: m.author.id, created: m.created_at,
        clientId: m.client_id || undefined, edited: m.edited_at || undefined,
      },
    },
    avatar(m.author),
    h("div", { class: "msg-main" },
      h("div", { class: "msg-meta" },
        ...authorLine(m.author),
        own ? h("span", { class: "tag tag-you", text: "you" }) : null,
        mentionsMe ? h("span", { class: "tag tag-mention", text: "mentions you" }) : null,
        timeLink(messageHref(m.room_id, m.id), m.created_at),
        m.edited_at
          ? h("button", { type: "button", class: "msg-edited", title: "Show the edit history", text: "(edited)" })
          : null,
        inThread && m.also_in_room ? h("span", { class: "tag tag-also", text: `also in ${roomWhere(room)}` }) : null),
      threadLink(m, inThread),
      buildQuote(m),
      body,
      buildReactions(m.reactions, me),
      buildThreadSummary(m, inThread)),
    audience(room),
  );
}

/** A message on its way: the typed text shown as plain text until the server answers. */
export function buildPending(body, clientId, { me, room }) {
  const created = new Date().toISOString();
  const state = h("span", { class: "msg-state", text: "Sending…" });
  const retry = h("button", { type: "button", class: "button button-small msg-retry", hidden: true, text: "Retry" });
  const discard = h("button", {
    type: "button", class: "button button-small button-quiet msg-discard", hidden: true, text: "Discard",
  });
  return h(
    "li",
    {
      class: "msg msg-own msg-pending",
      dataset: { clientId, authorId: me.id, created, state: "sending" },
      "aria-busy": "true",
    },
    avatar(me),
    h("div", { class: "msg-main" },
      h("div", { class: "msg-meta" },
        ...authorLine(me),
        h("span", { class: "tag tag-you", text: "you" }),
        timeLink(null, created)),
      h("div", { class: "msg-body msg-body-plain", text: body }),
      h("div", { class: "msg-pending-foot" }, state, retry, discard)),
    audience(room),
  );
}

/**
 * Show a pending message's state: "sending", "waiting" (for the connection; sent again by
 * itself) or "failed" (the server refused it or never answered). The last two offer Retry
 * and Discard.
 */
export function setPendingState(el, state, text) {
  el.dataset.state = state;
  $(".msg-state", el).textContent = text;
  const stuck = state === "waiting" || state === "failed";
  $(".msg-retry", el).hidden = !stuck;
  $(".msg-discard", el).hidden = !stuck;
  el.setAttribute("aria-busy", String(state === "sending"));
}

/** A one-line note in the timeline ("Bob joined the room"). */
export function buildNote(text) {
  const now = new Date();
  return h("li", { class: "sys-note", dataset: { created: now.toISOString() } },
    h("span", { text }), " ", h("time", { datetime: now.toISOString(), text: formatTime(now), title: formatFull(now) }));
}

function separator(date) {
  const label = dayLabel(date);
  return h("li", { class: "day-sep", role: "separator", "aria-label": label, dataset: { day: dayKey(date) } },
    h("span", { text: label }));
}

/**
 * Day separators before the first message of each local day, and grouping of consecutive
 * messages by the same author within a few minutes. Existing separators are kept when still
 * right, so screen readers are not told about them again.
 */
export function layoutMessages(list) {
  const children = Array.from(list.children);
  let prevMsg = null;
  let prevDate = null;
  let prevDay = null;
  const wanted = new Map(); // message element -> day key that needs a separator before it
  for (const el of children) {
    if (el.classList.contains("sys-note")) {
      prevMsg = null;
      continue;
    }
    if (!el.classList.contains("msg")) continue;
    const date = parseDate(el.dataset.created) || new Date();
    const day = dayKey(date);
    if (day !== prevDay) wanted.set(el, { day, date });
    const grouped = prevMsg !== null && day === prevDay
      && prevMsg.dataset.authorId === el.dataset.authorId
      && date - prevDate < GROUP_GAP_MS;
    el.classList.toggle("msg-cont", grouped);
    prevMsg = el;
    prevDate = date;
    prevDay = day;
  }
  for (const sep of $$(":scope > .day-sep", list)) {
    const next = sep.nextElementSibling;
    const want = next && wanted.get(next);
    if (want && want.day === sep.dataset.day && sep.textContent === dayLabel(want.date)) {
      wanted.delete(next);
    } else {
      sep.remove();
    }
  }
  for (const [el, { date }] of wanted) list.insertBefore(separator(date), el);
}
