// Connections (`/connections`): each with its type, host, port, schema, login and whether
// it holds a password; add, edit and delete for the Op role and above. A stored password
// is never shown: editing leaves it as it is unless a new one is typed (or it is removed),
// and the secret keys of `extra`, masked by the server, must be typed again to change them.

import * as api from '../api.js';
import { h, replace, path, coalesce } from '../dom.js';
import { confirmDialog, toast } from '../dialog.js';
import { jsonEditor } from '../json_editor.js';
import { listState, searchBox, sortHeader, pager, needsRole, field, formDialog, emptyList, cli, PAGE_SIZE } from '../admin_form.js';

const MASK = '***';
/** The types Updraft's tasks and sensors use (the field takes any other too). */
const TYPES = [
  ['postgres', 'Postgres (sql tasks)'],
  ['sqlite', 'SQLite (sql tasks; the path goes in host)'],
  ['http', 'HTTP (http tasks and sensors)'],
  ['https', 'HTTPS (http tasks and sensors)'],
  ['smtp', 'SMTP (email tasks)'],
];

export default async function render(ctx) {
  ctx.setTitle('Connections');
  if (!ctx.can('Op')) {
    ctx.main.append(head(null), needsRole(ctx, 'Op', 'Reading and changing connections'));
    return;
  }
  const state = listState(ctx, '/connections', { order: 'connection_id', sorts: ['connection_id', '-connection_id', 'conn_type', '-conn_type', 'host', '-host'] });
  const search = searchBox(ctx, state, { id: 'connection-search', placeholder: 'Search connection ids' });
  const body = h('div', { id: 'connection-list-body' });
  const add = h('button.primary', { type: 'button', id: 'add-connection', onclick: () => editConnection(null, load) }, '+ Add connection');
  ctx.main.append(head(add), h('div.toolbar', search), body);

  const load = coalesce(async () => {
    search.value = state.search;
    const list = await api.get('/api/v2/connections', {
      limit: PAGE_SIZE,
      offset: state.offset,
      order_by: state.order,
      connection_id_pattern: state.search ? `%${state.search}%` : undefined,
    }, { signal: ctx.signal });
    if (!list.connections.length && state.page > 1 && list.total_entries) {
      state.set({ page: Math.ceil(list.total_entries / PAGE_SIZE) });
      return;
    }
    if (!list.connections.length) {
      replace(body, emptyList(state, {
        none: 'No connections yet',
        noneHint: h('span', 'Add one here, or from a shell: ', cli("dagctl connections add my_db --conn-uri 'postgres://user:pass@host:5432/db'"), '. Tasks name it by its id (conn_id).'),
        actions: [h('button.primary', { type: 'button', onclick: () => editConnection(null, load) }, '+ Add connection')],
        noMatch: `No connection id contains “${state.search}”`,
      }));
      return;
    }
    replace(body,
      h('table.list.admin-list', { id: 'connection-list' },
        h('thead', h('tr',
          sortHeader('Connection ID', 'connection_id', state),
          sortHeader('Type', 'conn_type', state),
          sortHeader('Host', 'host', state),
          h('th', 'Port'),
          h('th', 'Schema'),
          h('th', 'Login'),
          h('th', 'Password'),
          h('th', 'Description'),
          h('th.actions-head', h('span.sr', 'Actions')))),
        h('tbody', list.connections.map((c) => row(c, load)))),
      pager(list.total_entries, state, 'connection'));
  });
  state.reload = load;
  ctx.onEvent((event) => {
    if (event.type === 'resync') load();
  });
  await load();
}

function head(add) {
  return h('div.page-head',
    h('div.grow',
      h('h1', 'Connections'),
      h('p.muted.subtitle', 'Where tasks connect to — databases, HTTP APIs, mail servers — named by the conn_id tasks use. Passwords never leave the server.')),
    add ? h('div.actions', add) : null);
}

const dash = () => h('span.muted', '—');

function row(c, reload) {
  return h('tr', { dataset: { connId: c.connection_id } },
    h('td.key', h('code.key-text', c.connection_id)),
    h('td', h('span.conn-type', c.conn_type)),
    h('td.host', c.host || dash()),
    h('td.num', c.port === null || c.port === undefined ? dash() : String(c.port)),
    h('td', c.schema || dash()),
    h('td', c.login || dash()),
    h('td', c.password ? h('span.masked', { title: 'A password is stored; it is never shown' }, h('span', { 'aria-hidden': 'true' }, '••••'), h('span.badge', 'set')) : dash()),
    h('td.desc', c.description || dash()),
    h('td.row-actions',
      h('button.small.edit', { type: 'button', 'aria-label': `Edit ${c.connection_id}`, onclick: () => editConnection(c, reload) }, 'Edit'),
      h('button.small.danger.delete', { type: 'button', 'aria-label': `Delete ${c.connection_id}`, onclick: () => deleteConnection(c, reload) }, 'Delete')));
}

