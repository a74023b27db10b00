// The DAG page's tasks tab: every task of the DAG's current version with its operator,
// trigger rule, retries, pool and queue and the tasks downstream of it, with a filter box.

import * as api from '../api.js';
import { h, replace, path, empty } from '../dom.js';

export default async function render(ctx, page) {
  const { dagId, body } = page;
  const answer = await api.get(`/api/v2/dags/${path(dagId)}/tasks`, null, { signal: ctx.signal });
  if (!answer.tasks.length) {
    replace(body, empty('This DAG has no tasks', 'Add tasks to its file; they show here once it parses.'));
    return;
  }
  const search = h('input', { type: 'search', id: 'tasks-search', placeholder: 'Filter tasks', 'aria-label': 'Filter tasks', value: ctx.query.get('search') || '' });
  const count = h('span.muted.small');
  const rows = answer.tasks.map((task) => ({
    task,
    tr: h('tr', { dataset: { taskId: task.task_id } },
      h('td.mono', h('span.task-id', task.task_id), task.is_mapped ? h('span.mapped-badge', { title: 'Mapped: one instance per input' }, 'mapped') : null,
        task.doc_md ? h('div.small.muted.task-doc', task.doc_md) : null),
      h('td', task.operator_name),
      h('td.mono.small', task.trigger_rule),
      h('td', retries(task)),
      h('td', task.pool_slots > 1 ? `${task.pool} (${task.pool_slots} slots)` : task.pool),
      h('td', task.queue),
      h('td', task.downstream_task_ids.length
        ? h('span.dag-chips', task.downstream_task_ids.map((id) => h('span.dag-chip.mono', id)))
        : h('span.muted', '—'))),
  }));
  const tbody = h('tbody', rows.map((r) => r.tr));
  const filter = () => {
    const needle = search.value.trim().toLowerCase();
    let shown = 0;
    for (const { task, tr } of rows) {
      const hit = !needle || task.task_id.toLowerCase().includes(needle) || task.operator_name.toLowerCase().includes(needle);
      tr.hidden = !hit;
      if (hit) shown += 1;
    }
    count.textContent = needle ? `${shown} of ${rows.length} tasks` : `${rows.length} task${rows.length === 1 ? '' : 's'}`;
    const params = new URLSearchParams(location.search);
    if (needle) params.set('search', search.value.trim());
    else params.delete('search');
    history.replaceState(null, '', `${location.pathname}${params.toString() ? '?' + params : ''}`);
  };
  search.addEventListener('input', filter);
  replace(body,
    h('div.toolbar', search, count),
    h('table.list', { id: 'tasks-table' },
      h('thead', h('tr', ['Task', 'Operator', 'Trigger rule', 'Retries', 'Pool', 'Queue', 'Downstream'].map((t) => h('th', t)))),
      tbody));
  filter();
}

function retries(task) {
  if (!task.retries) return h('span.muted', '0');
  const delay = task.retry_delay ? ` every ${delta(task.retry_delay)}` : '';
  return `${task.retries}${delay}${task.retry_exponential_backoff ? ', backing off' : ''}`;
}

/** An Airflow TimeDelta as '1m 30s'. */
function delta(td) {
  const seconds = td.days * 86400 + td.seconds + td.microseconds / 1e6;
  if (seconds < 60) return `${+seconds.toFixed(2)}s`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  if (m < 60) return s ? `${m}m ${s}s` : `${m}m`;
  const hr = Math.floor(m / 60);
  return m % 60 ? `${hr}h ${m % 60}m` : `${hr}h`;
}
