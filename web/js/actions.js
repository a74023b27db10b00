// What a user does to runs and task instances, as dialogs any page can open: clear a run or a
// task instance (the server's dry run lists what will be cleared before anything changes),
// mark a run or a task instance success or failed (the task instances that will change are
// listed first), and delete a run. Each resolves to true once the server has done it, so the
// caller can reload what it shows; everything else the page learns from the pushed events.

import * as api from './api.js';
import { h, replace, path, stateBadge } from './dom.js';
import { openDialog, confirmDialog, toast } from './dialog.js';

/** Task states a hand-set run state sweeps up (the store's "unfinished"). */
const UNFINISHED = new Set([null, 'none', 'scheduled', 'queued', 'running', 'up_for_retry', 'up_for_reschedule']);

function runBase(dagId, runId) {
  return `/api/v2/dags/${path(dagId)}/dagRuns/${path(runId)}`;
}

/** The page of a task instance. */
export function taskInstanceHref(dagId, runId, taskId, mapIndex = -1) {
  const base = `/dags/${path(dagId)}/runs/${path(runId)}/tasks/${path(taskId)}`;
  return mapIndex >= 0 ? `${base}/mapped/${mapIndex}` : base;
}

/** Task instances as a short table: task, map index, state, and an optional extra column. */
function instanceTable(instances, note) {
  return h('div.affected-wrap',
    h('table.list.affected', { id: 'affected-list' },
      h('thead', h('tr', h('th', 'Task'), h('th', 'Map index'), h('th', 'State'), note ? h('th', note.title) : null)),
      h('tbody', instances.map((ti) => h('tr', { dataset: { taskId: ti.task_id, mapIndex: String(ti.map_index) } },
        h('td.mono', ti.task_id),
        h('td', ti.map_index >= 0 ? String(ti.map_index) : h('span.muted', '—')),
        h('td', stateBadge(ti.state)),
        note ? h('td', note.cell(ti)) : null)))));
}

function checkbox(id, label, hint, checked = false) {
  const input = h('input', { type: 'checkbox', id, checked });
  return { input, el: h('label.option', { for: id }, input, h('span', h('span.option-label', label), hint ? h('span.hint', hint) : null)) };
}

/**
 * The shape of every clear dialog: options that change the dry run, the dry run's list, and
 * a confirm button naming how many task instances will be cleared.
 */
function clearDialog({ title, intro, options, dryRun, apply }) {
  return new Promise((resolve) => {
    let done = false;
    const list = h('div.affected-box', { id: 'clear-list', 'aria-live': 'polite' }, h('p.loading', 'Asking the server what would be cleared…'));
    const error = h('p.form-error', { role: 'alert', hidden: true });
    const confirm = h('button.primary', { type: 'button', 'data-confirm': '', disabled: true }, 'Clear');
    const cancel = h('button', { type: 'button' }, 'Cancel');
    const { dialog, close } = openDialog({
      title,
      id: 'clear-dialog',
      wide: true,
      body: [h('p', intro), options.length ? h('fieldset.options', h('legend.sr', 'Options'), options.map((o) => o.el)) : null, list, error],
      actions: [cancel, confirm],
    });
    cancel.addEventListener('click', close);
    dialog.addEventListener('close', () => resolve(done));

    let generation = 0;
    const preview = async () => {
      const mine = ++generation;
      confirm.disabled = true;
      delete dialog.dataset.ready;
      error.hidden = true;
      try {
        const instances = await dryRun();
        if (mine !== generation) return;
        if (!instances.length) {
          replace(list, h('p.muted.nothing', 'Nothing to clear with these options: tasks that never ran have nothing to clear.'));
          confirm.textContent = 'Clear';
        } else {
          replace(list,
            h('p.affected-title', `${instances.length} task instance${instances.length === 1 ? '' : 's'} will be cleared and run again:`),
            instanceTable(instances));
          confirm.textContent = `Clear ${instances.length} task instance${instances.length === 1 ? '' : 's'}`;
          confirm.disabled = false;
          if (!dialog.contains(document.activeElement) || document.activeElement.classList.contains('close')) confirm.focus();
        }
        dialog.dataset.ready = 'true';
      } catch (err) {
        if (mine !== generation) return;
        replace(list);
        error.textContent = `The dry run failed: ${err.message}`;
        error.hidden = false;
        dialog.dataset.ready = 'true';
      }
    };
    for (const option of options) option.input.addEventListener('change', preview);
    confirm.addEventListener('click', async () => {
      confirm.disabled = true;
      try {
        await apply();
        done = true;
        close();
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
        confirm.disabled = false;
      }
    });
    preview();
  });
}

