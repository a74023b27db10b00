// The DAG page (`/dags/{dag_id}/{tab}`): a header with what the DAG is (description, tags,
// owner, schedule in words, next and latest run), its pause toggle and trigger button, and
// the tabs, each a sub-path so it survives reload: grid (the default), graph, gantt, runs,
// tasks, code and details. Each tab lives in `js/dag/<tab>.js` and is loaded when opened.

import * as api from '../api.js';
import { h, replace, link, path, stateBadge, relative, fmtTime, coalesce } from '../dom.js';
import { describeSchedule } from '../cron.js';
import { toast } from '../dialog.js';

const TABS = [
  ['grid', 'Grid'],
  ['graph', 'Graph'],
  ['gantt', 'Gantt'],
  ['runs', 'Runs'],
  ['tasks', 'Tasks'],
  ['code', 'Code'],
  ['details', 'Details'],
];
/** Tabs that show one run, so `?run_id=` carries over between them. */
const RUN_TABS = new Set(['graph', 'gantt']);

export default async function render(ctx) {
  const dagId = ctx.params.dag_id;
  const tab = ctx.params.tab || 'grid';
  const base = `/dags/${path(dagId)}`;
  const known = TABS.find(([id]) => id === tab);
  ctx.setTitle(known ? `${dagId} · ${known[1]}` : dagId);

  const [dag, summary] = await Promise.all([
    api.get(`/api/v2/dags/${path(dagId)}`, null, { signal: ctx.signal }),
    api.get('/ui/dags/summary', { dag_ids: dagId }, { signal: ctx.signal }).catch(() => null),
  ]);

  const triggerButton = (id) => {
    if (!ctx.can('User')) return null;
    const button = h('button.primary.trigger', { type: 'button', id, title: `Trigger ${dagId}` }, '▶ Trigger');
    button.addEventListener('click', async () => {
      try {
        const { openTrigger } = await import('../trigger.js');
        openTrigger(ctx, dagId);
      } catch (err) {
        console.error(err);
        toast(`The trigger form could not be opened: ${err.message}`, 'error');
      }
    });
    return button;
  };

  const facts = h('div.dag-facts', { id: 'dag-facts' });
  const head = h('div.page-head.dag-head',
    h('div.grow',
      h('div.crumbs', link('/dags', 'DAGs'), h('span.sep', { 'aria-hidden': 'true' }, '›'), h('span', { id: 'crumb-dag' }, dagId)),
      h('div.dag-title',
        h('h1', { id: 'dag-id' }, dag.dag_display_name || dagId),
        pauseToggle(ctx, dag),
      ),
      dag.description ? h('p.dag-description', { id: 'dag-description' }, dag.description) : null,
    ),
    h('div.actions', triggerButton('dag-trigger')),
  );
  const banners = h('div');
  if (dag.has_import_errors) {
    banners.appendChild(h('div.banner.bad', { role: 'alert' }, 'The DAG file has an import error: this is the last version that parsed.', link('/import-errors', 'See the import error')));
  }
  if (dag.is_stale) {
    banners.appendChild(h('div.banner.warn', 'This DAG is no longer in the DAG folder; its history is kept.'));
  }

  const runId = ctx.query.get('run_id');
  const tabs = h('nav.tabs', { 'aria-label': 'DAG views', id: 'dag-tabs' }, TABS.map(([id, label]) => {
    const href = `${base}${id === 'grid' ? '' : '/' + id}${RUN_TABS.has(id) && RUN_TABS.has(tab) && runId ? `?run_id=${encodeURIComponent(runId)}` : ''}`;
    return h('a', { href, 'aria-current': id === tab ? 'page' : null, dataset: { tab: id } }, label);
  }));
  const body = h('section.dag-tab', { id: `dag-tab-${tab}`, dataset: { tab } });
  ctx.main.append(head, facts, banners, tabs, body);

  const renderFacts = (info) => renderHeaderFacts(facts, dag, info, base);
  renderFacts(summary?.dags?.[dagId]);
  const refreshFacts = coalesce(async () => {
    const fresh = await api.get('/ui/dags/summary', { dag_ids: dagId }, { signal: ctx.signal });
    renderFacts(fresh.dags[dagId]);
  });
  ctx.onEvent((event) => {
    if (event.type === 'resync' || (event.type === 'run' && event.dag_id === dagId)) refreshFacts().catch(() => {});
  });

  if (!known) {
    replace(body, h('div.empty', h('p.empty-title', `There is no “${tab}” view`), h('p', link(base, 'Open the grid'))));
    return;
  }
  const module = await import(`../dag/${tab}.js`);
  await module.default(ctx, { dagId, dag, body, base, triggerButton, nextRunAt: summary?.dags?.[dagId]?.next_run_at || null });
}

