// The app: who is logged in, the top bar, and the router that maps Airflow 3's page paths to
// page modules. A page module exports `default async function render(ctx)`; the router gives
// it the parsed path, the session, a scoped event subscription and an abort signal, and
// cleans all of that up when the user navigates away, so a page left open does not grow.

import * as api from './api.js';
import * as live from './live.js';
import { h, replace, setTimezone, timezone } from './dom.js';
import { toast } from './dialog.js';

const ROLES = ['Viewer', 'User', 'Op', 'Admin'];

/** Path patterns, most specific first; `:name` is one segment, `?` marks it optional. */
const ROUTES = [
  ['/login', 'login'],
  ['/', 'dags'],
  ['/dags', 'dags'],
  ['/dags/:dag_id/runs/:run_id/tasks/:task_id/mapped/:map_index/:tab?', 'task_instance'],
  ['/dags/:dag_id/runs/:run_id/tasks/:task_id/:tab?', 'task_instance'],
  ['/dags/:dag_id/runs/:run_id/:tab?', 'run'],
  ['/dags/:dag_id/:tab?', 'dag'],
  ['/variables', 'variables'],
  ['/connections', 'connections'],
  ['/pools', 'pools'],
  ['/import-errors', 'import_errors'],
  ['/users', 'users'],
];

function match(pathname) {
  const segments = pathname.replace(/\/+$/, '').split('/').filter(Boolean);
  for (const [pattern, page] of ROUTES) {
    const parts = pattern.split('/').filter(Boolean);
    const required = parts.filter((p) => !p.endsWith('?')).length;
    if (segments.length < required || segments.length > parts.length) continue;
    const params = {};
    let ok = true;
    parts.forEach((part, i) => {
      if (!ok) return;
      const segment = segments[i];
      if (part.startsWith(':')) {
        if (segment !== undefined) params[part.slice(1).replace('?', '')] = decodeURIComponent(segment);
      } else if (part !== segment) {
        ok = false;
      }
    });
    if (ok) return { page, params };
  }
  return null;
}

/** The logged-in user, or null. */
export let session = null;

/** Whether the user's role is at least `role`. */
export function can(role) {
  return Boolean(session) && ROLES.indexOf(session.role) >= ROLES.indexOf(role);
}

async function loadSession() {
  try {
    const info = await api.get('/ui/session');
    startSession(info);
  } catch (err) {
    if (err.status !== 401) throw err;
    session = null;
  }
}

/** After login: remember the user and start the event stream. */
export function startSession(info) {
  session = info;
  api.setCsrf(info.csrf_header, info.csrf_token);
  live.connect();
  renderTopbar();
}

export async function logout() {
  try {
    await api.del('/ui/session');
  } finally {
    session = null;
    live.disconnect();
    renderTopbar();
    navigate('/login', { replace: true });
  }
}

// ---- navigation ------------------------------------------------------------------------------

let current = null;

/** Go to an in-app URL without reloading. */
export function navigate(href, { replace: replaceState = false } = {}) {
  const target = new URL(href, location.origin);
  if (target.origin !== location.origin) {
    location.assign(href);
    return;
  }
  if (replaceState) history.replaceState(null, '', target.pathname + target.search + target.hash);
  else history.pushState(null, '', target.pathname + target.search + target.hash);
  route();
}

async function route() {
  const started = performance.now();
  if (current) current.leave();
  const main = document.getElementById('page');
  const found = match(location.pathname);
  if (!found) {
    main.dataset.page = 'not-found';
    replace(main, h('div.empty', h('p.empty-title', 'There is no page here'), h('p', h('a', { href: '/dags' }, 'Go to the DAG list'))));
    main.dataset.ready = 'true';
    return;
  }
  if (!session && found.page !== 'login') {
    const next = location.pathname + location.search;
    navigate(`/login?next=${encodeURIComponent(next)}`, { replace: true });
    return;
  }
  const controller = new AbortController();
  const cleanups = [];
  const ctx = {
    main,
    params: found.params,
    query: new URLSearchParams(location.search),
    session,
    can,
    navigate,
    signal: controller.signal,
    /** Page events until the user leaves the page. */
    onEvent(handler) {
      cleanups.push(live.subscribe(handler));
    },
    /** Something to undo when the user leaves the page. */
    cleanup(fn) {
      cleanups.push(fn);
    },
    setTitle(text) {
      document.title = text ? `${text} · Updraft` : 'Updraft';
    },
  };
  const visit = {
    leave() {
      controller.abort();
      for (const fn of cleanups.splice(0)) {
        try {
          fn();
        } catch (err) {
          console.error(err);
        }
      }
    },
  };
  current = visit;
  main.dataset.page = found.page.replaceAll('_', '-');
  delete main.dataset.ready;
  main.replaceChildren(h('p.loading', 'Loading…'));
  markNav(found.page);
  try {
    const module = await import(`./pages/${found.page}.js`);
    if (controller.signal.aborted) return;
    main.replaceChildren();
    await module.default(ctx);
  } catch (err) {
    if (controller.signal.aborted || err.name === 'AbortError') return;
    console.error(err);
    replace(main, h('div.empty.error', h('p.empty-title', err.status === 404 ? 'Not found' : 'This page could not be loaded'), h('p', err.message || String(err)), h('p', h('a', { href: '/dags' }, 'Back to the DAG list'))));
  }
  if (current === visit) {
    // For the speed tests: when this page's data was on screen, in ms since the document
    // started loading, and how long this page took from the route change.
    main.dataset.readyAt = String(Math.round(performance.now()));
    main.dataset.routeMs = String(Math.round(performance.now() - started));
    main.dataset.ready = 'true';
  }
}

