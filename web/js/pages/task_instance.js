// A task instance (`/dags/{dag_id}/runs/{run_id}/tasks/{task_id}`, `…/mapped/{map_index}`):
// its state, try and operator, Clear and Mark for users who may, and tabs as sub-paths: the
// log (default; live while the task runs, tries as tabs), `/rendered_templates` (the
// arguments as rendered for this instance), `/xcom` (its XCom values) and `/details`. A mapped
// task's instances are listed at `…/tasks/{task_id}/mapped`, and each instance's page moves
// between them. Pushed run events for the run reload the instance in place.

import * as api from '../api.js';
import { h, replace, link, path, stateBadge, time, fmtDuration, span, empty, coalesce, tickDurations, TASK_STATES } from '../dom.js';
import { clearTask, markTask, taskInstanceHref } from '../actions.js';
import { logView } from '../log_view.js';

const TABS = [
  ['logs', 'Logs'],
  ['rendered_templates', 'Rendered templates'],
  ['xcom', 'XCom'],
  ['details', 'Details'],
];

export default async function render(ctx) {
  const { dag_id: dagId, run_id: runId, task_id: taskId } = ctx.params;
  const mapped = ctx.params.map_index !== undefined;
  const mapIndex = mapped ? Number(ctx.params.map_index) : -1;
  if (mapped && (!Number.isInteger(mapIndex) || mapIndex < 0)) {
    replace(ctx.main, empty('There is no such map index', `“${ctx.params.map_index}” is not a map index; map indexes are whole numbers from 0.`, link(taskInstanceHref(dagId, runId, taskId), 'Back to the task')));
    return;
  }
  const tab = ctx.params.tab || 'logs';
  if (!mapped && tab === 'mapped') return renderMappedList(ctx, dagId, runId, taskId);
  if (!TABS.some(([id]) => id === tab)) {
    replace(ctx.main, empty('There is no such tab', `A task instance has the tabs ${TABS.map(([, name]) => name).join(', ')}.`, link(taskInstanceHref(dagId, runId, taskId, mapIndex), 'Open its log')));
    return;
  }

  const label = mapped ? `${taskId} [${mapIndex}]` : taskId;
  ctx.setTitle(`${label} · ${runId}`);
  const runApi = `/api/v2/dags/${path(dagId)}/dagRuns/${path(runId)}`;
  const tiApi = `${runApi}/taskInstances/${path(taskId)}${mapped ? `/${mapIndex}` : ''}`;
  const base = taskInstanceHref(dagId, runId, taskId, mapIndex);
  const dagHref = `/dags/${path(dagId)}`;
  const runHref = `${dagHref}/runs/${path(runId)}`;

  let ti;
  try {
    ti = await api.get(tiApi, null, { signal: ctx.signal });
  } catch (err) {
    if (err.status === 404 && !mapped && /mapped/i.test(err.message)) {
      ctx.navigate(`${base}/mapped`, { replace: true });
      return;
    }
    throw err;
  }
  const task = api.get(`/api/v2/dags/${path(dagId)}/tasks/${path(taskId)}`, null, { signal: ctx.signal }).catch(() => null);
  let siblings = [];

  const badge = h('span', { id: 'ti-state' });
  const subtitle = h('p.muted.subtitle', { id: 'ti-subtitle' });
  const actions = h('div.actions', { id: 'ti-actions' });
  const mapNav = h('div.map-nav', { id: 'map-nav', hidden: !mapped });
  const body = h('div.tab-body', { id: 'ti-tab' });

  ctx.main.append(
    h('div.crumbs', { id: 'crumbs' }, link('/dags', 'DAGs'), h('span.sep', '›'), link(dagHref, dagId), h('span.sep', '›'), link(runHref, runId), h('span.sep', '›'),
      mapped ? [link(`${taskInstanceHref(dagId, runId, taskId)}/mapped`, taskId), h('span.sep', '›'), h('span.current', `[${mapIndex}]`)] : h('span.current', taskId)),
    h('div.page-head',
      h('div.grow', h('div.title-line', h('h1.ti-title', { id: 'ti-title' }, taskId, mapped ? h('span.map-index', `[${mapIndex}]`) : null), badge), subtitle),
      actions),
    mapNav,
    h('nav.tabs', { 'aria-label': 'Task instance' },
      TABS.map(([id, name]) => h('a', { href: id === 'logs' ? base : `${base}/${id}`, 'aria-current': id === tab ? 'page' : null, dataset: { tab: id } }, name)),
      mapped ? h('a', { href: `${taskInstanceHref(dagId, runId, taskId)}/mapped`, dataset: { tab: 'mapped' } }, 'Mapped instances') : null),
    body,
  );

  function renderHead() {
    replace(badge, stateBadge(ti.state));
    badge.firstChild.classList.add('big');
    const dur = ti.start_date ? h('span', { id: 'ti-duration' }, span(ti.start_date, ti.end_date)) : null;
    if (dur && !ti.end_date && ti.state === 'running') dur.dataset.tickStart = ti.start_date;
    replace(subtitle,
      h('span', { id: 'ti-try' }, ti.try_number ? `Try ${ti.try_number} of ${ti.max_tries + 1}` : 'Not run yet'),
      h('span.dot', ' · '), h('span', { id: 'ti-operator' }, ti.operator || 'Task'),
      dur ? [h('span.dot', ' · '), ti.end_date ? 'ran ' : 'running for ', dur] : null,
      ti.start_date ? [h('span.dot', ' · '), 'started ', time(ti.start_date)] : null);
    if (!ctx.can('User')) {
      replace(actions);
      return;
    }
    replace(actions,
      h('button', { type: 'button', id: 'ti-clear', title: 'Clear this task instance so it runs again', onclick: async () => { if (await clearTask(ctx, dagId, runId, taskId, mapIndex)) load(); } }, '↻ Clear'),
      h('button', { type: 'button', id: 'ti-mark-success', disabled: ti.state === 'success', onclick: async () => { if (await markTask(ctx, dagId, runId, taskId, mapIndex, 'success')) load(); } }, h('span.swatch-inline', { dataset: { state: 'success' } }), 'Mark success'),
      h('button', { type: 'button', id: 'ti-mark-failed', disabled: ti.state === 'failed', onclick: async () => { if (await markTask(ctx, dagId, runId, taskId, mapIndex, 'failed')) load(); } }, h('span.swatch-inline', { dataset: { state: 'failed' } }), 'Mark failed'));
  }

  function renderMapNav() {
    if (!mapped || !siblings.length) return;
    const at = siblings.findIndex((s) => s.map_index === mapIndex);
    const before = at > 0 ? siblings[at - 1] : null;
    const after = at >= 0 && at < siblings.length - 1 ? siblings[at + 1] : null;
    const suffix = tab === 'logs' ? '' : `/${tab}`;
    const select = h('select', { id: 'map-select', 'aria-label': 'Map index' },
      siblings.map((s) => h('option', { value: String(s.map_index), selected: s.map_index === mapIndex }, `[${s.map_index}] ${(s.state || 'none').replaceAll('_', ' ')}`)));
    select.addEventListener('change', () => ctx.navigate(`${taskInstanceHref(dagId, runId, taskId, Number(select.value))}${suffix}`));
    // A strip of the instances' states around this one, each a link.
    const from = Math.max(0, Math.min(at - 30, siblings.length - 61));
    const strip = siblings.slice(from, from + 61).map((s) => h('a.square', {
      href: `${taskInstanceHref(dagId, runId, taskId, s.map_index)}${suffix}`,
      dataset: { state: s.state || 'none' },
      title: `[${s.map_index}] ${s.state || 'none'}`,
      'aria-label': `Map index ${s.map_index}: ${s.state || 'none'}`,
      'aria-current': s.map_index === mapIndex ? 'page' : null,
    }));
    replace(mapNav,
      h('span.map-nav-label', 'Map index'),
      before ? h('a.button.small', { href: `${taskInstanceHref(dagId, runId, taskId, before.map_index)}${suffix}`, id: 'map-prev', title: 'Previous map index' }, '‹') : h('button.small', { type: 'button', disabled: true }, '‹'),
      select,
      after ? h('a.button.small', { href: `${taskInstanceHref(dagId, runId, taskId, after.map_index)}${suffix}`, id: 'map-next', title: 'Next map index' }, '›') : h('button.small', { type: 'button', disabled: true }, '›'),
      h('span.map-strip', strip),
      h('span.muted.small', `${siblings.length} mapped`));
  }

  // ---- tabs ----
  let view = null;
  let xcomKey = '';
  const tabs = {
    logs() {
      const requested = Number(ctx.query.get('try')) || null;
      view = logView({
        streamUrl: (tryNo, after) => `/ui/dags/${path(dagId)}/runs/${path(runId)}/tasks/${path(taskId)}/logs/${tryNo}?map_index=${mapIndex}${after ? `&after=${after}` : ''}`,
        tryHref: (tryNo) => `${base}?try=${tryNo}`,
        tryNumber: ti.try_number,
        selected: requested,
        state: ti.state,
        fileName: (tryNo) => `${[dagId, runId, taskId, mapped ? String(mapIndex) : null].filter(Boolean).join('__').replace(/[^\w.-]+/g, '_')}__try-${tryNo}.log`,
      });
      ctx.cleanup(() => view.destroy());
      replace(body, view.el);
    },
    rendered_templates: renderRendered,
    xcom: renderXcom,
    async details() {
      renderDetails(await task);
    },
  };

  async function renderRendered() {
    let answer = null;
    try {
      answer = await api.get(`/ui/dags/${path(dagId)}/runs/${path(runId)}/tasks/${path(taskId)}/rendered`, { map_index: mapIndex }, { signal: ctx.signal });
    } catch (err) {
      if (err.name === 'AbortError') throw err;
      answer = { fields: Object.entries(ti.rendered_fields || {}).map(([name, rendered]) => ({ name, rendered })), note: null, error: err.message };
    }
    const fields = answer.fields || [];
    replace(body, h('section', { id: 'rendered' },
      answer.note ? h('p.muted.subtitle', answer.note) : null,
      fields.length
        ? h('dl.rendered-list', fields.map((f) => [
          h('dt', h('code', f.name)),
          h('dd', f.error
            ? [h('p.form-error', `Does not render: ${f.error}`), block(f.template, 'rendered-template')]
            : block(f.rendered, 'rendered-value'),
          f.error || f.template === undefined || same(f.template, f.rendered) ? null : h('details.template', h('summary', 'As written in the DAG file'), block(f.template, 'rendered-template'))),
        ]))
        : empty('Nothing to render', answer.error ? `The rendered arguments could not be read: ${answer.error}` : 'This task takes no templated arguments.')));
  }

  async function renderXcom() {
    const list = await api.get(`${runApi}/taskInstances/${path(taskId)}/xcomEntries`, { map_index: mapIndex, limit: 100 }, { signal: ctx.signal });
    xcomKey = `${ti.state}:${ti.try_number}:${list.total_entries}`;
    if (!list.xcom_entries.length) {
      replace(body, empty('No XCom values', ti.state === 'success'
        ? 'This task instance pushed nothing: a task’s last stdout line (or a Python callable’s return value) becomes its return_value when do_xcom_push is on.'
        : 'A task instance’s XCom values show here once it pushes them.'));
      return;
    }
    const values = await Promise.all(list.xcom_entries.map((x) => api.get(`${runApi}/taskInstances/${path(taskId)}/xcomEntries/${path(x.key)}`, { map_index: mapIndex }, { signal: ctx.signal })
      .then((v) => ({ value: v.value }), (err) => ({ error: err.message }))));
    replace(body, h('table.list.xcom-table', { id: 'xcom-table' },
      h('thead', h('tr', h('th', 'Key'), h('th', 'Value'), h('th', 'Pushed'))),
      h('tbody', list.xcom_entries.map((x, i) => h('tr', { dataset: { key: x.key } },
        h('td.mono.xcom-key', x.key),
        h('td.xcom-value', values[i].error ? h('p.form-error', `The value could not be read: ${values[i].error}`) : block(values[i].value, 'xcom-value')),
        h('td.when', time(x.timestamp)))))),
    list.total_entries > list.xcom_entries.length ? h('p.muted', `Showing ${list.xcom_entries.length} of ${list.total_entries}.`) : null);
  }

  function renderDetails(def) {
    const item = (name, value, id) => [h('dt', name), h('dd', { id }, value === null || value === undefined || value === '' ? h('span.muted', '—') : value)];
    const dur = ti.start_date ? h('span', span(ti.start_date, ti.end_date)) : null;
    if (dur && !ti.end_date && ti.state === 'running') dur.dataset.tickStart = ti.start_date;
    const tiFacts = h('dl.facts', { id: 'ti-details' },
      item('Task id', h('span.mono', ti.task_id), 'd-task-id'),
      item('Map index', ti.map_index >= 0 ? String(ti.map_index) : 'Not mapped', 'd-map-index'),
      item('State', stateBadge(ti.state), 'd-state'),
      item('Try', ti.try_number ? `${ti.try_number} of ${ti.max_tries + 1}` : 'Not run yet', 'd-try'),
      item('Operator', ti.operator, 'd-operator'),
      item('Hostname', ti.hostname, 'd-hostname'),
      item('Process id', ti.pid ? String(ti.pid) : null, 'd-pid'),
      item('Executor', ti.executor || 'Updraft worker', 'd-executor'),
      item('Pool', `${ti.pool}${ti.pool_slots !== 1 ? ` (${ti.pool_slots} slots)` : ''}`, 'd-pool'),
      item('Queue', ti.queue, 'd-queue'),
      item('Priority weight', ti.priority_weight !== null ? String(ti.priority_weight) : null, 'd-priority'),
      item('Queued at', ti.queued_when ? time(ti.queued_when) : null, 'd-queued'),
      item('Started', ti.start_date ? time(ti.start_date) : null, 'd-start'),
      item('Ended', ti.end_date ? time(ti.end_date) : null, 'd-end'),
      item('Duration', dur, 'd-duration'),
      item('Run', link(runHref, runId), 'd-run'),
      item('Logical date', ti.logical_date ? time(ti.logical_date) : null, 'd-logical-date'));
    const taskFacts = def ? h('dl.facts', { id: 'task-details' },
      item('Trigger rule', h('code', def.trigger_rule), 'd-trigger-rule'),
      item('Retries', String(def.retries), 'd-retries'),
      item('Retry delay', def.retry_delay ? fmtDuration(seconds(def.retry_delay) * 1000) : null, 'd-retry-delay'),
      item('Execution timeout', def.execution_timeout ? fmtDuration(seconds(def.execution_timeout) * 1000) : 'None', 'd-timeout'),
      item('Owner', def.owner, 'd-owner'),
      item('Depends on past', def.depends_on_past ? 'Yes' : 'No', 'd-depends-on-past'),
      item('Downstream', def.downstream_task_ids.length
        ? h('span.id-list', def.downstream_task_ids.map((id) => link(taskInstanceHref(dagId, runId, id), id)))
        : 'None', 'd-downstream')) : h('p.muted', 'The task is no longer in the DAG’s current version.');
    replace(body, h('div.details-grid',
      h('section.card', h('h3', 'Task instance'), tiFacts),
      h('section.card', h('h3', 'Task'), taskFacts,
        def && def.doc_md ? [h('h3', 'Documentation'), h('pre.block.doc', { id: 'task-doc' }, def.doc_md)] : null)));
  }

  // ---- live ----
  const load = coalesce(async () => {
    let fresh;
    try {
      [fresh, siblings] = await Promise.all([
        api.get(tiApi, null, { signal: ctx.signal }),
        mapped ? api.all(`${runApi}/taskInstances/${path(taskId)}/listMapped`, 'task_instances').catch(() => siblings) : Promise.resolve([]),
      ]);
    } catch (err) {
      if (err.status === 404) {
        replace(body, empty('This task instance no longer exists', 'Its run was deleted, or the task left the DAG.', link(dagHref, `Back to ${dagId}`)));
        return;
      }
      throw err;
    }
    const changed = fresh.state !== ti.state || fresh.try_number !== ti.try_number || fresh.end_date !== ti.end_date;
    ti = fresh;
    renderHead();
    renderMapNav();
    if (view) view.update({ tryNumber: ti.try_number, state: ti.state });
    if (tab === 'details' && changed) renderDetails(await task);
    if (tab === 'xcom' && changed) await renderXcom();
  });

  tickDurations(ctx);
  ctx.onEvent((event) => {
    if (event.type === 'resync' || (event.type === 'run' && event.dag_id === dagId && event.run_id === runId)) {
      load().catch((err) => console.error(err));
    }
  });

  renderHead();
  if (mapped) {
    api.all(`${runApi}/taskInstances/${path(taskId)}/listMapped`, 'task_instances')
      .then((list) => {
        siblings = list;
        renderMapNav();
      })
      .catch(() => {});
  }
  await tabs[tab]();
}

