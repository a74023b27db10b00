// The DAG list (`/` and `/dags`): search, tag and paused filters, sort and paging, all kept in
// the URL; per DAG its schedule in words and next run, last run, a strip of recent run states,
// the pause toggle and the trigger button; the import-error banner and component health. Run
// changes pushed by the server refresh the rows' runs in place.

import * as api from '../api.js';
import { h, replace, link, path, stateBadge, time, relative, empty, coalesce, fmtTime } from '../dom.js';
import { describeSchedule } from '../cron.js';
import { toast } from '../dialog.js';

const PAGE_SIZE = 25;
const SORTS = { dag_id: 'DAG', '-dag_id': 'DAG (Z–A)', '-last_parsed_time': 'Recently parsed' };

export default async function render(ctx) {
  ctx.setTitle('DAGs');
  const q = ctx.query;
  const filters = {
    search: q.get('search') || '',
    tags: q.getAll('tags'),
    paused: q.get('paused') || 'all',
    order: SORTS[q.get('order_by')] ? q.get('order_by') : 'dag_id',
    page: Math.max(1, Number(q.get('page')) || 1),
  };

  const banner = h('div');
  const health = h('div.health', { id: 'health' });
  const search = h('input', { type: 'search', id: 'dag-search', placeholder: 'Search DAGs', value: filters.search, 'aria-label': 'Search DAGs' });
  const paused = h('select', { id: 'dag-paused', 'aria-label': 'Paused filter' },
    [['all', 'All'], ['active', 'Active'], ['paused', 'Paused']].map(([v, label]) => h('option', { value: v, selected: filters.paused === v }, label)));
  const order = h('select', { id: 'dag-order', 'aria-label': 'Sort' },
    Object.entries(SORTS).map(([v, label]) => h('option', { value: v, selected: filters.order === v }, label)));
  const tagBar = h('div.tags', { id: 'tag-filter' });
  const body = h('div', { id: 'dag-list-body' });

  ctx.main.append(
    h('div.page-head', h('div.grow', h('h1', 'DAGs')), health),
    banner,
    h('div.toolbar', search, paused, order, tagBar),
    body,
  );

  const setUrl = (changes) => {
    Object.assign(filters, changes);
    const params = new URLSearchParams();
    if (filters.search) params.set('search', filters.search);
    for (const t of filters.tags) params.append('tags', t);
    if (filters.paused !== 'all') params.set('paused', filters.paused);
    if (filters.order !== 'dag_id') params.set('order_by', filters.order);
    if (filters.page > 1) params.set('page', String(filters.page));
    const url = `/dags${params.toString() ? '?' + params : ''}`;
    history.replaceState(null, '', url);
    load();
  };

  let typing;
  search.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => setUrl({ search: search.value.trim(), page: 1 }), 200);
  });
  ctx.cleanup(() => clearTimeout(typing));
  paused.addEventListener('change', () => setUrl({ paused: paused.value, page: 1 }));
  order.addEventListener('change', () => setUrl({ order: order.value, page: 1 }));

  let shown = [];
  const rows = new Map();
  // Every tag, for the filter bar: read once per visit, off the list's critical path.
  const tags = loadTags();

  const load = coalesce(async () => {
    const query = {
      limit: PAGE_SIZE,
      offset: (filters.page - 1) * PAGE_SIZE,
      order_by: filters.order,
      dag_id_pattern: filters.search ? `%${filters.search}%` : undefined,
      tags: filters.tags.length ? filters.tags : undefined,
      paused: filters.paused === 'all' ? undefined : String(filters.paused === 'paused'),
    };
    const [list, errors] = await Promise.all([
      api.get('/api/v2/dags', query, { signal: ctx.signal }),
      api.get('/api/v2/importErrors', { limit: 1 }, { signal: ctx.signal }),
    ]);
    shown = list.dags;
    renderBanner(banner, errors.total_entries);
    tags.then((all) => renderTags(tagBar, all, filters, setUrl)).catch(() => {});
    rows.clear();
    if (!shown.length) {
      replace(body, filters.search || filters.tags.length || filters.paused !== 'all'
        ? empty('No DAG matches these filters', 'Clear the search or the filters to see every DAG.', h('a.button', { href: '/dags' }, 'Clear filters'))
        : empty('No DAGs yet', 'Put a DAG file (YAML or JSON) in the DAGs folder; it shows here within seconds. A file that fails to parse is listed under Import errors.'));
      return;
    }
    const table = h('table.list', { id: 'dag-list' },
      h('thead', h('tr', h('th', h('span', { title: 'Paused DAGs make no runs' }, 'Active')), h('th', 'DAG'), h('th', 'Schedule'), h('th', 'Owner'), h('th', 'Tags'), h('th', 'Last run'), h('th', 'Recent runs'), h('th', h('span.sr', '')))),
      h('tbody', shown.map((dag) => {
        const row = dagRow(ctx, dag, setUrl, filters);
        rows.set(dag.dag_id, row);
        return row.tr;
      })));
    const pages = Math.max(1, Math.ceil(list.total_entries / PAGE_SIZE));
    const pager = h('div.pager',
      `${list.total_entries} DAG${list.total_entries === 1 ? '' : 's'}`,
      h('button', { type: 'button', disabled: filters.page <= 1, onclick: () => setUrl({ page: filters.page - 1 }) }, 'Previous'),
      `Page ${filters.page} of ${pages}`,
      h('button', { type: 'button', disabled: filters.page >= pages, onclick: () => setUrl({ page: filters.page + 1 }) }, 'Next'));
    replace(body, table, pager);
    await loadSummaries();
  });

  const loadSummaries = coalesce(async () => {
    if (!shown.length) return;
    const summary = await api.get('/ui/dags/summary', { dag_ids: shown.map((d) => d.dag_id).join(',') }, { signal: ctx.signal });
    for (const [dagId, info] of Object.entries(summary.dags)) rows.get(dagId)?.update(info);
  });

  const loadHealth = async () => {
    const info = await api.get('/ui/health', null, { signal: ctx.signal });
    replace(health,
      h('span', { dataset: { status: info.scheduler.status }, title: info.scheduler.latest_heartbeat ? `Last heartbeat ${fmtTime(info.scheduler.latest_heartbeat)}` : 'No heartbeat yet' }, `Scheduler ${info.scheduler.status}`),
      h('span', { dataset: { status: info.worker.status }, title: info.worker.latest_heartbeat ? `Last heartbeat ${fmtTime(info.worker.latest_heartbeat)}` : 'No heartbeat yet' }, `Worker ${info.worker.status}`));
  };

  ctx.onEvent((event) => {
    if (event.type === 'resync') load();
    else if (event.type === 'run' && rows.has(event.dag_id)) loadSummaries();
  });

  await Promise.all([load(), loadHealth().catch(() => {})]);
}

