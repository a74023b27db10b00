// The log of a task instance: its tries as tabs, each try's lines streamed from the server
// (`followLog`) as the task writes them, in a virtually scrolled view: every line is kept in
// plain arrays, and only the rows around the viewport exist in the DOM (fixed-height rows,
// so a line's position is its index times the row height), so a 100,000-line log opens at
// once and a page left open while a task logs for an hour holds only the lines themselves.
// Follow mode keeps the newest line in view until the user scrolls up; search highlights
// matches, counts them, jumps between them and can hide the other lines; timestamps, line
// numbers, stderr and Updraft's own lines are marked; copy and download give the text.
// Every line is set as text: a line of HTML shows as the characters it is made of.

import { h, replace, fmtClock, fmtTime } from './dom.js';
import { followLog } from './live.js';
import { toast } from './dialog.js';

/** Height of one row in pixels; `.log-row` in run.css has the same. */
const ROW = 18;
/** Rows rendered above and below the viewport. */
const OVERSCAN = 100;
/** Tallest scroll area used; longer logs scroll proportionally (browsers cap element height). */
const MAX_PX = 8_000_000;
/** Distance from the bottom, in pixels, that still counts as "at the bottom". */
const BOTTOM_SLACK = 4;
const STREAMS = ['stdout', 'stderr', 'system'];
const TIMESTAMPS_KEY = 'updraft.log.timestamps';
/** Task states whose latest try may still write lines. */
const ACTIVE = new Set(['running', 'queued', 'scheduled', 'up_for_reschedule', 'deferred', 'restarting']);
/** Task states before a try's process starts writing. */
const NOT_STARTED = new Set([null, undefined, 'none', 'scheduled', 'queued']);
// Terminal colour codes, which a log view shows as noise.
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]/g;

/**
 * A log view. `streamUrl(try, after)` is the log stream's URL; `tryHref(try)` the page URL
 * showing that try; `tryNumber` the latest try; `selected` the try asked for (null: follow
 * the latest); `state` the task instance's state; `fileName(try)` names a download.
 * Returns `{el, update({tryNumber, state}), destroy()}`.
 */
