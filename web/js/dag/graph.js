// The DAG page's graph: the tasks laid out left to right (`layout.js`) and drawn in SVG, each
// node with its label, operator and the state it has in the chosen run (the newest unless
// `?run_id=` names one; a picker changes it), edges with arrowheads, task groups as boxes
// that collapse into one node and expand again (the same choice as the grid's). Drag pans,
// the wheel zooms, "Fit" shows it all; a node opens its task instance. Pushed run changes
// refetch the states and recolour the nodes in place.

import * as api from '../api.js';
import { h, replace, path, empty, coalesce, fmtTime, fmtDuration } from '../dom.js';
import { tree, summarise, loadCollapsed, saveCollapsed, taskHref, elapsed, rememberRun } from './model.js';
import { layout, BOX } from './layout.js';

const RUNS = 25;
const NODE_H = 54;
const NODE_MIN_W = 150;
const NODE_MAX_W = 260;
const ZOOM = { min: 0.15, max: 2.5 };

export default async function render(ctx, page) {
  const { dagId, body } = page;
  const collapsed = loadCollapsed(dagId);
  let wanted = ctx.query.get('run_id');
  let grid = null;
  let chosen = null;
  let structure = null;
  let model = null;
  let drawing = null;
  const structures = new Map();

  const picker = h('select', { id: 'graph-run', 'aria-label': 'Run whose states the graph shows' });
  const expandAll = h('button.small.ghost', { type: 'button', id: 'graph-expand-all' }, 'Expand all');
  const collapseAll = h('button.small.ghost', { type: 'button', id: 'graph-collapse-all' }, 'Collapse all');
  const zoomOut = h('button.small', { type: 'button', title: 'Zoom out', 'aria-label': 'Zoom out' }, '−');
  const zoomIn = h('button.small', { type: 'button', title: 'Zoom in', 'aria-label': 'Zoom in' }, '+');
  const fit = h('button.small', { type: 'button', id: 'graph-fit', title: 'Show the whole graph' }, 'Fit');
  const runInfo = h('span.muted.small', { id: 'graph-run-info' });
  const toolbar = h('div.toolbar.graph-toolbar', h('label', { for: 'graph-run' }, 'Run'), picker, runInfo, h('div.dag-fill'), expandAll, collapseAll, zoomOut, zoomIn, fit);
  const notice = h('div');
  const svg = h('svg', { id: 'dag-graph', class: 'graph', role: 'img', 'aria-label': `Graph of ${dagId}` });
  const wrap = h('div.graph-wrap', svg);
  replace(body, toolbar, notice, wrap, h('p.small.muted.graph-hint', 'Drag to pan, scroll to zoom. Click a task to open its instance in the chosen run; click a group to fold or unfold it.'));

  const view = { x: 20, y: 20, k: 1 };
  const viewport = h('g.viewport');
  svg.append(h('defs', h('marker', { id: 'graph-arrow', viewBox: '0 0 10 10', refX: '9', refY: '5', markerWidth: '7', markerHeight: '7', orient: 'auto-start-reverse' }, h('path.arrow', { d: 'M0,0 L10,5 L0,10 z' }))), viewport);
  const applyView = () => viewport.setAttribute('transform', `translate(${view.x.toFixed(1)},${view.y.toFixed(1)}) scale(${view.k.toFixed(4)})`);
  const fitView = () => {
    if (!drawing) return;
    const width = wrap.clientWidth || 800;
    const height = wrap.clientHeight || 500;
    const k = Math.min(1.1, (width - 40) / Math.max(1, drawing.width), (height - 40) / Math.max(1, drawing.height));
    view.k = Math.max(ZOOM.min, k);
    view.x = (width - drawing.width * view.k) / 2;
    view.y = (height - drawing.height * view.k) / 2;
    applyView();
  };
  const zoomAt = (factor, cx, cy) => {
    const k = Math.min(ZOOM.max, Math.max(ZOOM.min, view.k * factor));
    view.x = cx - ((cx - view.x) * k) / view.k;
    view.y = cy - ((cy - view.y) * k) / view.k;
    view.k = k;
    applyView();
  };
  fit.addEventListener('click', fitView);
  zoomIn.addEventListener('click', () => zoomAt(1.25, wrap.clientWidth / 2, wrap.clientHeight / 2));
  zoomOut.addEventListener('click', () => zoomAt(0.8, wrap.clientWidth / 2, wrap.clientHeight / 2));
  svg.addEventListener('wheel', (event) => {
    event.preventDefault();
    const box = svg.getBoundingClientRect();
    zoomAt(Math.exp(-event.deltaY * 0.0015), event.clientX - box.left, event.clientY - box.top);
  }, { passive: false });
  // Dragging pans; a drag that moved is not a click on the node it started on.
  let drag = null;
  let dragged = false;
  svg.addEventListener('pointerdown', (event) => {
    if (event.button !== 0) return;
    drag = { x: event.clientX, y: event.clientY, vx: view.x, vy: view.y, id: event.pointerId };
    dragged = false;
  });
  svg.addEventListener('pointermove', (event) => {
    if (!drag || event.pointerId !== drag.id) return;
    const dx = event.clientX - drag.x;
    const dy = event.clientY - drag.y;
    if (!dragged && Math.hypot(dx, dy) < 4) return;
    if (!dragged) svg.setPointerCapture(event.pointerId);
    dragged = true;
    svg.classList.add('panning');
    view.x = drag.vx + dx;
    view.y = drag.vy + dy;
    applyView();
  });
  const endDrag = () => {
    drag = null;
    svg.classList.remove('panning');
  };
  svg.addEventListener('pointerup', endDrag);
  svg.addEventListener('pointercancel', endDrag);

  const toggleGroup = (groupId) => {
    if (collapsed.has(groupId)) collapsed.delete(groupId);
    else collapsed.add(groupId);
    saveCollapsed(dagId, collapsed);
    redraw(false);
  };
  expandAll.addEventListener('click', () => {
    collapsed.clear();
    saveCollapsed(dagId, collapsed);
    redraw(true);
  });
  collapseAll.addEventListener('click', () => {
    if (!model) return;
    for (const id of model.groups.keys()) collapsed.add(id);
    saveCollapsed(dagId, collapsed);
    redraw(true);
  });

  const activate = (target) => {
    if (dragged) return;
    if (target.group) toggleGroup(target.group);
    else if (target.task && chosen) ctx.navigate(taskHref(dagId, chosen.run_id, target.task));
  };

  const redraw = (refit) => {
    if (!model) return;
    const before = drawing;
    drawing = draw(viewport, model, collapsed, states(chosen), activate);
    svg.dataset.runId = chosen ? chosen.run_id : '';
    if (refit || !before) fitView();
    else {
      // Keep the view steady around the same centre when a group folds or unfolds.
      view.x += ((before.width - drawing.width) * view.k) / 2;
      view.y += ((before.height - drawing.height) * view.k) / 2;
      applyView();
    }
  };

  picker.addEventListener('change', () => {
    wanted = picker.value || null;
    rememberRun(wanted);
    load();
  });

  const load = coalesce(async () => {
    grid = await api.get(`/ui/dags/${path(dagId)}/grid`, { limit: RUNS }, { signal: ctx.signal });
    chosen = wanted ? grid.runs.find((r) => r.run_id === wanted) : grid.runs[grid.runs.length - 1];
    if (wanted && !chosen) chosen = await olderRun(dagId, wanted, ctx.signal);
    renderPicker(picker, grid.runs, chosen, wanted);
    runInfo.replaceChildren(...(chosen ? runSummary(chosen) : []));
    const version = chosen?.version && chosen.version !== grid.structure.version ? chosen.version : grid.structure.version;
    let next = version === grid.structure.version ? grid.structure : structures.get(version);
    if (!next) {
      next = await api.get(`/ui/dags/${path(dagId)}/structure`, { version }, { signal: ctx.signal }).catch(() => grid.structure);
      structures.set(version, next);
    }
    if (!grid.runs.length && !chosen) {
      // A slim note, so the graph (already useful without a run) keeps the room.
      replace(notice, h('div.banner.graph-empty', h('strong', 'This DAG has not run yet.'), ctx.can('User')
        ? 'Trigger it to see its tasks’ states here as it runs.'
        : 'Its tasks’ states show here once it runs.', h('span.dag-fill'), page.triggerButton('graph-empty-trigger')));
    } else {
      notice.replaceChildren();
    }
    if (!next.tasks.length) {
      replace(notice, empty('This DAG has no tasks', 'Add tasks to its file; they show here once it parses.'));
    }
    collapseAll.hidden = expandAll.hidden = !next.groups.length;
    if (!structure || next.version !== structure.version || !drawing) {
      structure = next;
      model = tree(structure);
      redraw(true);
    } else {
      drawing.update(states(chosen));
      svg.dataset.runId = chosen ? chosen.run_id : '';
    }
  });

  ctx.onEvent((event) => {
    if (event.type === 'resync' || (event.type === 'run' && event.dag_id === dagId)) load();
  });
  const resize = () => drawing && !drag && fitView();
  window.addEventListener('resize', resize);
  ctx.cleanup(() => window.removeEventListener('resize', resize));
  await load();
}

