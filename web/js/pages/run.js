// A run (`/dags/{dag_id}/runs/{run_id}`): its state, type and trigger, its times (the
// duration ticks while it runs), data interval, DAG version and conf; its task instances with
// a state and task filter kept in the URL, each linking to its page; and, for users who may,
// Clear (after the server's dry run), Mark success or failed, and Delete. Pushed run events
// for this run reload it in place.

import * as api from '../api.js';
import { h, replace, link, path, stateBadge, time, span, empty, coalesce, tickDurations, TASK_STATES } from '../dom.js';
import { clearRun, markRun, deleteRun, taskInstanceHref } from '../actions.js';

export default async function render(ctx) {
  const { dag_id: dagId, run_id: runId } = ctx.params;
  ctx.setTitle(`${runId} · ${dagId}`);
  const dagHref = `/dags/${path(dagId)}`;
  const runApi = `/api/v2/dags/${path(dagId)}/dagRuns/${path(runId)}`;
  const filters = {
    state: ctx.query.get('state') || '',
    task: ctx.query.get('task') || '',
  };

  const title = h('h1.run-title', { id: 'run-title' }, runId);
  const badge = h('span', { id: 'run-state' });
  const actions = h('div.actions', { id: 'run-actions' });
  const facts = h('div.run-facts', { id: 'run-facts' });
  const conf = h('div.fact.conf-fact', { id: 'run-conf' });
  const chips = h('div.state-chips', { id: 'ti-state-filter', role: 'group', 'aria-label': 'Filter by state' });
  const taskSearch = h('input', { type: 'search', id: 'ti-search', placeholder: 'Filter by task id', value: filters.task, 'aria-label': 'Filter by task id' });
  const tableBox = h('div', { id: 'ti-table-box' });

  ctx.main.append(
    h('div.crumbs', { id: 'crumbs' }, link('/dags', 'DAGs'), h('span.sep', '›'), link(dagHref, dagId), h('span.sep', '›'), h('span.current', runId)),
    h('div.page-head', h('div.grow', h('div.title-line', title, badge), h('p.muted.subtitle', { id: 'run-subtitle' })), actions),
    facts,
    h('section.run-section',
      h('div.section-head', h('h2', 'Task instances'), h('span.muted', { id: 'ti-count' })),
      h('div.toolbar', chips, taskSearch),
      tableBox),
  );

  let run = null;
  let instances = [];
  let order = new Map();
  let gone = false;

  const setUrl = (changes) => {
    Object.assign(filters, changes);
    const params = new URLSearchParams();
    if (filters.state) params.set('state', filters.state);
    if (filters.task) params.set('task', filters.task);
    history.replaceState(null, '', `${dagHref}/runs/${path(runId)}${params.toString() ? `?${params}` : ''}`);
    renderInstances();
  };
  let typing;
  taskSearch.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => setUrl({ task: taskSearch.value.trim() }), 150);
  });
  ctx.cleanup(() => clearTimeout(typing));

  const load = coalesce(async () => {
    if (gone) return;
    let fetched;
    try {
      fetched = await Promise.all([
        api.get(runApi, null, { signal: ctx.signal }),
        api.all(`${runApi}/taskInstances`, 'task_instances'),
      ]);
    } catch (err) {
      if (err.status === 404 && run) {
        gone = true;
        replace(ctx.main, empty('This run was deleted', 'It no longer exists; its DAG’s other runs are on the DAG page.', h('a.button', { href: dagHref }, `Back to ${dagId}`)));
        return;
      }
      throw err;
    }
    [run, instances] = fetched;
    renderHead();
    renderConf();
    renderFacts();
    renderInstances();
  });

  // The DAG's task order, for the table; read once, off the critical path.
  const structure = api.get(`/ui/dags/${path(dagId)}/structure`, null, { signal: ctx.signal })
    .then((s) => {
      order = new Map(s.tasks.map((t, i) => [t.task_id, i]));
      if (run) renderInstances();
    })
    .catch(() => {});

  function renderHead() {
    replace(badge, stateBadge(run.state));
    badge.firstChild.classList.add('big');
    replace(ctx.main.querySelector('#run-subtitle'),
      `${label(run.run_type)} run of `, link(dagHref, dagId),
      run.logical_date ? [' for ', time(run.logical_date)] : null,
      h('span.run-links',
        link(`${dagHref}/graph?run_id=${encodeURIComponent(runId)}`, 'Graph'),
        link(`${dagHref}/gantt?run_id=${encodeURIComponent(runId)}`, 'Gantt')));
    const canAct = ctx.can('User');
    if (!canAct) {
      replace(actions);
      return;
    }
    replace(actions,
      h('button', { type: 'button', id: 'run-clear', title: 'Clear task instances so they run again', onclick: async () => { if (await clearRun(ctx, dagId, runId)) load(); } }, '↻ Clear'),
      h('button', { type: 'button', id: 'run-mark-success', disabled: run.state === 'success', onclick: async () => { if (await markRun(ctx, dagId, runId, 'success')) load(); } }, h('span.swatch-inline', { dataset: { state: 'success' } }), 'Mark success'),
      h('button', { type: 'button', id: 'run-mark-failed', disabled: run.state === 'failed', onclick: async () => { if (await markRun(ctx, dagId, runId, 'failed')) load(); } }, h('span.swatch-inline', { dataset: { state: 'failed' } }), 'Mark failed'),
      h('button.danger.ghost-danger', { type: 'button', id: 'run-delete', onclick: () => deleteRun(ctx, dagId, runId) }, 'Delete'));
  }

  function renderFacts() {
    const version = run.dag_versions && run.dag_versions[0];
    const running = !run.end_date && run.start_date;
    const durationEl = h('span', { id: 'run-duration' }, run.start_date ? span(run.start_date, run.end_date) : h('span.muted', '—'));
    if (running) durationEl.dataset.tickStart = run.start_date;
    const item = (name, value, id) => h('div.fact', { id }, h('div.fact-name', name), h('div.fact-value', value));
    replace(facts,
      h('div.card.facts-card', h('div.fact-grid',
        item('State', stateBadge(run.state), 'fact-state'),
        item('Run type', h('span.run-type', { dataset: { type: run.run_type } }, label(run.run_type)), 'fact-run-type'),
        item('Triggered by', run.triggered_by ? label(run.triggered_by) + (run.triggering_user_name ? ` (${run.triggering_user_name})` : '') : h('span.muted', '—'), 'fact-triggered-by'),
        item('Logical date', time(run.logical_date), 'fact-logical-date'),
        item('Data interval', run.data_interval_start
          ? (run.data_interval_start === run.data_interval_end ? time(run.data_interval_start) : h('span', time(run.data_interval_start), h('span.muted', ' → '), time(run.data_interval_end)))
          : h('span.muted', '—'), 'fact-data-interval'),
        item('Run after', time(run.run_after), 'fact-run-after'),
        item('Queued at', time(run.queued_at), 'fact-queued'),
        item('Started', time(run.start_date), 'fact-start'),
        item('Ended', time(run.end_date), 'fact-end'),
        item('Duration', durationEl, 'fact-duration'),
        item('DAG version', version ? h('span', { title: version.id }, `v${version.version_number}`, h('span.muted.mono', ` ${version.id.slice(0, 8)}`), version.bundle_name ? h('span.muted', ` · ${version.bundle_name}`) : null) : h('span.muted', '—'), 'fact-version'),
        item('Tasks', summary(), 'fact-summary'),
      ), conf));
  }

  function summary() {
    const counts = countStates();
    const parts = Object.entries(counts).sort((a, b) => b[1] - a[1]);
    if (!parts.length) return h('span.muted', 'None yet');
    return h('div.mini-summary', parts.map(([state, n]) => h('span.state-count', { dataset: { state }, title: `${n} ${state.replaceAll('_', ' ')}` }, h('span.swatch', { 'aria-hidden': 'true' }), String(n))));
  }

  function renderConf() {
    const value = run.conf && Object.keys(run.conf).length ? run.conf : null;
    replace(conf, h('div.fact-name', 'Conf'), value
      ? h('pre.block.json', { id: 'run-conf-json' }, JSON.stringify(value, null, 2))
      : h('div.fact-value.muted', { id: 'run-conf-json' }, 'None: the DAG’s params took their defaults.'));
  }

  function countStates() {
    const counts = {};
    for (const ti of instances) {
      const s = ti.state || 'none';
      counts[s] = (counts[s] || 0) + 1;
    }
    return counts;
  }

  function renderInstances() {
    const counts = countStates();
    const present = TASK_STATES.filter((s) => counts[s]);
    for (const s of Object.keys(counts)) if (!present.includes(s)) present.push(s);
    replace(chips,
      h('button.chip', { type: 'button', 'aria-pressed': String(!filters.state), onclick: () => setUrl({ state: '' }) }, 'All', h('span.n', String(instances.length))),
      present.map((s) => h('button.chip', { type: 'button', dataset: { state: s }, 'aria-pressed': String(filters.state === s), onclick: () => setUrl({ state: filters.state === s ? '' : s }) },
        h('span.swatch', { 'aria-hidden': 'true' }), s.replaceAll('_', ' '), h('span.n', String(counts[s])))),
      filters.state && !counts[filters.state] ? h('button.chip', { type: 'button', 'aria-pressed': 'true', dataset: { state: filters.state }, onclick: () => setUrl({ state: '' }) }, filters.state.replaceAll('_', ' '), h('span.n', '0')) : null);
    const needle = filters.task.toLowerCase();
    const rows = instances
      .filter((ti) => !filters.state || (ti.state || 'none') === filters.state)
      .filter((ti) => !needle || ti.task_id.toLowerCase().includes(needle))
      .sort((a, b) => (order.get(a.task_id) ?? 1e9) - (order.get(b.task_id) ?? 1e9) || a.task_id.localeCompare(b.task_id) || a.map_index - b.map_index);
    ctx.main.querySelector('#ti-count').textContent = rows.length === instances.length
      ? `${instances.length} task instance${instances.length === 1 ? '' : 's'}`
      : `${rows.length} of ${instances.length} shown`;
    if (!instances.length) {
      replace(tableBox, empty('No task instances yet', run.state === 'queued' ? 'The run is queued: the scheduler creates its task instances when it starts the run.' : 'The scheduler creates them as it starts the run.'));
      return;
    }
    if (!rows.length) {
      replace(tableBox, empty('No task instance matches these filters', 'Choose “All” or clear the task filter.', h('button', { type: 'button', onclick: () => { taskSearch.value = ''; setUrl({ state: '', task: '' }); } }, 'Clear filters')));
      return;
    }
    replace(tableBox, h('table.list.ti-table', { id: 'ti-table' },
      h('thead', h('tr', h('th', 'Task'), h('th.num', 'Map index'), h('th', 'State'), h('th.num', 'Try'), h('th', 'Started'), h('th', 'Ended'), h('th.num', 'Duration'), h('th', 'Operator'), h('th', 'Pool'))),
      h('tbody', rows.map((ti) => {
        const href = taskInstanceHref(dagId, runId, ti.task_id, ti.map_index);
        const dur = h('td.num.mono', ti.start_date ? span(ti.start_date, ti.end_date) : h('span.muted', '—'));
        if (ti.start_date && !ti.end_date && ti.state === 'running') dur.dataset.tickStart = ti.start_date;
        return h('tr', { dataset: { taskId: ti.task_id, mapIndex: String(ti.map_index), state: ti.state || 'none' } },
          h('td.task-cell', link(href, ti.task_id)),
          h('td.num', ti.map_index >= 0 ? link(href, String(ti.map_index)) : h('span.muted', '—')),
          h('td', stateBadge(ti.state)),
          h('td.num', ti.try_number ? String(ti.try_number) : h('span.muted', '—'), ti.max_tries > 0 ? h('span.muted', ` / ${ti.max_tries + 1}`) : null),
          h('td.when', time(ti.start_date)),
          h('td.when', time(ti.end_date)),
          dur,
          h('td.muted', ti.operator || ''),
          h('td.muted', ti.pool));
      }))));
  }

  // Running durations tick without fetching anything.
  tickDurations(ctx);

  ctx.onEvent((event) => {
    if (event.type === 'resync' || (event.type === 'run' && event.dag_id === dagId && event.run_id === runId)) {
      load().catch((err) => console.error(err));
    }
  });

  await load();
  await structure;
}

/** 'manual' → 'Manual', 'rest_api' → 'REST API'. */
function label(text) {
  const special = { rest_api: 'REST API', timetable: 'Schedule', cli: 'CLI', ui: 'UI' };
  if (special[text]) return special[text];
  const words = String(text).replaceAll('_', ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}