function pauseToggle(ctx, dag) {
  const toggle = h('input', { type: 'checkbox', id: 'dag-pause-toggle', checked: !dag.is_paused, disabled: !ctx.can('User'), 'aria-label': dag.is_paused ? 'Unpause this DAG' : 'Pause this DAG' });
  const word = h('span.pause-word', dag.is_paused ? 'Paused' : 'Active');
  const wrap = h('span.dag-pause', { dataset: { paused: String(dag.is_paused) }, title: ctx.can('User') ? 'Paused DAGs make no scheduled runs' : 'Your role cannot pause or unpause' }, h('label.switch', toggle, h('span')), word);
  toggle.addEventListener('change', async () => {
    const pausedNow = !toggle.checked;
    toggle.disabled = true;
    try {
      await api.patch(`/api/v2/dags/${path(dag.dag_id)}`, { is_paused: pausedNow });
      dag.is_paused = pausedNow;
      word.textContent = pausedNow ? 'Paused' : 'Active';
      wrap.dataset.paused = String(pausedNow);
      toggle.setAttribute('aria-label', pausedNow ? 'Unpause this DAG' : 'Pause this DAG');
      toast(`${dag.dag_id} ${pausedNow ? 'paused' : 'unpaused'}`);
    } catch (err) {
      toggle.checked = !pausedNow;
      toast(err.message, 'error');
    } finally {
      toggle.disabled = false;
    }
  });
  return wrap;
}

function renderHeaderFacts(el, dag, info, base) {
  const words = describeSchedule(dag.timetable_summary);
  const runs = info?.recent_runs || [];
  const last = runs[runs.length - 1];
  const fact = (label, ...value) => h('div.fact', h('span.fact-label', label), h('span.fact-value', ...value));
  replace(el,
    fact('Schedule', words
      ? h('span', { title: dag.timetable_summary, id: 'dag-schedule' }, words)
      : h('span.muted', { id: 'dag-schedule' }, 'None (manual only)')),
    fact('Next run', dag.is_paused
      ? h('span.muted', 'Paused')
      : info?.next_run_at
        ? h('span', { title: fmtTime(info.next_run_at, { zone: true }) }, relative(info.next_run_at))
        : h('span.muted', '—')),
    fact('Latest run', last
      ? h('span', { id: 'dag-latest-run' }, link(`${base}/runs/${path(last.run_id)}`, stateBadge(last.state)), h('span.muted', { title: fmtTime(last.logical_date || last.queued_at, { zone: true }) }, ` ${relative(last.logical_date || last.queued_at)}`))
      : h('span.muted', { id: 'dag-latest-run' }, 'Never run')),
    fact('Owner', dag.owners.length ? dag.owners.join(', ') : h('span.muted', '—')),
    fact('Tags', dag.tags.length
      ? h('span.tag-list', dag.tags.map((t) => h('a.tag', { href: `/dags?tags=${encodeURIComponent(t.name)}` }, t.name)))
      : h('span.muted', 'None')),
  );
}
