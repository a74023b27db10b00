// The DAG page's Gantt chart of one run (the newest unless `?run_id=` names one): per task a
// light bar while it was queued and a state-coloured bar while it ran, on a time axis with
// ticks, groups summed up in their own rows (folded like the grid's), a tooltip with the
// times. Pushed changes of the run refetch it; while it runs, a one-second ticker (which
// fetches nothing) stretches the open bars to now.

import * as api from '../api.js';
import { h, replace, path, empty, coalesce, fmtTime, fmtClock, fmtDuration } from '../dom.js';
import { tree, summarise, loadCollapsed, saveCollapsed, taskHref, elapsed, rememberRun } from './model.js';

const RUNS = 25;
const STEPS = [10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 15e3, 3e4, 6e4, 12e4, 3e5, 6e5, 9e5, 18e5, 36e5, 72e5, 108e5, 216e5, 432e5, 864e5];

export default async function render(ctx, page) {
  const { dagId, body } = page;
  const collapsed = loadCollapsed(dagId);
  let wanted = ctx.query.get('run_id');
  let run = null;
  let spans = null;
  let model = null;
  const structures = new Map();

  const picker = h('select', { id: 'gantt-run', 'aria-label': 'Run the chart shows' });
  const info = h('span.muted.small', { id: 'gantt-run-info' });
  const notice = h('div');
  const chart = h('div.gantt', { id: 'dag-gantt' });
  const tip = h('div.gantt-tip', { role: 'tooltip', hidden: true });
  replace(body, h('div.toolbar', h('label', { for: 'gantt-run' }, 'Run'), picker, info), notice, chart, tip,
    h('div.dag-legend', h('span.dag-legend-item', h('span.gantt-key.queued'), 'queued'), h('span.dag-legend-item', h('span.gantt-key.ran'), 'running, coloured by its final state')));

  picker.addEventListener('change', () => {
    wanted = picker.value || null;
    rememberRun(wanted);
    load();
  });

  const toggle = (groupId) => {
    if (collapsed.has(groupId)) collapsed.delete(groupId);
    else collapsed.add(groupId);
    saveCollapsed(dagId, collapsed);
    paint();
  };
  const paint = () => {
    if (run && model && spans) drawChart(chart, tip, { dagId, run, model, spans, collapsed, toggle });
  };

  let ticker = null;
  const tick = (on) => {
    if (on && !ticker) ticker = setInterval(paint, 1000);
    if (!on && ticker) {
      clearInterval(ticker);
      ticker = null;
    }
  };
  ctx.cleanup(() => tick(false));

  const load = coalesce(async () => {
    const list = await api.get(`/api/v2/dags/${path(dagId)}/dagRuns`, { limit: RUNS, order_by: '-run_after' }, { signal: ctx.signal });
    const runs = list.dag_runs;
    run = wanted ? runs.find((r) => r.dag_run_id === wanted) : runs[0];
    if (wanted && !run) run = await api.get(`/api/v2/dags/${path(dagId)}/dagRuns/${path(wanted)}`, null, { signal: ctx.signal }).catch(() => null);
    const options = runs.map((r, i) => h('option', { value: i === 0 && !wanted ? '' : r.dag_run_id, selected: run?.dag_run_id === r.dag_run_id }, `${r.dag_run_id} · ${r.state}${i === 0 ? ' (newest)' : ''}`));
    if (run && !runs.some((r) => r.dag_run_id === run.dag_run_id)) options.unshift(h('option', { value: run.dag_run_id, selected: true }, `${run.dag_run_id} · ${run.state}`));
    replace(picker, options.length ? options : h('option', { value: '' }, 'No runs yet'));
    picker.disabled = !runs.length;
    if (!run) {
      tick(false);
      chart.replaceChildren();
      info.replaceChildren();
      replace(notice, wanted
        ? empty(`There is no run “${wanted}”`, 'It may have been deleted. Pick another run above.')
        : empty('This DAG has not run yet', ctx.can('User')
          ? 'Trigger it: the chart shows when each task waited and ran.'
          : 'Once it runs (by its schedule, or triggered by a user with the User role), the chart shows when each task waited and ran.', page.triggerButton('gantt-empty-trigger')));
      return;
    }
    notice.replaceChildren();
    const [tis, structure] = await Promise.all([
      api.all(`/api/v2/dags/${path(dagId)}/dagRuns/${path(run.dag_run_id)}/taskInstances`, 'task_instances'),
      structureFor(dagId, structures, ctx.signal),
    ]);
    model = tree(structure);
    spans = spansOf(tis);
    const duration = elapsed(run.start_date, run.end_date);
    replace(info, h('span.state', { dataset: { state: run.state } }, h('span.swatch'), run.state),
      run.start_date ? ` · started ${fmtTime(run.start_date)}` : ` · queued ${fmtTime(run.queued_at)}`,
      duration !== null ? ` · ${fmtDuration(duration)}${run.end_date ? '' : ' so far'}` : '');
    chart.dataset.runId = run.dag_run_id;
    paint();
    tick(!run.end_date && (run.state === 'running' || run.state === 'queued'));
  });

  ctx.onEvent((event) => {
    if (event.type === 'resync') load();
    else if (event.type === 'run' && event.dag_id === dagId && (!wanted || event.run_id === wanted)) load();
  });
  await load();
}