/** A run beyond the grid's page, with its task instances summed up like the grid's cells. */
async function olderRun(dagId, runId, signal) {
  try {
    const run = await api.get(`/api/v2/dags/${path(dagId)}/dagRuns/${path(runId)}`, null, { signal });
    const tis = await api.all(`/api/v2/dags/${path(dagId)}/dagRuns/${path(runId)}/taskInstances`, 'task_instances');
    const cells = new Map();
    for (const ti of tis) {
      const cell = cells.get(ti.task_id) || { task_id: ti.task_id, states: [], mapped_count: null };
      cell.states.push(ti.state || 'none');
      if (ti.map_index >= 0) cell.mapped_count = (cell.mapped_count || 0) + 1;
      cells.set(ti.task_id, cell);
    }
    return {
      run_id: run.dag_run_id,
      state: run.state,
      run_type: run.run_type,
      logical_date: run.logical_date,
      queued_at: run.queued_at,
      start_date: run.start_date,
      end_date: run.end_date,
      cells: [...cells.values()].map((c) => ({ ...c, state: summarise(c.states) })),
    };
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    return null;
  }
}

function renderPicker(picker, runs, chosen, wanted) {
  const options = [...runs].reverse().map((r, i) => h('option', { value: i === 0 && !wanted ? '' : r.run_id, selected: chosen?.run_id === r.run_id }, `${r.run_id} · ${r.state}${i === 0 ? ' (newest)' : ''}`));
  if (chosen && !runs.some((r) => r.run_id === chosen.run_id)) options.unshift(h('option', { value: chosen.run_id, selected: true }, `${chosen.run_id} · ${chosen.state}`));
  if (!options.length) options.push(h('option', { value: '' }, 'No runs yet'));
  replace(picker, options);
  picker.disabled = !runs.length;
}

