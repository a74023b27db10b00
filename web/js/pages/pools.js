// Pools (`/pools`): each pool's slots and how they are used (running, queued, open) with a
// usage bar, updated live as tasks start and finish; add, resize and delete for the Op role
// and above (the server refuses to delete default_pool, and says so).

import * as api from '../api.js';
import { h, replace, path, coalesce } from '../dom.js';
import { confirmDialog, toast } from '../dialog.js';
import { listState, searchBox, sortHeader, pager, field, formDialog, emptyList, cli, PAGE_SIZE } from '../admin_form.js';

export default async function render(ctx) {
  ctx.setTitle('Pools');
  const canEdit = ctx.can('Op');
  const state = listState(ctx, '/pools', { order: 'name', sorts: ['name', '-name', 'slots', '-slots'] });
  const search = searchBox(ctx, state, { id: 'pool-search', placeholder: 'Search pools' });
  const body = h('div', { id: 'pool-list-body' });
  const add = canEdit ? h('button.primary', { type: 'button', id: 'add-pool', onclick: () => editPool(null, load) }, '+ Add pool') : null;
  ctx.main.append(
    h('div.page-head',
      h('div.grow',
        h('h1', 'Pools'),
        h('p.muted.subtitle', 'Pools cap how many tasks run at once against a shared resource. A task takes a slot of its pool (default_pool unless it names one) while it runs; the others wait, queued.')),
      add ? h('div.actions', add) : null),
    h('div.toolbar', search),
    body);

  const load = coalesce(async () => {
    search.value = state.search;
    const list = await api.get('/api/v2/pools', {
      limit: PAGE_SIZE,
      offset: state.offset,
      order_by: state.order,
      pool_name_pattern: state.search ? `%${state.search}%` : undefined,
    }, { signal: ctx.signal });
    if (!list.pools.length && state.page > 1 && list.total_entries) {
      state.set({ page: Math.ceil(list.total_entries / PAGE_SIZE) });
      return;
    }
    if (!list.pools.length) {
      replace(body, emptyList(state, {
        none: 'No pools',
        noneHint: h('span', 'Add one here, or from a shell: ', cli('dagctl pools set NAME SLOTS --description TEXT'), '. A task joins it with pool: NAME.'),
        actions: canEdit ? [h('button.primary', { type: 'button', onclick: () => editPool(null, load) }, '+ Add pool')] : [],
        noMatch: `No pool name contains “${state.search}”`,
      }));
      return;
    }
    replace(body,
      h('table.list.admin-list', { id: 'pool-list' },
        h('thead', h('tr',
          sortHeader('Pool', 'name', state),
          sortHeader('Slots', 'slots', state, { numeric: true }),
          h('th.usage-head', 'Usage'),
          h('th.num', 'Running'),
          h('th.num', 'Queued'),
          h('th.num', 'Open'),
          h('th', 'Description'),
          canEdit ? h('th.actions-head', h('span.sr', 'Actions')) : null)),
        h('tbody', list.pools.map((p) => row(p, canEdit, load)))),
      pager(list.total_entries, state, 'pool'));
  });
  state.reload = load;
  // A task starting or ending changes the slots in use; it comes as its run's event.
  ctx.onEvent((event) => {
    if (event.type === 'resync' || event.type === 'run') load();
  });
  await load();
}

function row(pool, canEdit, reload) {
  const unlimited = pool.slots < 0;
  return h('tr', { dataset: { pool: pool.name } },
    h('td.key', h('code.key-text', pool.name), pool.name === 'default_pool' ? h('span.badge', { title: 'Tasks that name no pool use it' }, 'default') : null),
    h('td.num.slots', unlimited ? h('span', { title: '-1 slots: no limit' }, '∞ unlimited') : String(pool.slots)),
    h('td.usage-cell', usageBar(pool)),
    h('td.num.running', { dataset: { count: pool.running_slots } }, pool.running_slots),
    h('td.num.queued', { dataset: { count: pool.queued_slots } }, pool.queued_slots),
    h('td.num.open', unlimited ? '∞' : String(pool.open_slots)),
    h('td.desc', pool.description || h('span.muted', '—')),
    canEdit ? h('td.row-actions',
      h('button.small.edit', { type: 'button', 'aria-label': `Edit ${pool.name}`, onclick: () => editPool(pool, reload) }, 'Edit'),
      h('button.small.danger.delete', { type: 'button', 'aria-label': `Delete ${pool.name}`, onclick: () => deletePool(pool, reload) }, 'Delete')) : null);
}