/** The add (conn null) or edit dialog. */
function editConnection(conn, reload) {
  const editing = Boolean(conn);
  const text = (name, value, attrs = {}) => h('input', { type: 'text', name, value: value ?? '', spellcheck: 'false', autocomplete: 'off', ...attrs });
  const connId = text('connection_id', conn?.connection_id, { readonly: editing });
  const types = h('datalist', { id: 'conn-types' }, TYPES.map(([value, label]) => h('option', { value }, label)));
  const connType = text('conn_type', conn?.conn_type, { list: 'conn-types', placeholder: 'postgres, sqlite, http…' });
  const host = text('host', conn?.host);
  const port = text('port', conn?.port ?? '', { inputmode: 'numeric' });
  const schema = text('schema', conn?.schema);
  const login = text('login', conn?.login);
  const password = h('input', {
    type: 'password',
    name: 'password',
    autocomplete: 'new-password',
    placeholder: editing && conn.password ? 'Unchanged — type a new one to replace it' : '',
  });
  const forget = editing && conn.password ? h('input', { type: 'checkbox', name: 'forget_password', id: 'forget-password' }) : null;
  if (forget) {
    forget.addEventListener('change', () => {
      password.disabled = forget.checked;
      if (forget.checked) password.value = '';
    });
  }
  const description = text('description', conn?.description);
  const extraError = h('p.field-error', { dataset: { errorFor: 'extra' }, role: 'alert', hidden: true });
  let initialExtra;
  try {
    initialExtra = conn?.extra ? JSON.parse(conn.extra) : undefined;
  } catch {
    initialExtra = conn?.extra;
  }
  const extra = jsonEditor({ name: 'extra', id: 'field-extra', value: initialExtra, expect: 'object', optional: true, error: extraError, label: 'Extra (JSON)' });
  const extraShown = extra.textarea.value;

  const fields = [
    field({ label: 'Connection ID', name: 'connection_id', input: connId, required: !editing }),
    field({ label: 'Type', name: 'conn_type', input: h('div', connType, types), required: true }),
    field({ label: 'Host', name: 'host', input: host, optional: true }),
    field({ label: 'Port', name: 'port', input: port, optional: true }),
    field({ label: 'Schema', name: 'schema', input: schema, optional: true, hint: 'The database, or the path prefix of an HTTP API.' }),
    field({ label: 'Login', name: 'login', input: login, optional: true }),
    field({
      label: 'Password',
      name: 'password',
      input: password,
      optional: true,
      hint: forget ? h('label.inline-check', forget, 'Remove the stored password') : 'Stored encrypted; never shown again.',
    }),
    field({ label: 'Description', name: 'description', input: description, optional: true }),
  ];
  const extraField = field({
    label: 'Extra',
    name: 'extra',
    input: extra.el,
    optional: true,
    wide: true,
    error: extraError,
    onClear: () => extra.check({ quiet: true }),
    hint: editing ? 'Secret keys show as ***: type their values again to change them, or leave the text as it is.' : 'A JSON object of settings the task kind reads.',
  });
  fields.push(extraField);

  formDialog({
    id: 'connection-dialog',
    title: editing ? `Edit connection ${conn.connection_id}` : 'Add a connection',
    wide: true,
    fields,
    submitLabel: editing ? 'Save' : 'Add',
    conflictField: 'connection_id',
    submit: async (form, { fields: named }) => {
      let ok = true;
      const id = connId.value.trim();
      if (!id) {
        named.connection_id.setError('Enter an id: tasks name the connection by it.');
        ok = false;
      }
      if (!connType.value.trim()) {
        named.conn_type.setError('Enter a type, like postgres or http.');
        ok = false;
      }
      const portText = port.value.trim();
      const portNumber = portText === '' ? null : Number(portText);
      if (portText !== '' && !(Number.isInteger(portNumber) && portNumber > 0 && portNumber < 65536)) {
        named.port.setError('A port is a whole number from 1 to 65535.');
        ok = false;
      }
      if (!extra.check({ quiet: true })) ok = false;
      const extraChanged = extra.textarea.value !== extraShown;
      if (extraChanged && extra.value && Object.values(extra.value).includes(MASK)) {
        extraField.setError('Values shown as *** are masked secrets: type them again, or remove those keys.');
        ok = false;
      }
      if (!ok) {
        form.querySelector('[aria-invalid="true"]')?.focus();
        return false;
      }
      const orNull = (input) => input.value.trim() || null;
      const body = {
        connection_id: id,
        conn_type: connType.value.trim(),
        description: orNull(description),
        host: orNull(host),
        login: orNull(login),
        schema: orNull(schema),
        port: portNumber,
        password: password.value === '' ? null : password.value,
        extra: extra.value === undefined ? null : JSON.stringify(extra.value),
      };
      if (!editing) {
        await api.post('/api/v2/connections', body);
        toast(`Connection ${id} added`);
      } else {
        const mask = ['conn_type', 'description', 'host', 'login', 'schema', 'port'];
        if (password.value !== '' || (forget && forget.checked)) mask.push('password');
        if (extraChanged) mask.push('extra');
        await api.request('PATCH', `/api/v2/connections/${path(conn.connection_id)}`, { body, query: { update_mask: mask } });
        toast(`Connection ${id} saved`);
      }
      reload();
      return true;
    },
  });
}

async function deleteConnection(conn, reload) {
  const yes = await confirmDialog(`Delete connection ${conn.connection_id}?`,
    'Tasks that use it will fail until it is added again. Its stored password is deleted too. This cannot be undone.',
    { confirm: 'Delete', danger: true });
  if (!yes) return;
  try {
    await api.del(`/api/v2/connections/${path(conn.connection_id)}`);
    toast(`Connection ${conn.connection_id} deleted`);
  } catch (err) {
    toast(err.message, 'error');
  }
  reload();
}