/** The DAG's current structure, read once per visit; tasks it lacks get rows of their own. */
async function structureFor(dagId, cache, signal) {
  if (!cache.has('current')) cache.set('current', await api.get(`/ui/dags/${path(dagId)}/structure`, null, { signal }));
  return cache.get('current');
}

/** Per task, mapped instances merged: earliest queue and start, latest end, summed state. */
function spansOf(tis) {
  const byTask = new Map();
  for (const ti of tis) {
    const span = byTask.get(ti.task_id) || { states: [], queued: null, start: null, end: null, open: false, count: 0, mapped: false, tries: 0 };
    span.states.push(ti.state || 'none');
    span.count += 1;
    span.mapped ||= ti.map_index >= 0;
    span.tries = Math.max(span.tries, ti.try_number);
    const queued = ti.queued_when || ti.scheduled_when;
    if (queued && (!span.queued || queued < span.queued)) span.queued = queued;
    if (ti.start_date && (!span.start || ti.start_date < span.start)) span.start = ti.start_date;
    if (ti.end_date && (!span.end || ti.end_date > span.end)) span.end = ti.end_date;
    if (ti.start_date && !ti.end_date) span.open = true;
    byTask.set(ti.task_id, span);
  }
  for (const span of byTask.values()) {
    span.state = summarise(span.states);
    if (span.open) span.end = null;
  }
  return byTask;
}

/** A group's span: the earliest and latest of its tasks'. */
function groupSpan(group, spans) {
  const members = group.taskIds.map((id) => spans.get(id)).filter(Boolean);
  if (!members.length) return null;
  const pick = (key, better) => members.map((s) => s[key]).filter(Boolean).reduce((a, b) => (a === null || better(b, a) ? b : a), null);
  return {
    state: summarise(group.taskIds.map((id) => spans.get(id)?.state || 'none')),
    queued: pick('queued', (a, b) => a < b),
    start: pick('start', (a, b) => a < b),
    end: members.some((s) => s.open) ? null : pick('end', (a, b) => a > b),
    open: members.some((s) => s.open),
    count: group.taskIds.length,
  };
}

function niceStep(range) {
  return STEPS.find((s) => range / s <= 8) || STEPS[STEPS.length - 1];
}

function tickLabel(ms, step) {
  const clock = fmtClock(new Date(ms).toISOString());
  if (step >= 1000) return clock.slice(0, 8);
  return step >= 100 ? clock.slice(0, 10) : clock;
}

