// Users (`/users`, Admin only): who can log in and with which role, what each role may do,
// and adding or deleting a user (never yourself). Everyone else is told the page needs the
// Admin role.

import * as api from '../api.js';
import { h, replace, path, time, relative, coalesce } from '../dom.js';
import { confirmDialog, toast } from '../dialog.js';
import { needsRole, field, formDialog, pager, listState, cli, PAGE_SIZE } from '../admin_form.js';

const ROLES = [
  ['Viewer', 'Reads DAGs, runs, task logs, pools and import errors.'],
  ['User', 'A Viewer who also triggers, pauses, clears and marks runs and tasks.'],
  ['Op', 'A User who also manages variables, connections and pools.'],
  ['Admin', 'An Op who also manages users.'],
];

export default async function render(ctx) {
  ctx.setTitle('Users');
  const head = (add) => h('div.page-head',
    h('div.grow',
      h('h1', 'Users'),
      h('p.muted.subtitle', 'The same users and roles log in here and to the REST API (', cli('dagctl login'), ').')),
    add ? h('div.actions', add) : null);
  if (!ctx.can('Admin')) {
    ctx.main.append(head(null), needsRole(ctx, 'Admin', 'Managing users'));
    return;
  }
  const state = listState(ctx, '/users');
  const add = h('button.primary', { type: 'button', id: 'add-user', onclick: () => addUser(load) }, '+ Add user');
  const body = h('div', { id: 'user-list-body' });
  ctx.main.append(head(add),
    h('div.users-layout', body,
      h('aside.card.roles', { 'aria-label': 'Roles' },
        h('h2', 'Roles'),
        h('dl.role-list', ROLES.map(([role, text]) => [h('dt', h('span.role', { dataset: { role } }, role)), h('dd', text)])))));

  const load = coalesce(async () => {
    const list = await api.get('/api/v2/users', { limit: PAGE_SIZE, offset: state.offset }, { signal: ctx.signal });
    replace(body,
      h('table.list.admin-list', { id: 'user-list' },
        h('thead', h('tr', h('th', 'Username'), h('th', 'Role'), h('th', 'Created'), h('th.actions-head', h('span.sr', 'Actions')))),
        h('tbody', list.users.map((user) => {
          const self = user.username === ctx.session.username;
          return h('tr', { dataset: { username: user.username } },
            h('td.key', h('strong', user.username), self ? h('span.badge', 'you') : null),
            h('td', h('span.role', { dataset: { role: user.role } }, user.role)),
            h('td', time(user.created_at), h('div.small.muted', relative(user.created_at))),
            h('td.row-actions',
              h('button.small.danger.delete', {
                type: 'button',
                disabled: self,
                title: self ? 'You cannot delete yourself' : null,
                'aria-label': `Delete ${user.username}`,
                onclick: () => deleteUser(user, load),
              }, 'Delete')));
        }))),
      pager(list.total_entries, state, 'user'));
  });
  state.reload = load;
  ctx.onEvent((event) => {
    if (event.type === 'resync') load();
  });
  await load();
}

function addUser(reload) {
  const username = h('input', { type: 'text', name: 'username', autocomplete: 'off', spellcheck: 'false' });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'new-password' });
  const again = h('input', { type: 'password', name: 'password_again', autocomplete: 'new-password' });
  const role = h('select', { name: 'role' }, ROLES.map(([name, text]) => h('option', { value: name, selected: name === 'Viewer', title: text }, name)));
  const roleHint = h('span');
  const describe = () => {
    roleHint.textContent = ROLES.find(([name]) => name === role.value)[1];
  };
  role.addEventListener('change', describe);
  describe();
  const fields = [
    field({ label: 'Username', name: 'username', input: username, required: true }),
    field({ label: 'Password', name: 'password', input: password, required: true }),
    field({ label: 'Password again', name: 'password_again', input: again, required: true }),
    field({ label: 'Role', name: 'role', input: role, hint: roleHint, required: true }),
  ];
  formDialog({
    id: 'user-dialog',
    title: 'Add a user',
    fields,
    submitLabel: 'Add',
    conflictField: 'username',
    submit: async (form, { fields: named }) => {
      let ok = true;
      if (!username.value.trim()) {
        named.username.setError('Enter a username.');
        ok = false;
      }
      if (!password.value) {
        named.password.setError('Enter a password.');
        ok = false;
      } else if (password.value !== again.value) {
        named.password_again.setError('The two passwords differ.');
        ok = false;
      }
      if (!ok) {
        form.querySelector('[aria-invalid="true"]')?.focus();
        return false;
      }
      await api.post('/api/v2/users', { username: username.value.trim(), password: password.value, role: role.value });
      toast(`User ${username.value.trim()} added as ${role.value}`);
      reload();
      return true;
    },
  });
}

async function deleteUser(user, reload) {
  const yes = await confirmDialog(`Delete user ${user.username}?`,
    'They can no longer log in, and their sessions and tokens stop working. This cannot be undone.',
    { confirm: 'Delete', danger: true });
  if (!yes) return;
  try {
    await api.del(`/api/v2/users/${path(user.username)}`);
    toast(`User ${user.username} deleted`);
  } catch (err) {
    toast(err.message, 'error');
  }
  reload();
}