function runSummary(run) {
  const duration = elapsed(run.start_date, run.end_date);
  return [
    h('span.state', { dataset: { state: run.state } }, h('span.swatch'), run.state),
    run.logical_date ? ` · ${fmtTime(run.logical_date)}` : '',
    duration !== null ? ` · ${fmtDuration(duration)}${run.end_date ? '' : ' so far'}` : '',
  ];
}

/** Task id → its cell in `run` (state, mapped count), empty without a run. */
function states(run) {
  return new Map((run?.cells || []).map((c) => [c.task_id, c]));
}

// ---- drawing -------------------------------------------------------------------------------

let measurer = null;

function textWidth(text, font) {
  measurer ||= document.createElement('canvas').getContext('2d');
  measurer.font = font;
  return measurer.measureText(text).width;
}

const LABEL_FONT = '600 13px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

/** `text` cut with an ellipsis to fit `width` pixels in `font`. */
function fitText(text, width, font) {
  if (textWidth(text, font) <= width) return text;
  let lo = 0;
  let hi = text.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (textWidth(`${text.slice(0, mid)}…`, font) <= width) lo = mid;
    else hi = mid - 1;
  }
  return `${text.slice(0, lo)}…`;
}

function labelOf(node, cells) {
  if (node.kind === 'group') return node.label;
  const count = cells.get(node.task_id)?.mapped_count;
  return node.is_mapped ? `${node.label} [${count ?? ' '}]` : node.label;
}

function nodeSize(node) {
  const sub = node.kind === 'group' ? `${node.taskIds.length} tasks` : node.operator;
  const wide = Math.max(textWidth(node.label, LABEL_FONT) + (node.is_mapped ? 34 : 0), textWidth(sub, '11.5px system-ui') + 70);
  return { w: Math.round(Math.min(NODE_MAX_W, Math.max(NODE_MIN_W, wide + 34))), h: NODE_H };
}

function groupStateOf(group, cells) {
  return summarise(group.taskIds.map((id) => cells.get(id)?.state || 'none'));
}

function stateWord(state) {
  return state === 'none' ? 'no status' : state.replaceAll('_', ' ');
}

/**
 * Draw the graph into `viewport`; returns its size and `update(cells)`, which recolours the
 * nodes for other states without laying out again.
 */
