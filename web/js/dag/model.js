// What the DAG page's tabs share about a DAG's shape and states: the task-group tree in
// display order, which groups the user collapsed (one choice per DAG, kept by the browser,
// shared by the grid and the graph), how a group's state sums up its tasks' states, and
// where a task instance's page is.

import { path } from '../dom.js';

/**
 * How telling a state is when several are summed into one (highest wins): the order of the
 * server's grid and of Airflow's.
 */
const WEIGHT = {
  failed: 10,
  upstream_failed: 9,
  up_for_retry: 8,
  up_for_reschedule: 7,
  running: 6,
  queued: 5,
  scheduled: 4,
  none: 3,
  removed: 2,
  skipped: 1,
  success: 0,
};

/** The most telling of `states` (an iterable of state names; nulls are 'none'). */
export function summarise(states) {
  let best = null;
  for (const raw of states) {
    const state = raw || 'none';
    if (best === null || (WEIGHT[state] ?? 3) > (WEIGHT[best] ?? 3)) best = state;
  }
  return best || 'none';
}

/**
 * The structure as a tree: `{root, groups: Map, tasks: Map}` where every container (the
 * root and each group) has `children` in file order, tasks and groups interleaved where they
 * first appear, and each group knows its `taskIds` (every task inside it, at any depth).
 */
export function tree(structure) {
  const root = { id: null, children: [], taskIds: [] };
  const groups = new Map();
  for (const g of structure.groups) {
    groups.set(g.group_id, { ...g, kind: 'group', id: g.group_id, children: [], taskIds: [], placed: false });
  }
  const tasks = new Map();
  const containerOf = (groupId) => (groupId && groups.has(groupId) ? groups.get(groupId) : root);
  const place = (group) => {
    if (group.placed) return;
    group.placed = true;
    const parent = containerOf(group.parent_id);
    if (parent !== root) place(parent);
    parent.children.push(group);
  };
  for (const t of structure.tasks) {
    const task = { ...t, kind: 'task', id: t.task_id };
    tasks.set(t.task_id, task);
    const parent = containerOf(t.group_id);
    if (parent !== root) place(parent);
    parent.children.push(task);
    for (let g = parent; g !== root; g = containerOf(g.parent_id)) g.taskIds.push(t.task_id);
    root.taskIds.push(t.task_id);
  }
  // Groups with no tasks still show, at the end of their parent.
  for (const group of groups.values()) place(group);
  const model = { root, groups, tasks };
  for (const container of [root, ...groups.values()]) container.children = topological(model, container);
  return model;
}

/**
 * The direct child of `container` that holds `taskId`, or null when the task is outside it.
 */
export function childHolding(model, container, taskId) {
  const task = model.tasks.get(taskId);
  if (!task) return null;
  let node = task;
  for (let id = task.group_id; ; ) {
    const parentId = id && model.groups.has(id) ? id : null;
    if (parentId === container.id) return node;
    if (parentId === null) return null;
    node = model.groups.get(parentId);
    id = node.parent_id;
  }
}

/** A container's children upstream first (Airflow's order), file order among equals. */
function topological(model, container) {
  const children = container.children;
  const index = new Map(children.map((c, i) => [c, i]));
  const downstream = new Map(children.map((c) => [c, new Set()]));
  const indegree = new Map(children.map((c) => [c, 0]));
  for (const taskId of container.id === null ? model.root.taskIds : container.taskIds) {
    const to = childHolding(model, container, taskId);
    for (const up of model.tasks.get(taskId).upstream) {
      const from = childHolding(model, container, up);
      if (!from || !to || from === to || downstream.get(from).has(to)) continue;
      downstream.get(from).add(to);
      indegree.set(to, indegree.get(to) + 1);
    }
  }
  const ready = children.filter((c) => indegree.get(c) === 0);
  const out = [];
  while (ready.length) {
    ready.sort((a, b) => index.get(a) - index.get(b));
    const next = ready.shift();
    out.push(next);
    for (const d of downstream.get(next)) {
      indegree.set(d, indegree.get(d) - 1);
      if (indegree.get(d) === 0) ready.push(d);
    }
  }
  // A cycle cannot parse, but never drop a node if one slipped through.
  for (const c of children) if (!out.includes(c)) out.push(c);
  return out;
}

/** The chain of groups holding `node` (a task or group), outermost first. */
export function ancestors(model, node) {
  const chain = [];
  let id = node.kind === 'task' ? node.group_id : node.parent_id;
  while (id && model.groups.has(id)) {
    const group = model.groups.get(id);
    chain.unshift(group);
    id = group.parent_id;
  }
  return chain;
}

const COLLAPSED_KEY = (dagId) => `updraft.collapsed.${dagId}`;

/** The groups the user collapsed in this DAG, as remembered by this browser. */
export function loadCollapsed(dagId) {
  try {
    const saved = JSON.parse(localStorage.getItem(COLLAPSED_KEY(dagId)) || '[]');
    return new Set(Array.isArray(saved) ? saved.filter((g) => typeof g === 'string') : []);
  } catch {
    return new Set();
  }
}

export function saveCollapsed(dagId, collapsed) {
  if (collapsed.size) localStorage.setItem(COLLAPSED_KEY(dagId), JSON.stringify([...collapsed]));
  else localStorage.removeItem(COLLAPSED_KEY(dagId));
}

/** The page of a DAG's run. */
export function runHref(dagId, runId) {
  return `/dags/${path(dagId)}/runs/${path(runId)}`;
}

/**
 * The page a task's cell or node leads to: its task instance, or for a mapped task the list
 * of its mapped instances (Airflow's `/mapped`), where each has its own page.
 */
export function taskHref(dagId, runId, task) {
  const base = `${runHref(dagId, runId)}/tasks/${path(task.task_id)}`;
  return task.is_mapped ? `${base}/mapped` : base;
}

/** Milliseconds between two instants; an open end means now; null without a start. */
export function elapsed(start, end) {
  if (!start) return null;
  return Math.max(0, (end ? Date.parse(end) : Date.now()) - Date.parse(start));
}

/** The run the graph and Gantt show: kept in this URL's `?run_id=` and in both tabs' links. */
export function rememberRun(runId) {
  const params = new URLSearchParams(location.search);
  if (runId) params.set('run_id', runId);
  else params.delete('run_id');
  history.replaceState(null, '', `${location.pathname}${params.toString() ? '?' + params : ''}`);
  for (const a of document.querySelectorAll('#dag-tabs a[data-tab="gantt"], #dag-tabs a[data-tab="graph"]')) {
    const url = new URL(a.getAttribute('href'), location.origin);
    if (runId) url.searchParams.set('run_id', runId);
    else url.searchParams.delete('run_id');
    a.setAttribute('href', url.pathname + url.search);
  }
}