/** Running and queued as parts of the pool's slots (queued past the end is cut off). */
function usageBar(pool) {
  const unlimited = pool.slots < 0;
  const total = unlimited ? Math.max(1, pool.running_slots + pool.queued_slots) : Math.max(1, pool.slots);
  const running = Math.min(100, (pool.running_slots / total) * 100);
  const queued = Math.min(100 - running, (pool.queued_slots / total) * 100);
  const label = unlimited
    ? `${pool.running_slots} running, ${pool.queued_slots} queued, no limit`
    : `${pool.running_slots} of ${pool.slots} slots running, ${pool.queued_slots} queued`;
  return h('div.usage', { title: label },
    h('div.usage-bar', { role: 'img', 'aria-label': label },
      h('span.part', { dataset: { state: 'running' }, style: { width: `${running}%` } }),
      h('span.part', { dataset: { state: 'queued' }, style: { width: `${queued}%` } })),
    h('span.usage-text', unlimited ? `${pool.running_slots} running` : `${pool.running_slots} / ${pool.slots}`));
}

function editPool(pool, reload) {
  const editing = Boolean(pool);
  const name = h('input', { type: 'text', name: 'name', value: pool?.name ?? '', readonly: editing, spellcheck: 'false', autocomplete: 'off' });
  const slots = h('input', { type: 'text', name: 'slots', inputmode: 'numeric', value: pool ? String(pool.slots) : '8' });
  const description = h('input', { type: 'text', name: 'description', value: pool?.description ?? '' });
  const fields = [
    field({ label: 'Name', name: 'name', input: name, required: !editing, hint: editing ? null : 'Tasks join the pool with pool: NAME.' }),
    field({ label: 'Slots', name: 'slots', input: slots, required: true, hint: 'How many of its tasks may run at once; -1 for no limit.' }),
    field({ label: 'Description', name: 'description', input: description, optional: true }),
  ];
  formDialog({
    id: 'pool-dialog',
    title: editing ? `Edit pool ${pool.name}` : 'Add a pool',
    fields,
    submitLabel: editing ? 'Save' : 'Add',
    conflictField: 'name',
    submit: async (form, { fields: named }) => {
      const poolName = name.value.trim();
      const count = Number(slots.value.trim());
      let ok = true;
      if (!poolName) {
        named.name.setError('Enter a name.');
        ok = false;
      }
      if (slots.value.trim() === '' || !Number.isInteger(count)) {
        named.slots.setError('Slots is a whole number: -1 for no limit, else 0 or more.');
        ok = false;
      }
      if (!ok) {
        form.querySelector('[aria-invalid="true"]')?.focus();
        return false;
      }
      const text = description.value.trim() || null;
      if (!editing) {
        await api.post('/api/v2/pools', { name: poolName, slots: count, description: text });
        toast(`Pool ${poolName} added`);
      } else {
        await api.request('PATCH', `/api/v2/pools/${path(pool.name)}`, {
          body: { slots: count, description: text ?? '' },
          query: { update_mask: ['slots', 'description'] },
        });
        toast(`Pool ${pool.name} saved`);
      }
      reload();
      return true;
    },
  });
}

async function deletePool(pool, reload) {
  const yes = await confirmDialog(`Delete pool ${pool.name}?`,
    'Tasks that name it can no longer run until it is added again. This cannot be undone.',
    { confirm: 'Delete', danger: true });
  if (!yes) return;
  try {
    await api.del(`/api/v2/pools/${path(pool.name)}`);
    toast(`Pool ${pool.name} deleted`);
  } catch (err) {
    toast(err.message, 'error');
  }
  reload();
}
