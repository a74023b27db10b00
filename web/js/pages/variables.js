// Variables (`/variables`): search, sort and paging in the URL; each key with its value (the
// server masks secret-looking keys, and a masked value is never shown or sent back) and
// description; add, edit and delete for the Op role and above.

import * as api from '../api.js';
import { h, replace, path, coalesce } from '../dom.js';
import { confirmDialog, toast } from '../dialog.js';
import { parseJson } from '../json_editor.js';
import { listState, searchBox, sortHeader, pager, needsRole, field, formDialog, emptyList, cli, PAGE_SIZE } from '../admin_form.js';

const MASK = '***';

export default async function render(ctx) {
  ctx.setTitle('Variables');
  if (!ctx.can('Op')) {
    ctx.main.append(head(ctx, null), needsRole(ctx, 'Op', 'Reading and changing variables'));
    return;
  }
  const state = listState(ctx, '/variables', { order: 'key', sorts: ['key', '-key', 'description', '-description'] });
  const search = searchBox(ctx, state, { id: 'variable-search', placeholder: 'Search keys' });
  const body = h('div', { id: 'variable-list-body' });
  const add = h('button.primary', { type: 'button', id: 'add-variable', onclick: () => editVariable(null, load) }, '+ Add variable');
  ctx.main.append(head(ctx, add), h('div.toolbar', search), body);

  const load = coalesce(async () => {
    search.value = state.search;
    const list = await api.get('/api/v2/variables', {
      limit: PAGE_SIZE,
      offset: state.offset,
      order_by: state.order,
      variable_key_pattern: state.search ? `%${state.search}%` : undefined,
    }, { signal: ctx.signal });
    if (!list.variables.length && state.page > 1 && list.total_entries) {
      state.set({ page: Math.ceil(list.total_entries / PAGE_SIZE) });
      return;
    }
    if (!list.variables.length) {
      replace(body, emptyList(state, {
        none: 'No variables yet',
        noneHint: h('span', 'Add one here, or from a shell: ', cli('dagctl variables set KEY VALUE'), ' (', cli('dagctl variables import FILE'), ' for many). Tasks read them as ', h('code', '{{ var.value.KEY }}'), '.'),
        actions: [h('button.primary', { type: 'button', onclick: () => editVariable(null, load) }, '+ Add variable')],
        noMatch: `No variable key contains “${state.search}”`,
      }));
      return;
    }
    replace(body,
      h('table.list.admin-list', { id: 'variable-list' },
        h('thead', h('tr',
          sortHeader('Key', 'key', state),
          h('th', 'Value'),
          sortHeader('Description', 'description', state),
          h('th.actions-head', h('span.sr', 'Actions')))),
        h('tbody', list.variables.map((v) => row(v, load)))),
      pager(list.total_entries, state, 'variable'));
  });
  state.reload = load;
  ctx.onEvent((event) => {
    if (event.type === 'resync') load();
  });
  await load();
}

function head(ctx, add) {
  return h('div.page-head',
    h('div.grow',
      h('h1', 'Variables'),
      h('p.muted.subtitle', 'Settings that DAGs read at run time: ', h('code', '{{ var.value.KEY }}'), ' as text, ', h('code', '{{ var.json.KEY }}'), ' as JSON. Keys that look secret (password, token, key…) are masked.')),
    add ? h('div.actions', add) : null);
}

function row(variable, reload) {
  const masked = variable.value === MASK;
  return h('tr', { dataset: { key: variable.key } },
    h('td.key', h('code.key-text', variable.key)),
    h('td.value', masked
      ? h('span.masked', { title: 'The server masks the value of keys that look secret' }, h('span', { 'aria-hidden': 'true' }, '••••••••'), h('span.badge', 'secret'))
      : valueText(variable.value)),
    h('td.desc', variable.description || h('span.muted', '—')),
    h('td.row-actions',
      h('button.small.edit', { type: 'button', 'aria-label': `Edit ${variable.key}`, onclick: () => editVariable(variable, reload) }, 'Edit'),
      h('button.small.danger.delete', { type: 'button', 'aria-label': `Delete ${variable.key}`, onclick: () => deleteVariable(variable, reload) }, 'Delete')));
}

function valueText(value) {
  if (value === '') return h('span.muted', '(empty)');
  const parsed = /^[[{]/.test(value.trim()) ? parseJson(value) : { ok: false };
  const text = parsed.ok ? JSON.stringify(parsed.value) : value;
  return h('span.value-text', { title: value.length > 80 ? value : null }, parsed.ok ? h('span.badge.json', 'JSON') : null, text);
}

/** The add (variable null) or edit dialog. */
function editVariable(variable, reload) {
  const editing = Boolean(variable);
  const masked = editing && variable.value === MASK;
  const key = h('input', { type: 'text', name: 'key', value: editing ? variable.key : '', readonly: editing, spellcheck: 'false', autocomplete: 'off' });
  const value = h('textarea.mono', { name: 'value', rows: 5, spellcheck: 'false', placeholder: masked ? 'Secret: the stored value is not shown. Leave empty to keep it.' : 'Text, or JSON' });
  if (editing && !masked) value.value = variable.value;
  const jsonNote = h('span.hint.json-status');
  const noteJson = () => {
    const text = value.value.trim();
    const parsed = /^[[{]/.test(text) ? parseJson(text) : null;
    jsonNote.textContent = !parsed ? '' : parsed.ok ? '✓ Valid JSON: tasks can read it with var.json.' : `Saved as plain text: ${parsed.message.replace(/^Not valid JSON/, 'not valid JSON')}.`;
  };
  value.addEventListener('input', noteJson);
  noteJson();
  const description = h('input', { type: 'text', name: 'description', value: editing ? variable.description || '' : '' });
  const fields = [
    field({ label: 'Key', name: 'key', input: key, required: !editing, hint: editing ? 'A key cannot be renamed: add a new variable and delete this one.' : null }),
    field({ label: 'Value', name: 'value', input: h('div', value, jsonNote) }),
    field({ label: 'Description', name: 'description', input: description, optional: true }),
  ];
  formDialog({
    id: 'variable-dialog',
    title: editing ? `Edit variable ${variable.key}` : 'Add a variable',
    fields,
    submitLabel: editing ? 'Save' : 'Add',
    conflictField: 'key',
    submit: async () => {
      const body = { key: key.value.trim(), value: value.value, description: description.value.trim() || null };
      if (!editing) {
        if (!body.key) {
          fields[0].setError('Enter a key.');
          key.focus();
          return false;
        }
        await api.post('/api/v2/variables', body);
        toast(`Variable ${body.key} added`);
      } else {
        // An empty value for a masked variable keeps the stored secret.
        const query = masked && value.value === '' ? { update_mask: ['description'] } : undefined;
        await api.request('PATCH', `/api/v2/variables/${path(variable.key)}`, { body, query });
        toast(`Variable ${variable.key} saved`);
      }
      reload();
      return true;
    },
  });
}

async function deleteVariable(variable, reload) {
  const yes = await confirmDialog(`Delete variable ${variable.key}?`,
    'Tasks that read it will fail until it is set again. This cannot be undone.',
    { confirm: 'Delete', danger: true });
  if (!yes) return;
  try {
    await api.del(`/api/v2/variables/${path(variable.key)}`);
    toast(`Variable ${variable.key} deleted`);
  } catch (err) {
    toast(err.message, 'error');
  }
  reload();
}