function drawChart(chart, tip, { dagId, run, model, spans, collapsed, toggle }) {
  const now = Date.now();
  const times = [];
  for (const s of spans.values()) {
    for (const t of [s.queued, s.start, s.end]) if (t) times.push(Date.parse(t));
  }
  if (run.start_date) times.push(Date.parse(run.start_date));
  const t0 = times.length ? Math.min(...times) : Date.parse(run.queued_at || run.run_after);
  const open = !run.end_date || [...spans.values()].some((s) => s.open);
  const t1 = Math.max(t0 + 1000, run.end_date ? Date.parse(run.end_date) : 0, open ? now : 0, ...times);
  const range = t1 - t0;
  const pct = (t) => `${(((Date.parse(t) - t0) / range) * 100).toFixed(3)}%`;
  const width = (a, b) => `${Math.max(0.25, ((Date.parse(b) - Date.parse(a)) / range) * 100).toFixed(3)}%`;
  const step = niceStep(range);
  const ticks = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push(t);

  const scale = h('div.gantt-scale', ticks.map((t) => h('span.tick', { style: { left: `${(((t - t0) / range) * 100).toFixed(3)}%` } }, tickLabel(t, step))));
  const lines = h('div.gantt-lines', ticks.map((t) => h('span.tick-line', { style: { left: `${(((t - t0) / range) * 100).toFixed(3)}%` } })),
    open ? h('span.now-line', { title: 'Now', style: { left: `${(((now - t0) / range) * 100).toFixed(3)}%` } }) : null);

  const rows = [];
  const walk = (container, depth, hiddenBy) => {
    for (const child of container.children) {
      const hidden = hiddenBy || false;
      if (child.kind === 'group') {
        if (!hidden) rows.push(row(child, depth, groupSpan(child, spans)));
        walk(child, depth + 1, hidden || collapsed.has(child.id));
      } else if (!hidden) {
        rows.push(row(child, depth, spans.get(child.task_id)));
      }
    }
  };
  const nowIso = new Date(now).toISOString();
  function row(node, depth, span) {
    const isGroup = node.kind === 'group';
    const label = isGroup
      ? h('button.chevron', { type: 'button', 'aria-expanded': String(!collapsed.has(node.id)), dataset: { groupId: node.id }, onclick: () => toggle(node.id) }, h('span.name', node.label))
      : span
        ? h('a.name', { href: taskHref(dagId, run.dag_run_id, node), title: node.task_id }, node.is_mapped ? `${node.label} [${span.count}]` : node.label)
        : h('span.name.muted', { title: `${node.task_id}: no task instance in this run` }, node.label);
    const track = h('div.gantt-track');
    if (span) {
      const startOrNow = span.start || nowIso;
      if (span.queued && Date.parse(span.queued) < Date.parse(startOrNow)) {
        track.appendChild(h('span.bar.queued', { style: { left: pct(span.queued), width: width(span.queued, startOrNow) } }));
      }
      if (span.start) {
        track.appendChild(h('span.bar.run', { dataset: { state: span.state }, style: { left: pct(span.start), width: width(span.start, span.end || nowIso) } }));
      }
      track.addEventListener('mousemove', (event) => showTip(tip, event, node, span));
      track.addEventListener('mouseleave', () => {
        tip.hidden = true;
      });
    }
    return h(`div.gantt-row${isGroup ? '.group' : ''}`, { dataset: isGroup ? { groupId: node.id, state: span?.state || 'none' } : { taskId: node.task_id, state: span?.state || 'none' } },
      h('div.gantt-label', { style: { paddingLeft: `${8 + depth * 16}px` }, dataset: { collapsed: isGroup ? String(collapsed.has(node.id)) : null } }, label),
      track);
  }
  walk(model.root, 0, false);
  // Instances of tasks the current version no longer has.
  for (const [taskId, span] of spans) {
    if (!model.tasks.has(taskId)) rows.push(row({ kind: 'task', id: taskId, task_id: taskId, label: taskId, is_mapped: span.mapped }, 0, span));
  }
  replace(chart,
    h('div.gantt-axis', h('div.gantt-label.muted', 'Task'), scale),
    h('div.gantt-body', lines, rows));
}

function showTip(tip, event, node, span) {
  const queuedFor = span.queued && span.start ? elapsed(span.queued, span.start) : null;
  const ran = span.start ? elapsed(span.start, span.end) : null;
  replace(tip,
    h('strong', node.kind === 'group' ? `${node.group_id} (group)` : node.task_id),
    h('div', h('span.state', { dataset: { state: span.state } }, h('span.swatch'), span.state.replaceAll('_', ' '))),
    span.count > 1 ? h('div.muted', node.kind === 'group' ? `${span.count} tasks` : `${span.count} mapped instances`) : null,
    h('dl.facts',
      h('dt', 'Queued'), h('dd', span.queued ? fmtTime(span.queued) : '—'),
      h('dt', 'Started'), h('dd', span.start ? fmtTime(span.start) : '—'),
      h('dt', 'Ended'), h('dd', span.end ? fmtTime(span.end) : span.start ? 'still running' : '—'),
      h('dt', 'Waited'), h('dd', queuedFor !== null ? fmtDuration(queuedFor) : '—'),
      h('dt', 'Ran'), h('dd', ran !== null ? `${fmtDuration(ran)}${span.end ? '' : ' so far'}` : '—')));
  tip.hidden = false;
  const pad = 14;
  const box = tip.getBoundingClientRect();
  const left = Math.min(event.clientX + pad, window.innerWidth - box.width - 8);
  const top = event.clientY + pad + box.height > window.innerHeight ? event.clientY - box.height - pad : event.clientY + pad;
  tip.style.left = `${Math.max(8, left)}px`;
  tip.style.top = `${Math.max(8, top)}px`;
}