// ---- the top bar -----------------------------------------------------------------------------

const NAV = [
  ['/dags', 'DAGs', 'Viewer', ['dags', 'dag', 'run', 'task_instance']],
  ['/variables', 'Variables', 'Op', ['variables']],
  ['/connections', 'Connections', 'Op', ['connections']],
  ['/pools', 'Pools', 'Viewer', ['pools']],
  ['/import-errors', 'Import errors', 'Viewer', ['import_errors']],
  ['/users', 'Users', 'Admin', ['users']],
];

function markNav(page) {
  for (const a of document.querySelectorAll('#topbar nav a')) {
    if (a.dataset.pages.split(' ').includes(page)) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

const THEME_KEY = 'updraft.theme';

function applyTheme() {
  const chosen = localStorage.getItem(THEME_KEY);
  const dark = chosen ? chosen === 'dark' : matchMedia('(prefers-color-scheme: dark)').matches;
  document.documentElement.dataset.theme = dark ? 'dark' : 'light';
}

function renderTopbar() {
  const bar = document.getElementById('topbar');
  if (!session) {
    bar.hidden = true;
    bar.replaceChildren();
    return;
  }
  bar.hidden = false;
  const themeButton = h('button.ghost', {
    id: 'theme-toggle',
    type: 'button',
    title: 'Switch between light and dark',
    onclick: () => {
      const next = document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark';
      localStorage.setItem(THEME_KEY, next);
      applyTheme();
    },
  }, 'Theme');
  const zoneButton = h('button.ghost', {
    id: 'tz-toggle',
    type: 'button',
    title: 'Show times in UTC or in this browser\'s time zone',
    onclick: () => {
      setTimezone(timezone() === 'utc' ? 'local' : 'utc');
      zoneButton.textContent = timezone() === 'utc' ? 'UTC' : 'Local time';
      route();
    },
  }, timezone() === 'utc' ? 'UTC' : 'Local time');
  replace(bar,
    h('a.brand', { href: '/dags' }, h('img', { src: '/static/favicon.svg', alt: '', width: 22, height: 22 }), 'Updraft'),
    h('nav', { 'aria-label': 'Main' }, NAV.filter(([, , role]) => can(role)).map(([href, label, , pages]) => h('a', { href, dataset: { pages: pages.join(' ') } }, label))),
    h('div.spacer'),
    h('span.live-dot', { title: 'Live updates' }),
    zoneButton,
    themeButton,
    h('span.user', { id: 'user', title: `Role: ${session.role}` }, session.username, h('small', session.role)),
    h('button.ghost', { id: 'logout', type: 'button', onclick: logout }, 'Log out'),
  );
}

// ---- start -----------------------------------------------------------------------------------

document.addEventListener('click', (event) => {
  const a = event.target.closest('a[href]');
  if (!a || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  if (a.target || a.hasAttribute('download')) return;
  const href = a.getAttribute('href');
  if (!href.startsWith('/') || href.startsWith('//') || href.startsWith('/api/') || href.startsWith('/docs')) return;
  event.preventDefault();
  navigate(href);
});

window.addEventListener('popstate', route);
matchMedia('(prefers-color-scheme: dark)').addEventListener('change', applyTheme);
api.whenUnauthorized(() => {
  if (!session) return;
  session = null;
  live.disconnect();
  renderTopbar();
  toast('Your session ended. Log in again.', 'error');
  navigate(`/login?next=${encodeURIComponent(location.pathname + location.search)}`, { replace: true });
});

applyTheme();
loadSession()
  .catch((err) => console.error(err))
  .finally(route);