/** The list of a mapped task's instances (`…/tasks/{task_id}/mapped`). */
async function renderMappedList(ctx, dagId, runId, taskId) {
  ctx.setTitle(`${taskId} (mapped) · ${runId}`);
  const dagHref = `/dags/${path(dagId)}`;
  const runHref = `${dagHref}/runs/${path(runId)}`;
  const runApi = `/api/v2/dags/${path(dagId)}/dagRuns/${path(runId)}`;
  let filter = ctx.query.get('state') || '';
  const chips = h('div.state-chips', { id: 'mapped-state-filter', role: 'group', 'aria-label': 'Filter by state' });
  const box = h('div', { id: 'mapped-box' });
  const count = h('span.muted', { id: 'mapped-count' });
  ctx.main.append(
    h('div.crumbs', { id: 'crumbs' }, link('/dags', 'DAGs'), h('span.sep', '›'), link(dagHref, dagId), h('span.sep', '›'), link(runHref, runId), h('span.sep', '›'), h('span.current', taskId)),
    h('div.page-head', h('div.grow', h('div.title-line', h('h1.ti-title', { id: 'ti-title' }, taskId, h('span.map-index', 'mapped'))), h('p.muted.subtitle', 'A mapped task: one instance per mapped value. Open one to read its log.'))),
    h('div.toolbar', chips, count),
    box);
  let instances = [];
  const draw = () => {
    const counts = {};
    for (const ti of instances) counts[ti.state || 'none'] = (counts[ti.state || 'none'] || 0) + 1;
    const present = TASK_STATES.filter((s) => counts[s]);
    replace(chips,
      h('button.chip', { type: 'button', 'aria-pressed': String(!filter), onclick: () => setFilter('') }, 'All', h('span.n', String(instances.length))),
      present.map((s) => h('button.chip', { type: 'button', dataset: { state: s }, 'aria-pressed': String(filter === s), onclick: () => setFilter(filter === s ? '' : s) }, h('span.swatch', { 'aria-hidden': 'true' }), s.replaceAll('_', ' '), h('span.n', String(counts[s])))));
    const rows = instances.filter((ti) => !filter || (ti.state || 'none') === filter);
    count.textContent = `${rows.length} of ${instances.length}`;
    if (!rows.length) {
      replace(box, empty(instances.length ? 'No instance has this state' : 'No mapped instances yet', instances.length ? 'Choose “All”.' : 'The scheduler expands the task when its upstream tasks are done.'));
      return;
    }
    replace(box, h('table.list.ti-table', { id: 'mapped-table' },
      h('thead', h('tr', h('th.num', 'Map index'), h('th', 'State'), h('th.num', 'Try'), h('th', 'Started'), h('th', 'Ended'), h('th.num', 'Duration'), h('th', 'Host'))),
      h('tbody', rows.map((ti) => h('tr', { dataset: { mapIndex: String(ti.map_index), state: ti.state || 'none' } },
        h('td.num', link(taskInstanceHref(dagId, runId, taskId, ti.map_index), String(ti.map_index))),
        h('td', stateBadge(ti.state)),
        h('td.num', ti.try_number ? String(ti.try_number) : h('span.muted', '—')),
        h('td.when', time(ti.start_date)),
        h('td.when', time(ti.end_date)),
        h('td.num.mono', ti.start_date ? span(ti.start_date, ti.end_date) : h('span.muted', '—')),
        h('td.muted', ti.hostname || ''))))));
  };
  const setFilter = (state) => {
    filter = state;
    const base = `${runHref}/tasks/${path(taskId)}/mapped`;
    history.replaceState(null, '', state ? `${base}?state=${encodeURIComponent(state)}` : base);
    draw();
  };
  const load = coalesce(async () => {
    try {
      instances = await api.all(`${runApi}/taskInstances/${path(taskId)}/listMapped`, 'task_instances');
    } catch (err) {
      if (err.status !== 404) throw err;
      instances = [];
    }
    draw();
  });
  ctx.onEvent((event) => {
    if (event.type === 'resync' || (event.type === 'run' && event.dag_id === dagId && event.run_id === runId)) load().catch((err) => console.error(err));
  });
  await load();
}

/** A value as text: strings as they are, anything else as indented JSON. */
function block(value, cls) {
  const text = typeof value === 'string' ? value : JSON.stringify(value, null, 2);
  return h(`pre.block.${cls}`, text === undefined ? 'null' : text);
}

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** A TimeDelta (`{days, seconds, microseconds}`) in seconds. */
function seconds(delta) {
  return (delta.days || 0) * 86400 + (delta.seconds || 0) + (delta.microseconds || 0) / 1e6;
}