/** Clear a run's task instances (all, or only the failed ones) after showing the dry run. */
export async function clearRun(ctx, dagId, runId) {
  const onlyFailed = checkbox('clear-only-failed', 'Only failed tasks', 'Clear only failed and upstream-failed task instances.');
  const body = (dryRun) => ({ dry_run: dryRun, only_failed: onlyFailed.input.checked });
  const done = await clearDialog({
    title: `Clear run ${runId}`,
    intro: 'Cleared task instances go back to the scheduler and run again, with a new try each; the run becomes active again.',
    options: [onlyFailed],
    dryRun: async () => (await api.post(`${runBase(dagId, runId)}/clear`, body(true))).task_instances || [],
    apply: () => api.post(`${runBase(dagId, runId)}/clear`, body(false)),
  });
  if (done) toast(`Run ${runId} cleared.`);
  return done;
}

/** Clear one task instance, optionally with its downstream or upstream tasks. */
export async function clearTask(ctx, dagId, runId, taskId, mapIndex = -1) {
  const downstream = checkbox('clear-downstream', 'Include downstream', 'Also clear the tasks that depend on this one, transitively.', true);
  const upstream = checkbox('clear-upstream', 'Include upstream', 'Also clear the tasks this one depends on, transitively.');
  const onlyFailed = checkbox('clear-only-failed', 'Only failed', 'Clear only the failed and upstream-failed ones among them.');
  const body = (dryRun) => ({
    dry_run: dryRun,
    dag_run_id: runId,
    task_ids: [mapIndex >= 0 ? [taskId, mapIndex] : taskId],
    include_downstream: downstream.input.checked,
    include_upstream: upstream.input.checked,
    only_failed: onlyFailed.input.checked,
  });
  const label = mapIndex >= 0 ? `${taskId} [${mapIndex}]` : taskId;
  const done = await clearDialog({
    title: `Clear ${label}`,
    intro: 'Cleared task instances go back to the scheduler and run again, with a new try each.',
    options: [downstream, upstream, onlyFailed],
    dryRun: async () => (await api.post(`/api/v2/dags/${path(dagId)}/clearTaskInstances`, body(true))).task_instances,
    apply: () => api.post(`/api/v2/dags/${path(dagId)}/clearTaskInstances`, body(false)),
  });
  if (done) toast(`${label} cleared.`);
  return done;
}

/** What marking a run `state` does to its task instances, as the server does it. */
function runMarkEffect(state, ti) {
  if (!UNFINISHED.has(ti.state)) return null;
  if (state === 'success') return 'success';
  return ti.state === 'running' ? 'failed' : 'skipped';
}

/** Mark a run success or failed, after listing the task instances that will change. */
export async function markRun(ctx, dagId, runId, state) {
  let instances = [];
  try {
    instances = await api.all(`${runBase(dagId, runId)}/taskInstances`, 'task_instances');
  } catch {
    // The list is a preview; the server decides either way.
  }
  const changing = instances.filter((ti) => runMarkEffect(state, ti));
  const details = changing.length
    ? h('div', h('p.affected-title', `${changing.length} unfinished task instance${changing.length === 1 ? '' : 's'} will change:`),
      instanceTable(changing, { title: 'Becomes', cell: (ti) => stateBadge(runMarkEffect(state, ti)) }))
    : h('p.muted', 'Every task instance of the run has finished; only the run’s state changes.');
  const text = state === 'success'
    ? `Mark run ${runId} as success? Its unfinished task instances are marked success.`
    : `Mark run ${runId} as failed? Its running task instances are marked failed and the other unfinished ones skipped.`;
  const ok = await confirmDialog(`Mark run as ${state}`, text, { confirm: `Mark ${state}`, danger: state === 'failed', details });
  if (!ok) return false;
  try {
    await api.patch(runBase(dagId, runId), { state });
    toast(`Run ${runId} marked ${state}.`);
    return true;
  } catch (err) {
    toast(`The run could not be marked ${state}: ${err.message}`, 'error');
    return false;
  }
}

