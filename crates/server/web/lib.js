// The pieces every page uses: building elements, calling the API, formatting, JSON trees,
// charts and messages. No framework: the app is small enough to read in an afternoon, and
// loads nothing from anywhere but this server.

/** Builds an element. `attrs`: `class`, `text`, `on<event>` handlers, booleans, other attributes. */
export function h(tag, attrs, ...children) {
  const svg = ['svg', 'rect', 'g', 'line', 'text', 'title', 'path', 'polyline'].includes(tag);
  const node = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'text') node.textContent = value;
    else if (name.startsWith('on') && typeof value === 'function') node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, '');
    else node.setAttribute(name, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : String(child));
  }
}

/** A failed API call: its status, code, message and a recipe's problems. */
export class ApiFailure extends Error {
  constructor(status, error) {
    super(error?.message || `the server answered ${status}`);
    this.status = status;
    this.code = error?.code || 'error';
    this.problems = error?.problems || [];
  }
}

export const session = { user: null, workspace: null, role: null, csrf: null };

/** Calls `/api/v1{path}`. A string body goes as text (recipes), anything else as JSON. */
export async function api(method, path, body, { raw = false } = {}) {
  const headers = { accept: 'application/json' };
  if (session.csrf) headers['x-csrf-token'] = session.csrf;
  let payload;
  if (body !== undefined) {
    if (typeof body === 'string') {
      payload = body;
      headers['content-type'] = 'text/plain; charset=utf-8';
    } else {
      payload = JSON.stringify(body);
      headers['content-type'] = 'application/json';
    }
  }
  const response = await fetch(`/api/v1${path}`, { method, headers, body: payload, credentials: 'same-origin' });
  if (raw && response.ok) return response;
  const text = await response.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = null; }
  if (!response.ok) {
    if (response.status === 401 && !path.startsWith('/session') && !location.pathname.startsWith('/sign-in')) {
      go(`/sign-in?next=${encodeURIComponent(location.pathname + location.search)}`);
    }
    throw new ApiFailure(response.status, parsed?.error || { message: text || response.statusText });
  }
  return parsed;
}

/** The roles from least to most: a page shows a control only to those who may use it. */
export const ROLES = ['viewer', 'operator', 'builder', 'admin', 'owner'];
export function can(role) {
  return ROLES.indexOf(session.role) >= ROLES.indexOf(role);
}

/** The roles one may give (to a member, a token): none above one's own. */
export function grantable() {
  return ROLES.slice(0, ROLES.indexOf(session.role) + 1);
}

/** Like replaceChildren, leaving out what is absent (it would write `null`). */
export function fill(node, ...parts) {
  node.replaceChildren(...parts.flat(Infinity).filter(Boolean));
}

/** A job's id, linked to its page for those who may open it (operators and up). */
export function jobLink(id, text = id.slice(0, 13)) {
  const label = h('code', null, text);
  return can('operator') ? h('a', { href: `/jobs/${encodeURIComponent(id)}` }, label) : label;
}

/** Moves to another page of the app without reloading it. */
export function go(path) {
  history.pushState(null, '', path);
  window.dispatchEvent(new Event('weft:navigate'));
}

/** A link within the app. */
export function link(path, ...children) {
  return h('a', { href: path }, ...children);
}

/** Tells screen readers what just happened. */
export function announce(text) {
  const region = document.getElementById('announce');
  if (region) {
    region.textContent = '';
    setTimeout(() => { region.textContent = text; }, 30);
  }
}

