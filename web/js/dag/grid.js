// The DAG page's grid: recent runs as columns (newest on the right, each with a bar sized by
// its duration) × tasks as rows (groups as collapsible rows showing their tasks' summed-up
// state, mapped tasks with their count), one state-coloured cell per task instance linking
// to its page. Built in one DocumentFragment with plain DOM calls, since it is the page's
// largest view (25 runs × 200 tasks is 5,000 cells); pushed run changes refetch it and
// update the cells in place, keeping the scroll position and the collapsed groups.

import * as api from '../api.js';
import { h, replace, path, empty, coalesce, fmtTime, fmtDuration, stateBadge } from '../dom.js';
import { tree, summarise, loadCollapsed, saveCollapsed, runHref, taskHref, elapsed } from './model.js';

const PAGE = 25;
/** Height of the tallest run bar, in pixels. */
const BAR_HEIGHT = 64;

export default async function render(ctx, page) {
  const { dagId, body } = page;
  const collapsed = loadCollapsed(dagId);
  let offset = Math.max(0, Number(ctx.query.get('offset')) || 0);
  let shape = '';
  let index = null;
  let data = null;

  const older = h('button.small', { type: 'button', id: 'grid-older', title: 'Show older runs' }, '‹ Older');
  const newer = h('button.small', { type: 'button', id: 'grid-newer', title: 'Show newer runs' }, 'Newer ›');
  const expandAll = h('button.small.ghost', { type: 'button', id: 'grid-expand-all' }, 'Expand all');
  const collapseAll = h('button.small.ghost', { type: 'button', id: 'grid-collapse-all' }, 'Collapse all');
  const range = h('span.muted.small', { id: 'grid-range' });
  const toolbar = h('div.toolbar.grid-toolbar', expandAll, collapseAll, h('div.dag-fill'), range, older, newer);
  const notice = h('div.grid-notice');
  const holder = h('div.grid-holder');
  const aside = h('aside.card.grid-aside', { id: 'grid-details', 'aria-live': 'polite' });
  replace(body, toolbar, h('div.grid-layout', holder, notice, aside), legend());
  let model = null;
  let showing = null;
  const show = (target) => {
    showing = target;
    if (data && model) describe(aside, target, data, model, dagId);
  };
  const pointed = (event) => {
    const el = event.target.closest('.grid-cell, .run-bar');
    if (!el || !holder.contains(el)) return;
    const runId = el.getAttribute('data-run-id');
    if (el.classList.contains('run-bar')) {
      show({ runId });
      return;
    }
    const target = el.hasAttribute('data-group-id') ? { runId, groupId: el.getAttribute('data-group-id') } : { runId, taskId: el.getAttribute('data-task-id') };
    // Tooltips are written when first pointed at: 5,000 of them up front would cost more
    // than the rest of the grid.
    if (!el.hasAttribute('title') && data && model) el.title = tooltip(target, data, model);
    show(target);
  };
  holder.addEventListener('mouseover', pointed);
  holder.addEventListener('focusin', pointed);
  holder.addEventListener('mouseleave', () => show(null));

  const setOffset = (next) => {
    offset = Math.max(0, next);
    const params = new URLSearchParams(location.search);
    if (offset) params.set('offset', String(offset));
    else params.delete('offset');
    history.replaceState(null, '', `${location.pathname}${params.toString() ? '?' + params : ''}`);
    load();
  };
  older.addEventListener('click', () => setOffset(offset + PAGE));
  newer.addEventListener('click', () => setOffset(offset - PAGE));

  const setCollapsed = (groupIds, value) => {
    for (const id of groupIds) {
      if (value) collapsed.add(id);
      else collapsed.delete(id);
    }
    saveCollapsed(dagId, collapsed);
    if (index) applyCollapsed(index, collapsed);
  };
  expandAll.addEventListener('click', () => setCollapsed([...collapsed], false));
  collapseAll.addEventListener('click', () => data && setCollapsed(data.structure.groups.map((g) => g.group_id), true));

  const load = coalesce(async () => {
    data = await api.get(`/ui/dags/${path(dagId)}/grid`, { limit: PAGE, offset }, { signal: ctx.signal });
    older.disabled = !data.has_older;
    newer.disabled = offset === 0;
    range.textContent = data.runs.length
      ? `Runs ${offset + 1}–${offset + data.runs.length}${offset ? ' (older)' : ''}`
      : '';
    model = tree(data.structure);
    collapseAll.hidden = expandAll.hidden = model.groups.size === 0;
    const nextShape = `${data.structure.version}|${data.runs.map((r) => r.run_id).join('\u0000')}`;
    if (!data.runs.length) {
      replace(notice, offset
        ? empty('No runs this far back', 'There are no older runs.', h('button', { type: 'button', onclick: () => setOffset(0) }, 'Back to the latest runs'))
        : empty('This DAG has not run yet', [
          page.dag.is_paused ? 'It is paused, so its schedule makes no runs.' : null,
          ctx.can('User')
            ? `Trigger it to run it now${page.dag.is_paused ? ', or unpause it to let its schedule run it' : ''}; its runs show here as columns, one square per task.`
            : 'Its runs show here as columns, one square per task, once it runs (a user with the User role can trigger it).',
        ].filter(Boolean).join(' '),
        page.triggerButton('grid-empty-trigger')));
    } else {
      notice.replaceChildren();
    }
    const started = performance.now();
    const rebuilt = !(index && nextShape === shape);
    if (!rebuilt) {
      updateCells(index, data, model);
    } else {
      index = build(holder, data, model, dagId, collapsed, (group) => setCollapsed([group], !collapsed.has(group)));
      shape = nextShape;
    }
    aside.hidden = !data.runs.length;
    show(showing);
    // Read a layout property so the time counts style and layout, not only DOM building.
    void holder.offsetHeight;
    const ms = performance.now() - started;
    // Beside the router's `renderMs` (the whole page, fetches included): the grid's own time.
    ctx.main.dataset.gridRenderMs = ms.toFixed(1);
    ctx.main.dataset.gridRender = rebuilt ? 'build' : 'update';
    ctx.main.dataset.gridCells = String(index.cellCount);
    console.info(`grid: ${data.runs.length} runs × ${data.structure.tasks.length} tasks in ${ms.toFixed(1)} ms`);
  });

  ctx.onEvent((event) => {
    if (event.type === 'resync' || (event.type === 'run' && event.dag_id === dagId)) load();
  });
  await load();
}

