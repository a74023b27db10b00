// The graph's layout, left to right, Sugiyama style and without the DOM: inside each
// container (the DAG, then every expanded group, innermost first) the children are layered
// by longest path, edges that skip layers get dummy points, a few barycentric sweeps order
// each layer to cut crossings, and the positions are pulled toward their neighbours. An
// expanded group is laid out first and then placed as one big node in its parent, so its
// box holds exactly its tasks; a collapsed group is one node.

import { childHolding } from './model.js';

const RANK_GAP = 64;
const NODE_GAP = 18;
const DUMMY = { w: 12, h: 10 };
/** Room inside a group's box around what it holds, and above it for its title. */
export const BOX = { top: 34, side: 16, bottom: 16 };

/**
 * Lay out `model` (from `tree`) with the groups in `collapsed` folded; `size(node)` gives a
 * drawn node's `{w, h}`. Returns `{width, height, nodes, boxes, edges}` in absolute
 * coordinates: nodes (tasks and collapsed groups) and boxes (expanded groups) as
 * `{node, x, y, w, h}` (top left corner), edges as `{from, to, points}` between the ids of
 * drawn nodes, `points` from the source's right side to the target's left side.
 */
export function layout(model, collapsed, size) {
  const root = layoutContainer(model, model.root, collapsed, size);
  const nodes = [];
  const boxes = [];
  // Absolute positions: each container's children are relative to the container's origin.
  const absolute = (container, ox, oy) => {
    container.origin = { x: ox, y: oy };
    for (const [child, pos] of container.positions) {
      const x = ox + pos.x;
      const y = oy + pos.y;
      if (pos.box) {
        boxes.push({ node: child, x, y, w: pos.w, h: pos.h });
        absolute(pos.box, x + BOX.side, y + BOX.top);
      } else {
        nodes.push({ node: child, x, y, w: pos.w, h: pos.h });
      }
    }
  };
  absolute(root, 0, 0);

  const drawn = new Map(nodes.map((n) => [n.node.id, n]));
  const visible = (taskId) => {
    let id = taskId;
    // The outermost collapsed group holding the task stands for it.
    for (let g = model.tasks.get(taskId).group_id; g && model.groups.has(g); g = model.groups.get(g).parent_id) {
      if (collapsed.has(g)) id = g;
    }
    return id;
  };
  const edges = [];
  const seen = new Set();
  for (const task of model.tasks.values()) {
    const to = visible(task.task_id);
    for (const up of task.upstream) {
      if (!model.tasks.has(up)) continue;
      const from = visible(up);
      const key = `${from}\u0000${to}`;
      if (from === to || seen.has(key) || !drawn.has(from) || !drawn.has(to)) continue;
      seen.add(key);
      const a = drawn.get(from);
      const b = drawn.get(to);
      const via = route(model, root, up, task.task_id);
      edges.push({
        from,
        to,
        points: [[a.x + a.w, a.y + a.h / 2], ...via, [b.x, b.y + b.h / 2]],
      });
    }
  }
  return { width: root.w, height: root.h, nodes, boxes, edges };
}

/** The dummy points of the container edge that carries task edge `up` → `down`. */
function route(model, root, up, down) {
  let container = root;
  for (;;) {
    const a = childHolding(model, container, up);
    const b = childHolding(model, container, down);
    if (!a || !b) return [];
    if (a !== b) {
      const chain = container.chains.get(`${a.id}\u0000${b.id}`) || [];
      return chain.map((d) => [container.origin.x + d.x + d.w / 2, container.origin.y + d.y + d.h / 2]);
    }
    if (a.kind !== 'group' || !container.boxes.has(a)) return [];
    container = container.boxes.get(a);
  }
}

/** Lay out one container's children; returns its size, their positions and its chains. */
function layoutContainer(model, container, collapsed, size) {
  const items = container.children.map((child) => {
    if (child.kind === 'group' && !collapsed.has(child.id) && child.children.length) {
      const inner = layoutContainer(model, child, collapsed, size);
      return { child, w: inner.w + 2 * BOX.side, h: inner.h + BOX.top + BOX.bottom, box: inner };
    }
    return { child, ...size(child) };
  });
  const byChild = new Map(items.map((item) => [item.child, item]));

  // The container's own edges: task edges between two of its different children.
  const edgeSet = new Map();
  const taskIds = container.id === null ? [...model.tasks.keys()] : container.taskIds;
  for (const taskId of taskIds) {
    const to = childHolding(model, container, taskId);
    for (const up of model.tasks.get(taskId).upstream) {
      const from = childHolding(model, container, up);
      if (!from || !to || from === to) continue;
      edgeSet.set(`${from.id}\u0000${to.id}`, [byChild.get(from), byChild.get(to)]);
    }
  }

  // Layers by longest path from the sources (children are already upstream first).
  const layer = new Map(items.map((item) => [item, 0]));
  const preds = new Map(items.map((item) => [item, []]));
  for (const [from, to] of edgeSet.values()) preds.get(to).push(from);
  for (let changed = true, guard = 0; changed && guard < items.length + 1; guard++) {
    changed = false;
    for (const item of items) {
      const want = Math.max(0, ...preds.get(item).map((p) => layer.get(p) + 1));
      if (want !== layer.get(item)) {
        layer.set(item, want);
        changed = true;
      }
    }
  }

  // Dummy points along edges that skip layers, so long edges bend around nodes.
  const vertices = [...items];
  const links = [];
  const containerChains = new Map();
  for (const [key, [from, to]] of edgeSet) {
    let prev = from;
    const chain = [];
    for (let l = layer.get(from) + 1; l < layer.get(to); l++) {
      const dummy = { dummy: true, ...DUMMY };
      layer.set(dummy, l);
      vertices.push(dummy);
      links.push([prev, dummy]);
      chain.push(dummy);
      prev = dummy;
    }
    links.push([prev, to]);
    containerChains.set(key, chain);
  }

  const layers = [];
  for (const v of vertices) {
    const l = layer.get(v);
    (layers[l] ||= []).push(v);
  }
  for (let l = 0; l < layers.length; l++) layers[l] ||= [];
  const up = new Map(vertices.map((v) => [v, []]));
  const down = new Map(vertices.map((v) => [v, []]));
  for (const [a, b] of links) {
    down.get(a).push(b);
    up.get(b).push(a);
  }

  order(layers, up, down);
  const positions = place(layers, up, down);

  // Columns left to right, each as wide as its widest member.
  let x = 0;
  const pos = new Map();
  let height = 0;
  for (const members of layers) {
    const width = Math.max(0, ...members.map((v) => v.w));
    for (const v of members) {
      pos.set(v, { x: x + (width - v.w) / 2, y: positions.get(v), w: v.w, h: v.h });
      height = Math.max(height, positions.get(v) + v.h);
    }
    x += width + RANK_GAP;
  }
  const width = Math.max(0, x - RANK_GAP);

  return {
    id: container.id,
    w: width,
    h: height,
    positions: new Map(items.map((item) => [item.child, { ...pos.get(item), box: item.box }])),
    chains: new Map([...containerChains].map(([key, chain]) => [key, chain.map((d) => pos.get(d))])),
    boxes: new Map(items.filter((i) => i.box).map((i) => [i.child, i.box])),
  };
}

