// The DAG page's runs tab: the DAG's runs newest first, filtered by state and run type and
// paged, the filters kept in the URL; pushed run changes of this DAG refresh the page shown.

import * as api from '../api.js';
import { h, replace, path, stateBadge, time, empty, coalesce, fmtDuration, RUN_STATES } from '../dom.js';
import { runHref, elapsed } from './model.js';

const PAGE_SIZE = 25;
const RUN_TYPES = ['manual', 'scheduled', 'backfill', 'asset_triggered'];

export default async function render(ctx, page) {
  const { dagId, body } = page;
  const q = ctx.query;
  const filters = {
    state: RUN_STATES.includes(q.get('state')) ? q.get('state') : '',
    runType: RUN_TYPES.includes(q.get('run_type')) ? q.get('run_type') : '',
    page: Math.max(1, Number(q.get('page')) || 1),
  };
  const stateSelect = h('select', { id: 'runs-state', 'aria-label': 'State filter' },
    h('option', { value: '' }, 'All states'), RUN_STATES.map((s) => h('option', { value: s, selected: filters.state === s }, s)));
  const typeSelect = h('select', { id: 'runs-type', 'aria-label': 'Run type filter' },
    h('option', { value: '' }, 'All run types'), RUN_TYPES.map((t) => h('option', { value: t, selected: filters.runType === t }, t.replaceAll('_', ' '))));
  const list = h('div', { id: 'runs-list' });
  replace(body, h('div.toolbar', stateSelect, typeSelect), list);

  const setUrl = (changes) => {
    Object.assign(filters, changes);
    const params = new URLSearchParams();
    if (filters.state) params.set('state', filters.state);
    if (filters.runType) params.set('run_type', filters.runType);
    if (filters.page > 1) params.set('page', String(filters.page));
    history.replaceState(null, '', `${location.pathname}${params.toString() ? '?' + params : ''}`);
    load();
  };
  stateSelect.addEventListener('change', () => setUrl({ state: stateSelect.value, page: 1 }));
  typeSelect.addEventListener('change', () => setUrl({ runType: typeSelect.value, page: 1 }));

  const load = coalesce(async () => {
    const answer = await api.get(`/api/v2/dags/${path(dagId)}/dagRuns`, {
      limit: PAGE_SIZE,
      offset: (filters.page - 1) * PAGE_SIZE,
      order_by: '-run_after',
      state: filters.state || undefined,
      run_type: filters.runType || undefined,
    }, { signal: ctx.signal });
    if (!answer.dag_runs.length) {
      replace(list, filters.state || filters.runType || filters.page > 1
        ? empty('No run matches these filters', 'Choose another state or run type.', h('a.button', { href: `${page.base}/runs` }, 'Clear filters'))
        : empty('This DAG has not run yet', ctx.can('User') ? 'Trigger it to make its first run.' : 'Its runs are listed here once its schedule or a user with the User role starts one.', page.triggerButton('runs-empty-trigger')));
      return;
    }
    const pages = Math.max(1, Math.ceil(answer.total_entries / PAGE_SIZE));
    replace(list,
      h('table.list', { id: 'runs-table' },
        h('thead', h('tr', ['State', 'Run', 'Type', 'Logical date', 'Started', 'Ended', 'Duration', 'Triggered by'].map((t) => h('th', t)))),
        h('tbody', answer.dag_runs.map((run) => {
          const duration = elapsed(run.start_date, run.end_date);
          return h('tr', { dataset: { runId: run.dag_run_id, state: run.state } },
            h('td', stateBadge(run.state)),
            h('td.mono', h('a', { href: runHref(dagId, run.dag_run_id) }, run.dag_run_id)),
            h('td', run.run_type.replaceAll('_', ' ')),
            h('td', time(run.logical_date)),
            h('td', time(run.start_date)),
            h('td', time(run.end_date)),
            h('td', duration !== null ? `${fmtDuration(duration)}${run.end_date ? '' : ' so far'}` : h('span.muted', '—')),
            h('td', run.triggering_user_name || run.triggered_by || h('span.muted', '—')));
        }))),
      h('div.pager',
        `${answer.total_entries} run${answer.total_entries === 1 ? '' : 's'}`,
        h('button', { type: 'button', disabled: filters.page <= 1, onclick: () => setUrl({ page: filters.page - 1 }) }, 'Newer'),
        `Page ${filters.page} of ${pages}`,
        h('button', { type: 'button', disabled: filters.page >= pages, onclick: () => setUrl({ page: filters.page + 1 }) }, 'Older')));
  });

  ctx.onEvent((event) => {
    if (event.type === 'resync' || (event.type === 'run' && event.dag_id === dagId)) load();
  });
  await load();
}