/** The rows in display order: each group, then (indented) what it holds. */
function rows(model) {
  const out = [];
  const walk = (container, depth, groups) => {
    for (const child of container.children) {
      out.push({ node: child, depth, groups });
      if (child.kind === 'group') walk(child, depth + 1, [...groups, child.id]);
    }
  };
  walk(model.root, 0, []);
  return out;
}

function runTitle(run) {
  const duration = elapsed(run.start_date, run.end_date);
  return [
    `Run ${run.run_id}`,
    `State: ${run.state}`,
    `Type: ${run.run_type}`,
    run.logical_date ? `Logical date: ${fmtTime(run.logical_date)}` : null,
    run.start_date ? `Started: ${fmtTime(run.start_date)}` : `Queued: ${fmtTime(run.queued_at)}`,
    duration !== null ? `Duration: ${fmtDuration(duration)}${run.end_date ? '' : ' so far'}` : null,
  ].filter(Boolean).join('\n');
}

function cellTitle(label, run, cell) {
  if (!cell) return `${label}\nRun ${run.run_id}\nNo task instance`;
  const lines = [label, `Run ${run.run_id}`, `State: ${cell.state}`];
  if (cell.mapped_count !== null && cell.mapped_count !== undefined) {
    const parts = Object.entries(cell.states || {}).map(([s, n]) => `${n} ${s}`);
    lines.push(`${cell.mapped_count} mapped: ${parts.join(', ')}`);
  }
  if (cell.try_number > 1) lines.push(`Try ${cell.try_number}`);
  if (cell.start_date) lines.push(`Started: ${fmtTime(cell.start_date)}`);
  const duration = elapsed(cell.start_date, cell.end_date);
  if (duration !== null) lines.push(`Duration: ${fmtDuration(duration)}${cell.end_date ? '' : ' so far'}`);
  return lines.join('\n');
}

function groupTitle(group, run, state) {
  return `${group.group_id} (group)\nRun ${run.run_id}\nState: ${state}`;
}

