// The DAG page's details tab: its schedule and time zone, limits, params with their schema,
// default args, file and version, and its documentation (`doc_md`), shown as text exactly as
// written and never rendered as HTML.

import * as api from '../api.js';
import { h, replace, path, time, relative } from '../dom.js';
import { describeSchedule } from '../cron.js';

export default async function render(ctx, page) {
  const { dagId, body } = page;
  const d = await api.get(`/api/v2/dags/${path(dagId)}/details`, null, { signal: ctx.signal });
  const words = describeSchedule(d.timetable_summary);
  const next = page.nextRunAt || d.next_dagrun_run_after;
  const yesNo = (v) => (v ? 'Yes' : 'No');
  const none = (text = 'None') => h('span.muted', text);
  const facts = (pairs) => h('dl.facts', pairs.filter(Boolean).map(([k, v]) => [h('dt', k), h('dd', v ?? none())]));
  const card = (title, id, ...content) => h('section.card.dag-detail-card', { id }, h('h2', title), ...content);

  const params = Object.entries(d.params || {});
  const defaults = d.default_args && Object.keys(d.default_args).length ? d.default_args : null;

  const doc = card('Documentation', 'details-doc', d.doc_md
    ? h('pre.block.doc-md', { id: 'dag-doc-md' }, d.doc_md)
    : h('p.muted', 'This DAG has no doc_md.'));

  replace(body, h('div.dag-details',
    d.doc_md ? doc : null,
    card('Schedule', 'details-schedule', facts([
      ['Schedule', d.timetable_summary ? h('span', words, words !== d.timetable_summary ? h('span.muted.mono', ` (${d.timetable_summary})`) : null) : none('None (manual only)')],
      ['Time zone', d.timezone || 'UTC'],
      ['Start date', d.start_date ? time(d.start_date, { zone: true }) : none()],
      ['End date', d.end_date ? time(d.end_date, { zone: true }) : none()],
      ['Catchup', yesNo(d.catchup)],
      ['Next run', d.is_paused ? none('Paused') : next ? h('span', time(next, { zone: true }), h('span.muted', ` (${relative(next)})`)) : none('—')],
      ['Paused on creation', d.is_paused_upon_creation === null ? none('—') : yesNo(d.is_paused_upon_creation)],
    ])),
    card('Limits', 'details-limits', facts([
      ['Max active runs', d.max_active_runs === null ? none('No limit') : String(d.max_active_runs)],
      ['Max active tasks', String(d.max_active_tasks)],
      ['Max consecutive failed runs', d.max_consecutive_failed_dag_runs ? String(d.max_consecutive_failed_dag_runs) : none('No limit')],
      ['Run timeout', d.dag_run_timeout || none()],
      ['Active runs now', String(d.active_runs_count)],
    ])),
    card('Parameters', 'details-params', params.length
      ? h('table.list.params', h('thead', h('tr', ['Name', 'Default', 'Type', 'Allowed', 'Description'].map((t) => h('th', t)))),
        h('tbody', params.map(([name, param]) => paramRow(name, param))))
      : h('p.muted', 'This DAG takes no params; a trigger may still pass any conf.')),
    card('File and version', 'details-file', facts([
      ['File', h('span.mono', d.fileloc)],
      d.relative_fileloc && d.relative_fileloc !== d.fileloc ? ['Relative path', h('span.mono', d.relative_fileloc)] : null,
      ['Bundle', d.bundle_name || none()],
      ['Version', d.latest_dag_version ? `v${d.latest_dag_version.version_number}` : none('—')],
      ['File token', h('span.mono.small.token', { title: d.file_token }, d.file_token)],
      ['Last parsed', d.last_parsed ? h('span', time(d.last_parsed), h('span.muted', ` (${relative(d.last_parsed)})`)) : none('—')],
      d.has_import_errors ? ['Import error', h('a', { href: '/import-errors' }, 'The file fails to parse now')] : null,
    ])),
    card('People and tags', 'details-people', facts([
      ['Owners', d.owners.length ? d.owners.join(', ') : none()],
      ['Tags', d.tags.length ? d.tags.map((t) => t.name).join(', ') : none()],
      d.owner_links && Object.keys(d.owner_links).length ? ['Owner links', h('span', Object.entries(d.owner_links).map(([k, v]) => h('div', `${k}: ${v}`)))] : null,
      ['Templates render as native objects', yesNo(d.render_template_as_native_obj)],
    ])),
    card('Default args', 'details-default-args', defaults
      ? h('pre.block', JSON.stringify(defaults, null, 2))
      : h('p.muted', 'None: each task sets its own arguments.')),
    d.doc_md ? null : doc,
  ));
}

function paramRow(name, param) {
  const schema = param?.schema || {};
  const allowed = [];
  if (Array.isArray(schema.enum)) allowed.push(`one of ${schema.enum.map((v) => JSON.stringify(v)).join(', ')}`);
  if (schema.minimum !== null && schema.minimum !== undefined) allowed.push(`≥ ${schema.minimum}`);
  if (schema.maximum !== null && schema.maximum !== undefined) allowed.push(`≤ ${schema.maximum}`);
  const value = param && 'value' in param ? param.value : param;
  return h('tr', { dataset: { param: name } },
    h('td.mono', name),
    h('td.mono', value === null || value === undefined ? h('span.muted', 'required') : JSON.stringify(value)),
    h('td', schema.type ? (Array.isArray(schema.type) ? schema.type.join(' or ') : schema.type) : h('span.muted', 'any')),
    h('td', allowed.length ? allowed.join(', ') : h('span.muted', '—')),
    h('td', param?.description || h('span.muted', '—')));
}