/** Barycentric sweeps, down then up, keeping the order with the fewest crossings. */
function order(layers, up, down) {
  const position = new Map();
  const index = () => layers.forEach((members) => members.forEach((v, i) => position.set(v, i)));
  index();
  let best = layers.map((m) => [...m]);
  let fewest = crossings(layers, down, position);
  for (let sweep = 0; sweep < 8 && fewest > 0; sweep++) {
    const downward = sweep % 2 === 0;
    const range = downward ? [...layers.keys()].slice(1) : [...layers.keys()].reverse().slice(1);
    for (const l of range) {
      const neighbours = downward ? up : down;
      const members = layers[l];
      const centre = new Map(members.map((v, i) => {
        const ns = neighbours.get(v);
        return [v, ns.length ? ns.reduce((s, n) => s + position.get(n), 0) / ns.length : i];
      }));
      members.sort((a, b) => centre.get(a) - centre.get(b));
      members.forEach((v, i) => position.set(v, i));
    }
    const count = crossings(layers, down, position);
    if (count < fewest) {
      fewest = count;
      best = layers.map((m) => [...m]);
    }
  }
  best.forEach((members, l) => {
    layers[l] = members;
  });
}

function crossings(layers, down, position) {
  let total = 0;
  for (let l = 0; l + 1 < layers.length; l++) {
    const segments = [];
    for (const v of layers[l]) for (const w of down.get(v)) segments.push([position.get(v), position.get(w)]);
    for (let i = 0; i < segments.length; i++) {
      for (let j = i + 1; j < segments.length; j++) {
        const [a1, b1] = segments[i];
        const [a2, b2] = segments[j];
        if ((a1 - a2) * (b1 - b2) < 0) total++;
      }
    }
  }
  return total;
}

/**
 * Vertical positions (tops): each layer stacked in its order, then a few sweeps pulling
 * every vertex toward the mean centre of its neighbours without breaking order or gaps.
 */
function place(layers, up, down) {
  const top = new Map();
  const gap = (a, b) => (a.dummy || b.dummy ? NODE_GAP / 2 : NODE_GAP);
  const tallest = Math.max(0, ...layers.map((m) => m.reduce((s, v, i) => s + v.h + (i ? gap(m[i - 1], v) : 0), 0)));
  for (const members of layers) {
    const total = members.reduce((s, v, i) => s + v.h + (i ? gap(members[i - 1], v) : 0), 0);
    let y = (tallest - total) / 2;
    members.forEach((v, i) => {
      if (i) y += gap(members[i - 1], v);
      top.set(v, y);
      y += v.h;
    });
  }
  const centre = (v) => top.get(v) + v.h / 2;
  const settle = (members, neighbours) => {
    if (!members.length) return;
    const want = members.map((v) => {
      const ns = neighbours.get(v);
      return ns.length ? ns.reduce((s, n) => s + centre(n), 0) / ns.length - v.h / 2 : top.get(v);
    });
    // Push down from the first, push up from the last; the mean of the two keeps the gaps.
    const forward = [];
    members.forEach((v, i) => {
      forward.push(i ? Math.max(want[i], forward[i - 1] + members[i - 1].h + gap(members[i - 1], v)) : want[i]);
    });
    const backward = new Array(members.length);
    for (let i = members.length - 1; i >= 0; i--) {
      const v = members[i];
      backward[i] = i === members.length - 1 ? want[i] : Math.min(want[i], backward[i + 1] - v.h - gap(v, members[i + 1]));
    }
    members.forEach((v, i) => top.set(v, (forward[i] + backward[i]) / 2));
  };
  for (let sweep = 0; sweep < 6; sweep++) {
    if (sweep % 2 === 0) for (let l = 1; l < layers.length; l++) settle(layers[l], up);
    else for (let l = layers.length - 2; l >= 0; l--) settle(layers[l], down);
  }
  // The topmost vertex at 0.
  const least = top.size ? Math.min(...top.values()) : 0;
  for (const [v, y] of top) top.set(v, y - least);
  return top;
}