function draw(viewport, model, collapsed, cells, activate) {
  const laid = layout(model, collapsed, nodeSize);
  const boxes = h('g.boxes');
  const edges = h('g.edges');
  const nodes = h('g.nodes');
  const painters = [];
  const edgesOf = new Map();

  for (const edge of laid.edges) {
    const el = h('path.edge', { d: curve(edge.points), 'marker-end': 'url(#graph-arrow)', dataset: { from: edge.from, to: edge.to } });
    edges.appendChild(el);
    for (const end of [edge.from, edge.to]) {
      if (!edgesOf.has(end)) edgesOf.set(end, []);
      edgesOf.get(end).push(el);
    }
  }
  const highlight = (id, on) => {
    for (const el of edgesOf.get(id) || []) el.classList.toggle('lit', on);
  };
  const interactive = (g, target, label) => {
    g.setAttribute('tabindex', '0');
    g.setAttribute('role', target.group ? 'button' : 'link');
    g.setAttribute('aria-label', label);
    g.addEventListener('click', () => activate(target));
    g.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        activate(target);
      }
    });
  };

  for (const box of laid.boxes) {
    const group = box.node;
    const title = h('title');
    const header = h('g.box-header',
      h('rect.box-hit', { x: 0, y: 0, width: box.w, height: BOX.top - 6, rx: 10 }),
      h('text.box-label', { x: 12, y: 21 }, `▾ ${fitText(group.label, box.w - 90, LABEL_FONT)}`),
      h('text.box-count', { x: box.w - 12, y: 21, 'text-anchor': 'end' }, `${group.taskIds.length} tasks`));
    const g = h('g.graph-box', { transform: `translate(${box.x},${box.y})`, dataset: { groupId: group.group_id, collapsed: 'false' } },
      title,
      h('rect.box-frame', { width: box.w, height: box.h, rx: 10 }),
      header);
    interactive(header, { group: group.group_id }, `Collapse group ${group.group_id}`);
    header.addEventListener('mouseenter', () => g.classList.add('hover'));
    header.addEventListener('mouseleave', () => g.classList.remove('hover'));
    boxes.appendChild(g);
    painters.push((c) => {
      const state = groupStateOf(group, c);
      g.dataset.state = state;
      title.textContent = `${group.group_id}${group.tooltip ? `\n${group.tooltip}` : ''}\nState: ${stateWord(state)}\nClick the title to fold the group`;
    });
  }

  for (const placed of laid.nodes) {
    const node = placed.node;
    const isGroup = node.kind === 'group';
    const title = h('title');
    const label = h('text.node-label', { x: 14, y: 23 });
    const stateText = h('text.node-state', { x: placed.w - 12, y: 41, 'text-anchor': 'end' });
    const sub = h('text.node-sub', { x: 14, y: 41 }, isGroup ? `${node.taskIds.length} tasks` : fitText(node.operator, placed.w - 90, '11.5px system-ui'));
    const g = h(isGroup ? 'g.graph-node.graph-group' : 'g.graph-node', {
      transform: `translate(${placed.x},${placed.y})`,
      dataset: isGroup ? { groupId: node.group_id, collapsed: 'true' } : { taskId: node.task_id },
    },
    title,
    isGroup ? h('rect.node-stack', { x: 5, y: 5, width: placed.w, height: placed.h, rx: 8 }) : null,
    h('rect.node-box', { width: placed.w, height: placed.h, rx: 8 }),
    h('rect.node-stripe', { x: 0, y: 8, width: 4, height: placed.h - 16, rx: 2 }),
    label, sub, stateText);
    interactive(g, isGroup ? { group: node.group_id } : { task: node }, isGroup ? `Expand group ${node.group_id}` : `Open task ${node.task_id}`);
    g.addEventListener('mouseenter', () => highlight(node.id, true));
    g.addEventListener('mouseleave', () => highlight(node.id, false));
    nodes.appendChild(g);
    painters.push((c) => {
      const state = isGroup ? groupStateOf(node, c) : c.get(node.task_id)?.state || 'none';
      g.dataset.state = state;
      label.textContent = `${isGroup ? '▸ ' : ''}${fitText(labelOf(node, c), placed.w - 36, LABEL_FONT)}`;
      stateText.textContent = stateWord(state);
      const cell = c.get(node.task_id);
      const lines = isGroup
        ? [`${node.group_id} (group of ${node.taskIds.length})`, node.tooltip, `State: ${stateWord(state)}`, 'Click to unfold']
        : [node.task_id, node.operator, `Trigger rule: ${node.trigger_rule}`, `State: ${stateWord(state)}`,
          cell?.mapped_count != null ? `${cell.mapped_count} mapped instances` : null,
          cell?.start_date ? `Started: ${fmtTime(cell.start_date)}` : null,
          cell?.start_date ? `Duration: ${fmtDuration(elapsed(cell.start_date, cell.end_date))}` : null];
      title.textContent = lines.filter(Boolean).join('\n');
    });
  }

  const paint = (c) => painters.forEach((p) => p(c));
  paint(cells);
  viewport.replaceChildren(boxes, edges, nodes);
  return { width: laid.width, height: laid.height, update: paint };
}

/** A smooth path through `points`, leaving and entering each horizontally. */
function curve(points) {
  const [first, ...rest] = points;
  let d = `M${first[0].toFixed(1)},${first[1].toFixed(1)}`;
  let [px, py] = first;
  for (const [x, y] of rest) {
    const mx = (px + x) / 2;
    d += ` C${mx.toFixed(1)},${py.toFixed(1)} ${mx.toFixed(1)},${y.toFixed(1)} ${x.toFixed(1)},${y.toFixed(1)}`;
    [px, py] = [x, y];
  }
  return d;
}