/** A message in a page: `ok`, `error` or `info`. Errors are alerts, read out at once. */
export function message(kind, text) {
  return h('p', { class: `message ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

/** Shows a message in `slot`, replacing what was there. */
export function say(slot, kind, text) {
  slot.replaceChildren(message(kind, text));
}

/** Moves keyboard focus to what `slot` shows: after an action whose control was redrawn away. */
export function focusOn(slot) {
  const shown = slot.firstElementChild || slot;
  shown.tabIndex = -1;
  shown.focus();
}

/** What went wrong with a call, for a person. */
export function explain(error) {
  if (error instanceof ApiFailure) return error.message;
  return `The server could not be reached (${error.message}).`;
}

export function fmtTime(value) {
  if (!value) return '—';
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

export function time(value) {
  return h('time', { datetime: value || '' }, fmtTime(value));
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60000);
  return `${minutes} min ${Math.round((ms % 60000) / 1000)} s`;
}

export function between(start, end) {
  if (!start) return null;
  return new Date(end || Date.now()).getTime() - new Date(start).getTime();
}

/** A job or step status as a badge whose text says it (not colour alone). */
export function badge(status) {
  return h('span', { class: `badge ${status || 'none'}` }, status || 'never run');
}

export const UNFINISHED = ['queued', 'held', 'running', 'waiting'];

/** A JSON value as a tree of `<details>`: keyboard and screen reader friendly by nature. */
export function jsonTree(value, { label = null, open = true, depth = 0 } = {}) {
  if (value === null || typeof value !== 'object') {
    return h('span', { class: `json-${value === null ? 'null' : typeof value}` }, JSON.stringify(value));
  }
  const entries = Array.isArray(value) ? value.map((item, index) => [index, item]) : Object.entries(value);
  const brackets = Array.isArray(value) ? ['[', ']'] : ['{', '}'];
  if (entries.length === 0) return h('span', { class: 'json-empty' }, brackets.join(''));
  const items = h('ul', { class: 'json' }, entries.map(([key, item]) => h('li', null,
    item !== null && typeof item === 'object'
      ? jsonTree(item, { label: key, open: depth < 1, depth: depth + 1 })
      : [h('span', { class: 'json-key' }, `${key}: `), jsonTree(item)])));
  const summary = `${label === null ? '' : `${label}: `}${brackets[0]} ${entries.length} ${Array.isArray(value) ? 'items' : 'keys'} ${brackets[1]}`;
  return h('details', { class: 'json-node', open: open }, h('summary', null, summary), items);
}

/** A labelled form control; `input` is an element. `hint` is read with the control. */
export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  const parts = [h('label', { for: id }, label), input];
  if (hint) {
    const hintId = `${id}-hint`;
    input.setAttribute('aria-describedby', hintId);
    parts.push(h('small', { id: hintId, class: 'hint' }, hint));
  }
  return h('div', { class: 'field' }, parts);
}

/**
 * A form whose submit runs `action(data, slot, form)` with its FormData; what goes wrong is
 * shown in `slot`, under the submit button, with a recipe's problems at their lines.
 */
export function form(children, submitText, action, submitAttrs = {}) {
  const slot = h('div', { class: 'form-message' });
  const submit = h('button', { type: 'submit', ...submitAttrs }, submitText);
  const node = h('form', null, children, h('div', { class: 'actions' }, submit), slot);
  node.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    slot.replaceChildren();
    try {
      await action(new FormData(node), slot, node);
    } catch (error) {
      say(slot, 'error', explain(error));
      if (error instanceof ApiFailure && error.problems.length) {
        slot.append(h('ul', null, error.problems.map((problem) => h('li', null, `Line ${problem.line}, column ${problem.column}: ${problem.message}`))));
      }
    } finally {
      submit.disabled = false;
    }
  });
  return node;
}

/** A button that runs `action`, disabled while it does. */
export function button(text, action, attrs = {}) {
  const node = h('button', { type: 'button', ...attrs }, text);
  node.addEventListener('click', async (event) => {
    node.disabled = true;
    try { await action(event); } finally { node.disabled = false; }
  });
  return node;
}

/** A table from rows, with a caption read by screen readers. */
export function table(caption, headings, rows) {
  return h('div', { class: 'table-wrap' }, h('table', null,
    h('caption', null, caption),
    h('thead', null, h('tr', null, headings.map((heading) => h('th', { scope: 'col' }, heading)))),
    h('tbody', null, rows.map((cells) => h('tr', null, cells.map((cell) => h('td', null, cell)))))));
}

/** A bar chart as SVG, with the same figures in a table for those who cannot see it. */
export function barChart({ title, bars, series, max: fixedMax = null }) {
  const width = 640;
  const height = 160;
  const max = fixedMax || Math.max(1, ...bars.map((bar) => series.reduce((sum, one) => sum + (bar[one.key] || 0), 0)));
  const step = width / Math.max(1, bars.length);
  const chart = h('svg', { viewBox: `0 0 ${width} ${height + 20}`, class: 'chart', role: 'img', 'aria-label': title });
  chart.append(h('title', null, title));
  bars.forEach((bar, index) => {
    let y = height;
    for (const one of series) {
      const value = bar[one.key] || 0;
      if (!value) continue;
      const barHeight = (value / max) * height;
      y -= barHeight;
      chart.append(h('rect', { x: index * step + 1, y, width: Math.max(1, step - 2), height: barHeight, class: one.class },
        h('title', null, `${bar.label}: ${value} ${one.name}`)));
    }
  });
  chart.append(h('line', { x1: 0, y1: height, x2: width, y2: height, class: 'axis' }));
  chart.append(h('text', { x: 0, y: height + 16, class: 'chart-label' }, bars[0]?.label || ''));
  chart.append(h('text', { x: width, y: height + 16, class: 'chart-label end' }, bars[bars.length - 1]?.label || ''));
  const legend = h('ul', { class: 'legend' }, series.map((one) => h('li', null, h('span', { class: `swatch ${one.class}` }), one.name)));
  const figures = h('details', null, h('summary', null, 'The figures as a table'),
    table(title, ['', ...series.map((one) => one.name)],
      bars.filter((bar) => series.some((one) => bar[one.key])).map((bar) => [bar.label, ...series.map((one) => String(bar[one.key] || 0))])));
  return h('figure', { class: 'chart-figure' }, h('figcaption', null, title), chart, legend, figures);
}

/** Runs `refresh` every `ms` until it returns false or `node` leaves the page. */
export function every(ms, node, refresh) {
  const tick = async () => {
    if (!node.isConnected) return;
    let again = true;
    try { again = await refresh(); } catch { again = true; }
    if (again !== false && node.isConnected) setTimeout(tick, ms);
  };
  setTimeout(tick, ms);
}

/** The page's heading; the window's title follows it once it is on the page. */
export function heading(text) {
  const node = h('h1', null, text);
  // Set when drawn, so that a page its user has left does not rename the window.
  queueMicrotask(() => { if (node.isConnected) document.title = `${text} · Weft`; });
  return node;
}

/** A download of `text` as a file. */
export function download(name, text, type = 'application/json') {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const anchor = h('a', { href: url, download: name });
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** A progress bar with its figures in words. */
export function progress(label) {
  const bar = h('progress', { max: 1, value: 0, 'aria-label': label });
  const words = h('span', { class: 'progress-words' }, '');
  const node = h('div', { class: 'progress', role: 'group', 'aria-label': label }, bar, words);
  return {
    node,
    set(done, total, text) {
      bar.max = Math.max(1, total);
      bar.value = done;
      words.textContent = text || `${done} of ${total}`;
    },
  };
}
