/* Small DOM helpers shared by the panels. */

/** Return the element with `id`. */
export function $(id) {
  return document.getElementById(id);
}

/** Return a new `tag` element with an optional class and text. */
export function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

let statusTimer;

/** Show `text` in the map's status line for `ms` milliseconds. */
export function showStatus(text, ms = 4000) {
  const el = $('status');
  el.textContent = text;
  el.hidden = false;
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => { el.hidden = true; }, ms);
}