function tooltip(target, data, model) {
  const run = data.runs.find((r) => r.run_id === target.runId);
  if (!run) return '';
  const cells = new Map(run.cells.map((c) => [c.task_id, c]));
  if (target.groupId) {
    const group = model.groups.get(target.groupId);
    return group ? groupTitle(group, run, groupState(group, cells)) : '';
  }
  return cellTitle(target.taskId, run, cells.get(target.taskId));
}

/** Per run, the cells by task id. */
function cellMaps(data) {
  return data.runs.map((run) => new Map(run.cells.map((c) => [c.task_id, c])));
}

function groupState(group, cells) {
  return summarise(group.taskIds.map((id) => cells.get(id)?.state || 'none'));
}

/** The newest mapped count of each mapped task, for its row label. */
function latestCounts(data) {
  const counts = new Map();
  for (const run of data.runs) {
    for (const cell of run.cells) if (cell.mapped_count !== null && cell.mapped_count !== undefined) counts.set(cell.task_id, cell.mapped_count);
  }
  return counts;
}

function build(holder, data, model, dagId, collapsed, toggle) {
  const maps = cellMaps(data);
  const counts = latestCounts(data);
  const longest = Math.max(1, ...data.runs.map((r) => elapsed(r.start_date, r.end_date) || 0));
  // Per task (and per group), its cells in run order.
  const index = { cells: new Map(), groupCells: new Map(), cellCount: 0, bars: new Map(), rows: [], counts: new Map(), toggles: new Map() };
  index.scale = h('span.scale', { title: 'The longest run shown' }, scaleText(data, longest));
  const fragment = document.createDocumentFragment();

  // The head: a corner with the duration scale, and a bar per run.
  const bars = document.createElement('div');
  bars.className = 'grid-bars';
  data.runs.forEach((run) => {
    const a = document.createElement('a');
    a.className = 'run-bar';
    a.href = runHref(dagId, run.run_id);
    a.setAttribute('data-run-id', run.run_id);
    a.setAttribute('data-state', run.state);
    a.title = runTitle(run);
    a.setAttribute('aria-label', `Run ${run.run_id}: ${run.state}`);
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.style.height = `${barHeight(run, longest)}px`;
    a.appendChild(bar);
    bars.appendChild(a);
    index.bars.set(run.run_id, { a, bar });
  });
  const head = h('div.grid-head',
    h('div.grid-corner', index.scale, h('span.muted', 'Task')),
    bars);
  fragment.appendChild(head);

  const bodyEl = document.createElement('div');
  bodyEl.className = 'grid-body';
  bodyEl.setAttribute('role', 'rowgroup');
  const runPrefix = data.runs.map((run) => runHref(dagId, run.run_id));
  const runIds = data.runs.map((run) => run.run_id);
  const runCount = runIds.length;
  // Cloning a prepared element is cheaper than making and classing each of 5,000.
  const cellProto = document.createElement('a');
  cellProto.className = 'grid-cell';
  const groupProto = document.createElement('a');
  groupProto.className = 'grid-cell group-cell';
  for (const { node, depth, groups } of rows(model)) {
    const taskSuffix = node.kind === 'task' ? taskHref(dagId, '', node).slice(runHref(dagId, '').length) : '';
    const row = document.createElement('div');
    row.className = node.kind === 'group' ? 'grid-row group' : 'grid-row';
    row.setAttribute('data-row-id', node.id);
    row.setAttribute('role', 'row');
    const label = document.createElement('div');
    label.className = 'grid-label';
    label.style.paddingLeft = `${8 + depth * 16}px`;
    if (node.kind === 'group') {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'chevron';
      button.setAttribute('data-group-id', node.id);
      button.setAttribute('aria-label', `Collapse or expand group ${node.id}`);
      button.addEventListener('click', () => toggle(node.id));
      const name = document.createElement('span');
      name.className = 'name';
      name.textContent = node.label;
      button.appendChild(name);
      const count = document.createElement('span');
      count.className = 'count muted';
      count.textContent = ` ${node.taskIds.length}`;
      button.appendChild(count);
      if (node.tooltip) button.title = node.tooltip;
      label.appendChild(button);
      index.toggles.set(node.id, button);
    } else {
      const name = document.createElement('span');
      name.className = 'name';
      name.textContent = node.label;
      name.title = `${node.task_id}\n${node.operator}`;
      label.appendChild(name);
      if (node.is_mapped) {
        const count = document.createElement('span');
        count.className = 'mapped-count';
        count.textContent = `[${counts.has(node.id) ? counts.get(node.id) : ' '}]`;
        count.title = 'Mapped: the number of instances in the newest run';
        label.appendChild(count);
        index.counts.set(node.id, count);
      }
    }
    row.appendChild(label);
    const cellsEl = document.createElement('div');
    cellsEl.className = 'grid-cells';
    const line = [];
    if (node.kind === 'group') {
      for (let i = 0; i < runCount; i++) {
        const el = groupProto.cloneNode(false);
        el.setAttribute('href', runPrefix[i]);
        el.setAttribute('data-group-id', node.id);
        el.setAttribute('data-run-id', runIds[i]);
        el.setAttribute('data-state', groupState(node, maps[i]));
        cellsEl.appendChild(el);
        line.push(el);
      }
      index.groupCells.set(node.id, line);
    } else {
      for (let i = 0; i < runCount; i++) {
        const cell = maps[i].get(node.id);
        const el = cellProto.cloneNode(false);
        el.setAttribute('href', runPrefix[i] + taskSuffix);
        el.setAttribute('data-task-id', node.id);
        el.setAttribute('data-run-id', runIds[i]);
        el.setAttribute('data-state', cell ? cell.state : 'none');
        if (cell && cell.try_number > 1) el.setAttribute('data-retried', '');
        cellsEl.appendChild(el);
        line.push(el);
      }
      index.cells.set(node.id, line);
      index.cellCount += runCount;
    }
    row.appendChild(cellsEl);
    bodyEl.appendChild(row);
    index.rows.push({ row, groups, node });
  }
  fragment.appendChild(bodyEl);
  const grid = document.createElement('div');
  grid.className = data.runs.length ? 'dag-grid' : 'dag-grid no-runs';
  grid.id = 'dag-grid';
  grid.appendChild(fragment);
  holder.replaceChildren(grid);
  applyCollapsed(index, collapsed);
  return index;
}