async function loadTags() {
  const dags = await api.all('/api/v2/dags', 'dags');
  return [...new Set(dags.flatMap((d) => d.tags.map((t) => t.name)))].sort();
}

function renderBanner(banner, count) {
  if (!count) {
    banner.replaceChildren();
    return;
  }
  replace(banner, h('div.banner.bad', { id: 'import-error-banner', role: 'alert' },
    `${count} DAG file${count === 1 ? '' : 's'} failed to import.`,
    link('/import-errors', 'See the import errors')));
}

function renderTags(bar, tags, filters, setUrl) {
  replace(bar, tags.map((tag) => h('button.tag', {
    type: 'button',
    'aria-pressed': String(filters.tags.includes(tag)),
    onclick: () => setUrl({ tags: filters.tags.includes(tag) ? filters.tags.filter((t) => t !== tag) : [...filters.tags, tag], page: 1 }),
  }, tag)));
}

function dagRow(ctx, dag, setUrl, filters) {
  const href = `/dags/${path(dag.dag_id)}`;
  const toggle = h('input', { type: 'checkbox', class: 'pause-toggle', checked: !dag.is_paused, disabled: !ctx.can('User'), 'aria-label': `${dag.is_paused ? 'Unpause' : 'Pause'} ${dag.dag_id}` });
  toggle.addEventListener('change', async () => {
    const pausedNow = !toggle.checked;
    toggle.disabled = true;
    try {
      await api.patch(`/api/v2/dags/${path(dag.dag_id)}`, { is_paused: pausedNow });
      dag.is_paused = pausedNow;
      toggle.setAttribute('aria-label', `${pausedNow ? 'Unpause' : 'Pause'} ${dag.dag_id}`);
      tr.dataset.paused = String(pausedNow);
      toast(`${dag.dag_id} ${pausedNow ? 'paused' : 'unpaused'}`);
    } catch (err) {
      toggle.checked = !pausedNow;
      toast(err.message, 'error');
    } finally {
      toggle.disabled = false;
    }
  });
  const nextRun = h('div.small.muted');
  const lastRun = h('td.last-run', h('span.muted', '—'));
  const strip = h('td', h('span.strip'));
  const words = describeSchedule(dag.timetable_summary);
  const actions = h('td.actions-cell');
  if (ctx.can('User')) {
    actions.appendChild(h('button.trigger', {
      type: 'button',
      title: `Trigger ${dag.dag_id}`,
      'aria-label': `Trigger ${dag.dag_id}`,
      onclick: async () => {
        const { openTrigger } = await import('../trigger.js');
        openTrigger(ctx, dag.dag_id);
      },
    }, '▶ Trigger'));
  }
  const tr = h('tr', { dataset: { dagId: dag.dag_id, paused: String(dag.is_paused) } },
    h('td', h('label.switch', toggle, h('span'))),
    h('td.dag-id', link(href, dag.dag_id), dag.description ? h('div.desc.small.muted', dag.description) : null,
      dag.has_import_errors ? h('div.small', h('a', { href: '/import-errors' }, 'Its file has an import error')) : null),
    h('td', words ? h('div', { title: dag.timetable_summary }, words) : h('span.muted', 'None (manual only)'), nextRun),
    h('td', dag.owners.join(', ')),
    h('td', dag.tags.map((t) => h('button.tag', {
      type: 'button',
      'aria-pressed': String(filters.tags.includes(t.name)),
      onclick: () => setUrl({ tags: filters.tags.includes(t.name) ? filters.tags : [...filters.tags, t.name], page: 1 }),
    }, t.name))),
    lastRun,
    strip,
    actions,
  );
  return {
    tr,
    update(info) {
      replace(nextRun, info.next_run_at ? h('span', { title: fmtTime(info.next_run_at, { zone: true }) }, `Next run ${relative(info.next_run_at)}`) : '');
      const runs = info.recent_runs;
      const last = runs[runs.length - 1];
      replace(lastRun, last
        ? h('div', link(`${href}/runs/${path(last.run_id)}`, stateBadge(last.state)), h('div.small.muted', time(last.logical_date || last.queued_at)))
        : h('span.muted', 'Never run'));
      const longest = Math.max(1, ...runs.map((r) => duration(r)));
      replace(strip.firstChild, runs.map((r) => h('a.square', {
        href: `${href}/runs/${path(r.run_id)}`,
        dataset: { state: r.state },
        title: `${r.run_id}: ${r.state}`,
        'aria-label': `Run ${r.run_id}: ${r.state}`,
        style: `height:${Math.max(6, Math.round((duration(r) / longest) * 22))}px`,
      })));
    },
  };
}

function duration(run) {
  if (!run.start_date) return 1;
  const end = run.end_date ? new Date(run.end_date) : new Date();
  return Math.max(1, end - new Date(run.start_date));
}
