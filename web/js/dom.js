// Building the page: `h` makes elements from tags, attributes and children, and only ever
// sets text (never HTML), so anything a DAG author or a task wrote shows as text. Also the
// shared formatting of times, durations and states.

/** h('a.link', {href: '/x', onclick: fn}, 'text', child, [more]) */
export function h(tag, attrs, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = name === 'svg' || SVG_TAGS.has(name)
    ? document.createElementNS('http://www.w3.org/2000/svg', name)
    : document.createElement(name || 'div');
  if (classes.length) el.setAttribute('class', classes.join(' '));
  if (attrs !== null && attrs !== undefined && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.setAttribute('class', [el.getAttribute('class'), value].filter(Boolean).join(' '));
    } else if (key === 'style') {
      // Through the CSSOM: the Content Security Policy forbids style attributes.
      if (typeof value === 'string') el.style.cssText = value;
      else Object.assign(el.style, value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'value' && 'value' in el) {
      el.value = value;
    } else if (key === 'checked' || key === 'selected' || key === 'disabled') {
      el[key] = Boolean(value);
    } else if (key === 'href' && typeof value === 'string' && /^\s*javascript:/i.test(value)) {
      // never a script link
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

const SVG_TAGS = new Set(['g', 'rect', 'path', 'line', 'text', 'title', 'circle', 'polyline', 'polygon', 'defs', 'marker', 'tspan', 'clipPath']);

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// ---- time ----------------------------------------------------------------------------------

const TZ_KEY = 'updraft.timezone';

/** 'utc' or 'local', remembered per browser. */
export function timezone() {
  return localStorage.getItem(TZ_KEY) === 'local' ? 'local' : 'utc';
}

export function setTimezone(zone) {
  localStorage.setItem(TZ_KEY, zone);
}

function parts(date) {
  const utc = timezone() === 'utc';
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  const y = utc ? date.getUTCFullYear() : date.getFullYear();
  const mo = pad((utc ? date.getUTCMonth() : date.getMonth()) + 1);
  const d = pad(utc ? date.getUTCDate() : date.getDate());
  const hh = pad(utc ? date.getUTCHours() : date.getHours());
  const mm = pad(utc ? date.getUTCMinutes() : date.getMinutes());
  const ss = pad(utc ? date.getUTCSeconds() : date.getSeconds());
  const ms = pad(utc ? date.getUTCMilliseconds() : date.getMilliseconds(), 3);
  return { y, mo, d, hh, mm, ss, ms };
}

function zoneLabel() {
  if (timezone() === 'utc') return 'UTC';
  const offset = -new Date().getTimezoneOffset();
  const sign = offset >= 0 ? '+' : '-';
  const abs = Math.abs(offset);
  return `UTC${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

/** '2026-12-02 06:00:00' in the chosen zone, '' for none. */
export function fmtTime(value, { seconds = true, zone = false } = {}) {
  if (!value) return '';
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  const p = parts(date);
  const text = `${p.y}-${p.mo}-${p.d} ${p.hh}:${p.mm}${seconds ? ':' + p.ss : ''}`;
  return zone ? `${text} ${zoneLabel()}` : text;
}

/** '06:00:00.123' in the chosen zone, for log lines. */
export function fmtClock(value) {
  if (!value) return '';
  const p = parts(new Date(value));
  return `${p.hh}:${p.mm}:${p.ss}.${p.ms}`;
}

/** A <time> element showing `value`, with the full instant in its tooltip. */
export function time(value, opts) {
  if (!value) return h('span.muted', '—');
  return h('time', { datetime: value, title: `${value} (UTC)` }, fmtTime(value, opts));
}

/** '1h 2m', '3.2s', '140ms'. */
export function fmtDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.round(s % 60)}s`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return `${hr}h ${m % 60}m`;
  return `${Math.floor(hr / 24)}d ${hr % 24}h`;
}

/** Duration between two instants; an open end means "until now". */
export function span(start, end) {
  if (!start) return '';
  const a = new Date(start).getTime();
  const b = end ? new Date(end).getTime() : Date.now();
  return fmtDuration(b - a);
}

/**
 * Every second, rewrite the durations of the page's `[data-tick-start]` elements (still
 * running) from their start; fetches nothing, and stops when the user leaves the page.
 */
export function tickDurations(ctx) {
  const ticker = setInterval(() => {
    for (const el of ctx.main.querySelectorAll('[data-tick-start]')) {
      el.textContent = fmtDuration(Date.now() - new Date(el.dataset.tickStart).getTime());
    }
  }, 1000);
  ctx.cleanup(() => clearInterval(ticker));
}

/** '3 minutes ago', 'in 2 hours'. */
export function relative(value) {
  if (!value) return '';
  const diff = new Date(value).getTime() - Date.now();
  const abs = Math.abs(diff);
  const units = [['day', 86400000], ['hour', 3600000], ['minute', 60000], ['second', 1000]];
  for (const [unit, size] of units) {
    if (abs >= size || unit === 'second') {
      const n = Math.max(1, Math.round(abs / size));
      const word = `${n} ${unit}${n === 1 ? '' : 's'}`;
      return diff < 0 ? `${word} ago` : `in ${word}`;
    }
  }
  return '';
}

// ---- states ----------------------------------------------------------------------------------

export const TASK_STATES = ['success', 'running', 'failed', 'upstream_failed', 'skipped', 'up_for_retry',
  'up_for_reschedule', 'queued', 'scheduled', 'removed', 'none'];
export const RUN_STATES = ['queued', 'running', 'success', 'failed'];

/** A state chip: a colour square and the state's name. */
export function stateBadge(state) {
  const name = state || 'none';
  return h('span.state', { dataset: { state: name } }, h('span.swatch', { 'aria-hidden': 'true' }), name.replaceAll('_', ' '));
}

/** A square coloured by state, with the state in its tooltip. */
export function stateSquare(state, title) {
  const name = state || 'none';
  return h('span.square', { dataset: { state: name }, title: title || name, role: 'img', 'aria-label': title || name });
}

/** Encode each path segment. */
export function path(...segments) {
  return segments.map((s) => encodeURIComponent(String(s))).join('/');
}

/** An in-app link; the router turns its clicks into navigation without reload. */
export function link(href, ...children) {
  return h('a', { href }, ...children);
}

/** A message shown where content would be: what is missing and what to do next. */
export function empty(title, hint, ...actions) {
  return h('div.empty', h('p.empty-title', title), hint ? h('p.muted', hint) : null, actions.length ? h('div.actions', actions) : null);
}

/** Wrap a promise-returning click handler: the button is disabled while it runs. */
export function busy(button, fn) {
  return async (event) => {
    if (button.disabled) return;
    button.disabled = true;
    try {
      await fn(event);
    } finally {
      button.disabled = false;
    }
  };
}

/** Run `fn` at most once per frame-ish burst: later calls while one runs queue one more. */
export function coalesce(fn) {
  let running = false;
  let again = false;
  return async function run() {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        await fn();
      } while (again);
    } finally {
      running = false;
    }
  };
}