function scaleText(data, longest) {
  return data.runs.some((r) => r.start_date) ? fmtDuration(longest) : '';
}

function barHeight(run, longest) {
  const duration = elapsed(run.start_date, run.end_date);
  if (duration === null) return 4;
  return Math.max(4, Math.round((duration / longest) * BAR_HEIGHT));
}

/** Same runs, same tasks: only states, titles and bar heights change. */
function updateCells(index, data, model) {
  const maps = cellMaps(data);
  const longest = Math.max(1, ...data.runs.map((r) => elapsed(r.start_date, r.end_date) || 0));
  index.scale.textContent = scaleText(data, longest);
  data.runs.forEach((run, i) => {
    const bar = index.bars.get(run.run_id);
    if (bar) {
      bar.a.setAttribute('data-state', run.state);
      bar.a.title = runTitle(run);
      bar.a.setAttribute('aria-label', `Run ${run.run_id}: ${run.state}`);
      bar.bar.style.height = `${barHeight(run, longest)}px`;
    }
    for (const task of model.tasks.values()) {
      const el = index.cells.get(task.task_id)?.[i];
      if (!el) continue;
      const cell = maps[i].get(task.task_id);
      const state = cell ? cell.state : 'none';
      if (el.getAttribute('data-state') !== state) el.setAttribute('data-state', state);
      if (cell && cell.try_number > 1) el.setAttribute('data-retried', '');
      el.removeAttribute('title');
    }
    for (const group of model.groups.values()) {
      const el = index.groupCells.get(group.group_id)?.[i];
      if (!el) continue;
      const state = groupState(group, maps[i]);
      if (el.getAttribute('data-state') !== state) el.setAttribute('data-state', state);
      el.removeAttribute('title');
    }
  });
  for (const [taskId, count] of latestCounts(data)) {
    const el = index.counts.get(taskId);
    if (el) el.textContent = `[${count}]`;
  }
}

function applyCollapsed(index, collapsed) {
  for (const { row, groups, node } of index.rows) {
    row.hidden = groups.some((g) => collapsed.has(g));
    if (node.kind === 'group') {
      const open = !collapsed.has(node.id);
      row.setAttribute('data-collapsed', String(!open));
      index.toggles.get(node.id)?.setAttribute('aria-expanded', String(open));
    }
  }
}

