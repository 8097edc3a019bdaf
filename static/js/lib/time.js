// Dates in the viewer's own time zone and language, via Intl.DateTimeFormat.

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });
const shortDateTime = new Intl.DateTimeFormat(undefined, {
  month: "short", day: "numeric", hour: "numeric", minute: "2-digit",
});
const dayThisYear = new Intl.DateTimeFormat(undefined, { weekday: "long", month: "long", day: "numeric" });
const dayOtherYear = new Intl.DateTimeFormat(undefined, {
  weekday: "long", month: "long", day: "numeric", year: "numeric",
});

/** A Date from an ISO string, or null when it does not parse. */
export function parseDate(value) {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** "14:05" / "2:05 PM", as the viewer's locale writes it. */
export function formatTime(date) {
  return timeFormat.format(date);
}

/** The full date and time, for tooltips. */
export function formatFull(date) {
  return fullFormat.format(date);
}

/** A key that is equal for two dates on the same local day. */
export function dayKey(date) {
  return `${date.getFullYear()}-${date.getMonth()}-${date.getDate()}`;
}

/** "Today", "Yesterday" or the weekday and date. */
export function dayLabel(date, now = new Date()) {
  const today = dayKey(now);
  const yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
  const key = dayKey(date);
  if (key === today) return "Today";
  if (key === dayKey(yesterday)) return "Yesterday";
  return (date.getFullYear() === now.getFullYear() ? dayThisYear : dayOtherYear).format(date);
}

/** The time alone for today, the date and time otherwise. */
export function formatWhen(date, now = new Date()) {
  return dayKey(date) === dayKey(now) ? formatTime(date) : shortDateTime.format(date);
}

/** Rewrite every <time datetime> under root in local time (data-format="datetime" adds the date). */
export function localizeTimes(root = document) {
  for (const el of root.querySelectorAll("time[datetime]")) {
    if (el.dataset.localized) continue;
    const date = parseDate(el.getAttribute("datetime"));
    if (!date) continue;
    el.textContent = el.dataset.format === "datetime" ? formatWhen(date) : formatTime(date);
    el.title = formatFull(date);
    el.dataset.localized = "1";
  }
}