export function logView({ streamUrl, tryHref, tryNumber, selected = null, state = null, fileName }) {
  let tries = Math.max(1, tryNumber || 0);
  let autoLatest = !selected || selected > tries;
  let shown = autoLatest ? tries : selected;
  let tiState = state;

  // ---- the lines of the shown try ----
  let text = [];
  let stamps = [];
  let streams = [];
  let lastSeq = 0;
  let close = null;
  let ended = false;
  let failed = false;
  let openedAt = 0;
  let firstPaintPending = true;

  // ---- view state ----
  let following = true;
  let showStamps = localStorage.getItem(TIMESTAMPS_KEY) !== 'off';
  let query = '';
  let needle = '';
  let matches = [];
  let current = -1;
  let filterOnly = false;
  let renderedStart = -1;
  let renderedEnd = -1;
  let dirty = true;
  let frame = 0;
  let spacerHeight = -1;
  let unseen = 0;
  /** The line a `#L<n>` link points at (0-based), shown marked; -1 for none. */
  let pinned = -1;
  let revealPinned = false;
  let rawTry = tryNumber || 0;
  /** The task instance's try number when the stream was opened. */
  let rawTryAtOpen = rawTry;

  const tabs = h('nav.log-tries', { 'aria-label': 'Tries' });
  const followButton = h('button.small.toggle', { type: 'button', id: 'log-follow', 'aria-pressed': 'true', title: 'Keep the newest line in view (scroll up to pause)' }, h('span.follow-dot', { 'aria-hidden': 'true' }), 'Follow');
  const stampButton = h('button.small.toggle', { type: 'button', id: 'log-timestamps', 'aria-pressed': String(showStamps), title: 'Show when each line was written' }, 'Timestamps');
  const search = h('input', { type: 'search', id: 'log-search', placeholder: 'Search the log', title: 'Search the log (press / in the log to come here)', 'aria-label': 'Search the log', autocomplete: 'off', spellcheck: 'false' });
  const counter = h('span.log-matches', { id: 'log-matches', 'aria-live': 'polite' });
  const prev = h('button.small', { type: 'button', id: 'log-prev', title: 'Previous match (Shift+Enter)', 'aria-label': 'Previous match', disabled: true }, '↑');
  const next = h('button.small', { type: 'button', id: 'log-next', title: 'Next match (Enter)', 'aria-label': 'Next match', disabled: true }, '↓');
  const onlyBox = h('input', { type: 'checkbox', id: 'log-only-matches' });
  const onlyLabel = h('label.log-only', { for: 'log-only-matches', title: 'Hide the lines that do not match' }, onlyBox, 'Only matches');
  const topButton = h('button.small', { type: 'button', id: 'log-top', title: 'First line' }, 'Top');
  const bottomButton = h('button.small', { type: 'button', id: 'log-bottom', title: 'Last line' }, 'Bottom');
  const copyButton = h('button.small', { type: 'button', id: 'log-copy', title: 'Copy the lines shown' }, 'Copy');
  const downloadButton = h('button.small', { type: 'button', id: 'log-download', title: 'Download the lines shown as a text file' }, 'Download');
  const rows = h('div.log-rows');
  const spacer = h('div.log-spacer', rows);
  const scroller = h('div.log-scroller', { id: 'log-scroller', tabindex: '0', role: 'region', 'aria-label': 'Log lines' }, spacer);
  const placeholder = h('div.log-placeholder', { id: 'log-placeholder' });
  const status = h('div.log-status', { id: 'log-status' });
  const el = h('section.logview', { id: 'log-view' },
    h('div.log-head', tabs,
      h('div.log-tools',
        h('div.log-find', search, counter, prev, next, onlyLabel),
        h('div.log-buttons', followButton, stampButton, topButton, bottomButton, copyButton, downloadButton))),
    h('div.log-body', scroller, placeholder),
    status);

  // ---- the stream ----

  function open(tryNo, after = 0) {
    if (close) close();
    ended = false;
    failed = false;
    rawTryAtOpen = rawTry;
    el.dataset.try = String(tryNo);
    el.dataset.ended = 'false';
    close = followLog(streamUrl(tryNo, after), {
      onLines: (batch) => {
        if (tryNo !== shown) return;
        add(batch);
      },
      onEnd: () => {
        if (tryNo !== shown) return;
        close = null;
        ended = true;
        el.dataset.ended = 'true';
        if (!el.dataset.completeMs) el.dataset.completeMs = String(Math.round(performance.now() - openedAt));
        schedule();
      },
      onError: () => {
        if (tryNo !== shown) return;
        close = null;
        failed = true;
        schedule();
      },
    });
    schedule();
  }

  function reset(tryNo) {
    text = [];
    stamps = [];
    streams = [];
    lastSeq = 0;
    matches = [];
    current = -1;
    renderedStart = renderedEnd = -1;
    spacerHeight = -1;
    dirty = true;
    firstPaintPending = true;
    openedAt = performance.now();
    delete el.dataset.openMs;
    delete el.dataset.completeMs;
    const hash = /^#L(\d+)$/.exec(location.hash);
    pinned = hash ? Number(hash[1]) - 1 : -1;
    revealPinned = pinned >= 0;
    setFollowing(true, false);
    shown = tryNo;
    renderTabs();
    open(tryNo, 0);
  }

  function add(batch) {
    const from = text.length;
    for (const line of batch) {
      if (line.seq <= lastSeq) continue;
      lastSeq = line.seq;
      const raw = line.line;
      text.push(raw.includes('\x1b') ? raw.replace(ANSI, '') : raw);
      stamps.push(line.timestamp);
      const code = STREAMS.indexOf(line.stream);
      streams.push(code < 0 ? 0 : code);
    }
    if (needle) {
      for (let i = from; i < text.length; i++) if (text[i].toLowerCase().includes(needle)) matches.push(i);
      updateCounter();
    }
    if (!following && !firstPaintPending) unseen += text.length - from;
    if (revealPinned && text.length > pinned) {
      revealPinned = false;
      following = false;
      reveal(pinned);
    }
    dirty = dirty || renderedEnd >= from - 1;
    schedule();
  }

  // ---- painting ----

  function schedule() {
    if (!frame) frame = requestAnimationFrame(paint);
  }

  /** How many rows the view has, and which line a row shows. */
  function count() {
    return filterOnly && needle ? matches.length : text.length;
  }

  function lineAt(row) {
    return filterOnly && needle ? matches[row] : row;
  }

  /** Virtual pixels (rows times ROW) per pixel scrolled, when the log is taller than MAX_PX. */
  function scale(total, height) {
    return total > MAX_PX ? (total - height) / Math.max(1, MAX_PX - height) : 1;
  }

  function paint() {
    frame = 0;
    const n = count();
    const height = scroller.clientHeight || 400;
    const total = n * ROW;
    const want = Math.min(total, MAX_PX);
    if (want !== spacerHeight) {
      spacer.style.height = `${want}px`;
      spacerHeight = want;
    }
    if (following) scroller.scrollTop = want;
    const k = scale(total, height);
    const exact = scroller.scrollTop * k;
    const firstVisible = Math.floor(exact / ROW);
    const visible = Math.ceil(height / ROW) + 1;
    const inside = firstVisible >= renderedStart + (renderedStart > 0 ? 20 : 0)
      && Math.min(n, firstVisible + visible) <= renderedEnd - (renderedEnd < n ? 20 : 0);
    if (dirty || !inside) {
      renderedStart = Math.max(0, firstVisible - OVERSCAN);
      renderedEnd = Math.min(n, firstVisible + visible + OVERSCAN);
      buildRows();
      dirty = false;
    }
    rows.style.transform = `translateY(${Math.round(scroller.scrollTop - (exact - renderedStart * ROW))}px)`;
    renderStatus();
    if (firstPaintPending && (text.length || ended || failed)) {
      firstPaintPending = false;
      const since = openedAt;
      // The frame after this one starts once this one is on screen.
      requestAnimationFrame(() => {
        if (since === openedAt) el.dataset.openMs = String(Math.round(performance.now() - since));
      });
    }
  }

  function buildRows() {
    const digits = String(text.length || 1).length;
    el.style.setProperty('--ln-digits', String(Math.max(3, digits)));
    const currentLine = current >= 0 ? matches[current] : -1;
    const out = [];
    for (let row = renderedStart; row < renderedEnd; row++) {
      const i = lineAt(row);
      const stream = STREAMS[streams[i]];
      const line = h('div.log-row', { dataset: { n: String(i + 1), stream } },
        h('a.ln', { href: `#L${i + 1}`, tabindex: '-1', title: `Link to line ${i + 1}` }, String(i + 1)),
        showStamps ? h('span.ts', { title: fmtTime(stamps[i], { zone: true }) }, fmtClock(stamps[i])) : null,
        h('span.tx', needle ? highlight(text[i]) : text[i]));
      if (i === currentLine) line.classList.add('current');
      if (i === pinned) line.classList.add('pinned');
      out.push(line);
    }
    rows.replaceChildren(...out);
  }

  /** The line as text nodes with each match in a <mark>. */
  function highlight(line) {
    const lower = line.toLowerCase();
    const parts = [];
    let at = 0;
    for (let hit = lower.indexOf(needle); hit >= 0; hit = lower.indexOf(needle, hit + needle.length)) {
      if (hit > at) parts.push(line.slice(at, hit));
      parts.push(h('mark', line.slice(hit, hit + needle.length)));
      at = hit + needle.length;
    }
    if (at < line.length) parts.push(line.slice(at));
    return parts;
  }

  function renderStatus() {
    const lines = text.length;
    el.dataset.lines = String(lines);
    const noun = `${lines.toLocaleString('en-US')} line${lines === 1 ? '' : 's'}`;
    let message;
    let live = false;
    const waiting = !lines && shown === tries && rawTry < shown + (NOT_STARTED.has(tiState) ? 1 : 0);
    if (failed) {
      message = `The log of try ${shown} cannot be streamed (the server refused it).`;
    } else if (waiting) {
      live = true;
      message = 'Waiting for the task to start';
    } else if (!ended) {
      live = true;
      message = lines ? `Live · ${noun}` : 'Connecting…';
    } else {
      message = `${noun} · try ${shown} ${shown < tries ? 'is over' : 'ended'}`;
    }
    status.dataset.live = String(live);
    bottomButton.textContent = unseen ? `↓ ${unseen.toLocaleString('en-US')} new` : 'Bottom';
    bottomButton.classList.toggle('primary', unseen > 0);
    replace(status, h('span.status-dot', { 'aria-hidden': 'true' }), message,
      filterOnly && needle ? h('span.muted', ` · showing ${matches.length.toLocaleString('en-US')} matching`) : null);
    let empty = null;
    if (!count()) {
      if (failed) empty = ['The log cannot be shown', 'Reload the page to try again.'];
      else if (filterOnly && needle) empty = ['No line matches', 'Change the search, or untick “Only matches”.'];
      else if (waiting) empty = ['Waiting for the task to start', 'Its lines show here as it writes them.'];
      else if (ended) empty = [`Try ${shown} wrote no log lines`, shown === tries && !ACTIVE.has(tiState) ? 'Clear the task instance to run it again.' : null];
      else empty = ['No lines yet', 'Lines show here as the task writes them.'];
    }
    placeholder.hidden = !empty;
    if (empty) replace(placeholder, h('p.empty-title', empty[0]), empty[1] ? h('p.muted', empty[1]) : null);
  }

  // ---- tries ----

  function renderTabs() {
    const links = [];
    for (let n = 1; n <= tries; n++) {
      const a = h('a', { href: tryHref(n), dataset: { try: String(n) }, 'aria-current': n === shown ? 'page' : null }, `Try ${n}`);
      a.addEventListener('click', (event) => {
        if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
        event.preventDefault();
        autoLatest = n === tries;
        history.replaceState(null, '', tryHref(n));
        if (n !== shown) reset(n);
      });
      links.push(a);
    }
    replace(tabs, links);
  }

  // ---- follow, scroll, search ----

  function setFollowing(on, scroll = true) {
    following = on;
    if (on) unseen = 0;
    followButton.setAttribute('aria-pressed', String(on));
    if (on && scroll) schedule();
  }

  followButton.addEventListener('click', () => setFollowing(!following));
  stampButton.addEventListener('click', () => {
    showStamps = !showStamps;
    localStorage.setItem(TIMESTAMPS_KEY, showStamps ? 'on' : 'off');
    stampButton.setAttribute('aria-pressed', String(showStamps));
    el.classList.toggle('no-stamps', !showStamps);
    dirty = true;
    schedule();
  });
  el.classList.toggle('no-stamps', !showStamps);
  topButton.addEventListener('click', () => {
    setFollowing(false);
    scroller.scrollTop = 0;
  });
  bottomButton.addEventListener('click', () => setFollowing(true));

  scroller.addEventListener('scroll', () => {
    const atBottom = scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight - BOTTOM_SLACK;
    if (atBottom !== following) setFollowing(atBottom, false);
    schedule();
  }, { passive: true });

  let typing = 0;
  search.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(runSearch, text.length > 20000 ? 200 : 80);
  });
  search.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      event.preventDefault();
      if (search.value !== query) runSearch();
      jump(event.shiftKey ? -1 : 1);
    } else if (event.key === 'Escape' && search.value) {
      event.preventDefault();
      search.value = '';
      runSearch();
    }
  });
  el.addEventListener('keydown', (event) => {
    if (event.key === '/' && event.target !== search && !event.ctrlKey && !event.metaKey && !event.altKey) {
      event.preventDefault();
      search.focus();
      search.select();
    }
  });
  rows.addEventListener('click', (event) => {
    const number = event.target.closest('a.ln');
    if (!number || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    pinned = Number(number.textContent) - 1;
    history.replaceState(null, '', `${location.pathname}${location.search}#L${pinned + 1}`);
    setFollowing(false, false);
    dirty = true;
    schedule();
  });
  prev.addEventListener('click', () => jump(-1));
  next.addEventListener('click', () => jump(1));
  onlyBox.addEventListener('change', () => {
    filterOnly = onlyBox.checked;
    const keep = current >= 0 ? matches[current] : -1;
    dirty = true;
    spacerHeight = -1;
    if (keep >= 0) reveal(filterOnly ? current : keep);
    else schedule();
  });

  function runSearch() {
    clearTimeout(typing);
    query = search.value;
    needle = query.toLowerCase();
    matches = [];
    current = -1;
    if (needle) {
      for (let i = 0; i < text.length; i++) if (text[i].toLowerCase().includes(needle)) matches.push(i);
    }
    updateCounter();
    dirty = true;
    spacerHeight = -1;
    if (matches.length) jump(1);
    else schedule();
  }

  function updateCounter() {
    const m = matches.length;
    counter.textContent = needle ? (m ? `${current >= 0 ? current + 1 : 0} of ${m.toLocaleString('en-US')}` : 'No match') : '';
    counter.dataset.count = String(m);
    prev.disabled = next.disabled = !m;
  }

  /** Go to the next (+1) or previous (-1) match, from the current one or from the view. */
  function jump(step) {
    if (!matches.length) return;
    if (current < 0) {
      // The first match at or below the top of the view (or above it, going back).
      const top = lineAt(Math.floor((scroller.scrollTop * scale(count() * ROW, scroller.clientHeight)) / ROW)) || 0;
      let at = matches.findIndex((i) => i >= top);
      if (at < 0) at = step > 0 ? 0 : matches.length - 1;
      else if (step < 0) at = Math.max(0, at - 1);
      current = at;
    } else {
      current = (current + step + matches.length) % matches.length;
    }
    updateCounter();
    reveal(filterOnly ? current : matches[current]);
  }

  /** Scroll so that row `row` is in the middle of the view. */
  function reveal(row) {
    setFollowing(false, false);
    const height = scroller.clientHeight || 400;
    const total = count() * ROW;
    spacer.style.height = `${Math.min(total, MAX_PX)}px`;
    spacerHeight = Math.min(total, MAX_PX);
    const exact = Math.max(0, row * ROW - height / 2 + ROW / 2);
    scroller.scrollTop = exact / scale(total, height);
    dirty = true;
    schedule();
  }

  // ---- copy and download ----

  function shownText() {
    const n = count();
    const out = new Array(n);
    for (let row = 0; row < n; row++) {
      const i = lineAt(row);
      out[row] = showStamps ? `${stamps[i]} ${text[i]}` : text[i];
    }
    return out.join('\n') + (n ? '\n' : '');
  }

  copyButton.addEventListener('click', async () => {
    const body = shownText();
    try {
      await navigator.clipboard.writeText(body);
    } catch {
      const area = h('textarea.offscreen', { readonly: true }, body);
      document.body.appendChild(area);
      area.select();
      const ok = document.execCommand('copy');
      area.remove();
      if (!ok) {
        toast('The browser refused to copy; use Download instead.', 'error');
        return;
      }
    }
    toast(`Copied ${count().toLocaleString('en-US')} lines.`, 'info');
  });

  downloadButton.addEventListener('click', () => {
    const url = URL.createObjectURL(new Blob([shownText()], { type: 'text/plain;charset=utf-8' }));
    const a = h('a', { href: url, download: fileName(shown) });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  });

  // Lines that were off screen come into view when the scroller gets its size.
  const resize = new ResizeObserver(() => {
    dirty = true;
    schedule();
  });
  resize.observe(scroller);

  reset(shown);

  return {
    el,
    /** The task instance changed: a new try adds a tab (and is shown when following the latest). */
    update({ tryNumber: latest, state: newState }) {
      tiState = newState;
      rawTry = latest || 0;
      const now = Math.max(1, rawTry);
      if (now > tries) {
        tries = now;
        if (autoLatest) reset(tries);
        else renderTabs();
        return;
      }
      // The stream ended before this try existed (the task had not been queued yet), or
      // broke while it runs: read on from where it was.
      const early = ended && rawTryAtOpen < shown;
      if (shown === tries && rawTry >= shown && (early || (failed && ACTIVE.has(newState)))) open(shown, lastSeq);
      else schedule();
    },
    destroy() {
      if (close) close();
      close = null;
      clearTimeout(typing);
      if (frame) cancelAnimationFrame(frame);
      resize.disconnect();
      text = stamps = streams = matches = [];
    },
  };
}