/** The side card: the pointed cell, group cell or run, else the newest run. */
function describe(aside, target, data, model, dagId) {
  const runs = new Map(data.runs.map((r) => [r.run_id, r]));
  const run = (target && runs.get(target.runId)) || data.runs[data.runs.length - 1];
  if (!run) return;
  const runFacts = [
    ['Run', h('a', { href: runHref(dagId, run.run_id) }, run.run_id)],
    ['Type', run.run_type],
    ['Logical date', run.logical_date ? fmtTime(run.logical_date) : '—'],
  ];
  const facts = (pairs) => h('dl.facts', pairs.map(([k, v]) => [h('dt', k), h('dd', v)]));
  const cells = new Map(run.cells.map((c) => [c.task_id, c]));
  if (target?.taskId && model.tasks.has(target.taskId)) {
    const task = model.tasks.get(target.taskId);
    const cell = cells.get(task.task_id);
    const state = cell ? cell.state : 'none';
    const duration = cell ? elapsed(cell.start_date, cell.end_date) : null;
    replace(aside,
      h('div.kind', task.is_mapped ? 'Mapped task instance' : 'Task instance'),
      h('h3', stateBadge(state)),
      facts([
        ['Task', h('a', { href: taskHref(dagId, run.run_id, task) }, task.task_id)],
        ['Operator', task.operator],
        ...runFacts.slice(0, 1),
        cell?.mapped_count !== null && cell?.mapped_count !== undefined
          ? ['Mapped', `${cell.mapped_count}: ${Object.entries(cell.states || {}).map(([s, n]) => `${n} ${s.replaceAll('_', ' ')}`).join(', ')}`]
          : null,
        cell ? ['Try', String(cell.try_number)] : null,
        ['Started', cell?.start_date ? fmtTime(cell.start_date) : '—'],
        ['Ended', cell?.end_date ? fmtTime(cell.end_date) : '—'],
        ['Duration', duration !== null ? fmtDuration(duration) : '—'],
      ].filter(Boolean)),
      h('p.hint.small.muted', cell ? 'Click the square to open it.' : 'This run has no instance of this task.'));
    return;
  }
  if (target?.groupId && model.groups.has(target.groupId)) {
    const group = model.groups.get(target.groupId);
    const counts = new Map();
    for (const id of group.taskIds) {
      const state = cells.get(id)?.state || 'none';
      counts.set(state, (counts.get(state) || 0) + 1);
    }
    replace(aside,
      h('div.kind', 'Task group'),
      h('h3', stateBadge(groupState(group, cells))),
      facts([
        ['Group', group.group_id],
        group.tooltip ? ['About', group.tooltip] : null,
        ...runFacts.slice(0, 1),
        ['Tasks', [...counts].map(([s, n]) => `${n} ${s === 'none' ? 'no status' : s.replaceAll('_', ' ')}`).join(', ')],
      ].filter(Boolean)));
    return;
  }
  const duration = elapsed(run.start_date, run.end_date);
  const counts = new Map();
  for (const c of run.cells) counts.set(c.state, (counts.get(c.state) || 0) + 1);
  replace(aside,
    h('div.kind', target ? 'Run' : 'Latest run shown'),
    h('h3', stateBadge(run.state)),
    facts([
      ...runFacts,
      ['Queued', fmtTime(run.queued_at)],
      ['Started', run.start_date ? fmtTime(run.start_date) : '—'],
      ['Ended', run.end_date ? fmtTime(run.end_date) : '—'],
      ['Duration', duration !== null ? `${fmtDuration(duration)}${run.end_date ? '' : ' so far'}` : '—'],
      ['Tasks', counts.size ? [...counts].map(([s, n]) => `${n} ${s.replaceAll('_', ' ')}`).join(', ') : '—'],
    ]),
    h('p.hint.small.muted', 'Point at a square for its details; click it to open it.'));
}

function legend() {
  const states = ['success', 'running', 'failed', 'upstream_failed', 'skipped', 'up_for_retry', 'queued', 'scheduled', 'none'];
  return h('div.dag-legend', { 'aria-label': 'State colours' },
    states.map((s) => h('span.dag-legend-item', h('span.square', { dataset: { state: s } }), s === 'none' ? 'no status' : s.replaceAll('_', ' '))),
    h('span.dag-legend-item.muted', 'Bars above: runs, their height by duration'));
}