/** Delete a run with its task instances, logs and XComs; then go back to the DAG. */
export async function deleteRun(ctx, dagId, runId) {
  const ok = await confirmDialog('Delete run', `Delete run ${runId} of ${dagId}, with its task instances, their logs and XComs? This cannot be undone.`, { confirm: 'Delete run', danger: true });
  if (!ok) return false;
  try {
    await api.del(runBase(dagId, runId));
  } catch (err) {
    toast(`The run could not be deleted: ${err.message}`, 'error');
    return false;
  }
  toast(`Run ${runId} deleted.`);
  ctx.navigate(`/dags/${path(dagId)}`);
  return true;
}

/** Tasks upstream and/or downstream of `taskId` (not itself), transitively, from the structure. */
function related(structure, taskId, upstream, downstream) {
  const found = new Set();
  const byId = new Map(structure.tasks.map((t) => [t.task_id, t]));
  const stack = [taskId];
  while (stack.length) {
    const current = stack.pop();
    const next = [];
    if (downstream) for (const t of structure.tasks) if (t.upstream.includes(current)) next.push(t.task_id);
    if (upstream) next.push(...(byId.get(current)?.upstream || []));
    for (const id of next) {
      if (id !== taskId && !found.has(id)) {
        found.add(id);
        stack.push(id);
      }
    }
  }
  return found;
}

/** Mark a task instance success or failed, optionally with its downstream or upstream tasks. */
export function markTask(ctx, dagId, runId, taskId, mapIndex = -1, state = 'success') {
  return new Promise((resolve) => {
    let done = false;
    const downstream = checkbox('mark-downstream', 'Include downstream', 'Also mark the tasks that depend on this one.');
    const upstream = checkbox('mark-upstream', 'Include upstream', 'Also mark the tasks this one depends on.');
    const list = h('div.affected-box', { id: 'mark-list', 'aria-live': 'polite' }, h('p.loading', 'Loading the task instances…'));
    const error = h('p.form-error', { role: 'alert', hidden: true });
    const confirm = h(`button.${state === 'failed' ? 'danger' : 'primary'}`, { type: 'button', 'data-confirm': '' }, `Mark ${state}`);
    const cancel = h('button', { type: 'button' }, 'Cancel');
    const label = mapIndex >= 0 ? `${taskId} [${mapIndex}]` : taskId;
    const { dialog, close } = openDialog({
      title: `Mark ${label} as ${state}`,
      id: 'mark-dialog',
      wide: true,
      body: [h('p', `The task instance's state is set to ${state} by hand, and the scheduler goes on from there.`),
        h('fieldset.options', h('legend.sr', 'Options'), downstream.el, upstream.el), list, error],
      actions: [cancel, confirm],
    });
    cancel.addEventListener('click', close);
    dialog.addEventListener('close', () => resolve(done));

    let instances = null;
    let structure = null;
    const preview = () => {
      if (!instances) return;
      const others = structure && (downstream.input.checked || upstream.input.checked)
        ? related(structure, taskId, upstream.input.checked, downstream.input.checked)
        : new Set();
      const changing = instances.filter((ti) => ti.state !== state
        && ((ti.task_id === taskId && ti.map_index === mapIndex) || others.has(ti.task_id)));
      replace(list, changing.length
        ? [h('p.affected-title', `${changing.length} task instance${changing.length === 1 ? '' : 's'} will be marked ${state}:`), instanceTable(changing)]
        : h('p.muted.nothing', `Already ${state}: nothing changes.`));
      dialog.dataset.ready = 'true';
    };
    downstream.input.addEventListener('change', preview);
    upstream.input.addEventListener('change', preview);
    Promise.all([
      api.all(`${runBase(dagId, runId)}/taskInstances`, 'task_instances'),
      api.get(`/ui/dags/${path(dagId)}/structure`).catch(() => null),
    ]).then(([tis, shape]) => {
      instances = tis;
      structure = shape;
      preview();
      if (document.activeElement?.classList.contains('close')) confirm.focus();
    }).catch((err) => {
      replace(list, h('p.muted', `The preview could not be loaded (${err.message}); the server still checks the change.`));
      dialog.dataset.ready = 'true';
    });

    confirm.addEventListener('click', async () => {
      confirm.disabled = true;
      const target = mapIndex >= 0
        ? `${runBase(dagId, runId)}/taskInstances/${path(taskId)}/${mapIndex}`
        : `${runBase(dagId, runId)}/taskInstances/${path(taskId)}`;
      try {
        await api.patch(target, { new_state: state, include_downstream: downstream.input.checked, include_upstream: upstream.input.checked });
        done = true;
        toast(`${label} marked ${state}.`);
        close();
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
        confirm.disabled = false;
      }
    });
  });
}
