// The emoji the server accepts (GET /api/v1/emoji), searched by name, and the viewer's
// recently used ones (kept in localStorage). No DOM: the picker is room/picker.js.

export const RECENT_KEY = "chorus.recentEmoji";
export const RECENT_MAX = 16;

/** Normalise a search: lower case, spaces and colons as in ":thumbs up:" ignored. */
function fold(text) {
  return String(text || "").toLowerCase().replace(/[:\s_-]+/g, " ").trim();
}

/**
 * The emoji matching query, best first: names or aliases starting with it, then containing
 * it. An empty query gives the whole list in its order.
 */
export function searchEmoji(list, query) {
  const q = fold(query);
  if (!q) return list.slice();
  const starts = [];
  const contains = [];
  for (const item of list) {
    const names = [item.name, ...(item.aliases || [])].map(fold);
    if (item.emoji === query.trim()) starts.unshift(item);
    else if (names.some((n) => n.startsWith(q) || n.split(" ").some((word) => word.startsWith(q)))) starts.push(item);
    else if (names.some((n) => n.includes(q))) contains.push(item);
  }
  return starts.concat(contains);
}

/** The recently used emoji, most recent first, in storage (localStorage or a stand-in). */
export function recentEmoji(storage) {
  try {
    const value = JSON.parse((storage && storage.getItem(RECENT_KEY)) || "[]");
    return Array.isArray(value) ? value.filter((e) => typeof e === "string").slice(0, RECENT_MAX) : [];
  } catch {
    return [];
  }
}

/** Put emoji first among the recently used ones; returns the new list. */
export function rememberEmoji(storage, emoji) {
  const list = [emoji, ...recentEmoji(storage).filter((e) => e !== emoji)].slice(0, RECENT_MAX);
  try {
    if (storage) storage.setItem(RECENT_KEY, JSON.stringify(list));
  } catch {
    /* storage full or refused (private mode): the list just is not kept */
  }
  return list;
}
