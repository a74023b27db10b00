// What the admin pages (variables, connections, pools, users) share: the list's search, sort
// and page kept in the URL, the pager, sortable headers, the "needs a role" message, and a
// form dialog that shows the server's refusal next to the field it names.

import { h, replace, empty } from './dom.js';
import { openDialog } from './dialog.js';

export const PAGE_SIZE = 25;

/**
 * The list's state from the URL (`?search=&order_by=&page=`); `set(changes)` updates it with
 * history.replaceState and calls `reload`.
 */
export function listState(ctx, base, { order = null, sorts = [] } = {}) {
  const q = ctx.query;
  const state = {
    search: q.get('search') || '',
    order: sorts.includes(q.get('order_by')) ? q.get('order_by') : order,
    page: Math.max(1, Number(q.get('page')) || 1),
    reload: () => {},
    set(changes) {
      Object.assign(state, changes);
      const params = new URLSearchParams();
      if (state.search) params.set('search', state.search);
      if (state.order && state.order !== order) params.set('order_by', state.order);
      if (state.page > 1) params.set('page', String(state.page));
      history.replaceState(null, '', `${base}${params.toString() ? '?' + params : ''}`);
      state.reload();
    },
    get offset() {
      return (state.page - 1) * PAGE_SIZE;
    },
  };
  return state;
}

/** A search box that updates `state.search` 200 ms after typing stops. */
export function searchBox(ctx, state, { id, placeholder }) {
  const input = h('input', { type: 'search', id, placeholder, value: state.search, 'aria-label': placeholder });
  let typing;
  input.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => state.set({ search: input.value.trim(), page: 1 }), 200);
  });
  ctx.cleanup(() => clearTimeout(typing));
  return input;
}

/** A column header that sorts by `key` (and `-key` on a second click). */
export function sortHeader(label, key, state, { numeric = false } = {}) {
  const active = state.order === key ? 'ascending' : state.order === `-${key}` ? 'descending' : null;
  return h('th', { 'aria-sort': active || 'none', class: numeric ? 'num' : null },
    h('button.sort', {
      type: 'button',
      title: `Sort by ${label.toLowerCase()}`,
      onclick: () => state.set({ order: state.order === key ? `-${key}` : key, page: 1 }),
    }, label, h('span.sort-mark', { 'aria-hidden': 'true' }, active === 'ascending' ? ' ▲' : active === 'descending' ? ' ▼' : '')));
}

/** "12 variables · Previous · Page 1 of 1 · Next". */
export function pager(total, state, noun) {
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
  return h('div.pager',
    `${total} ${noun}${total === 1 ? '' : 's'}`,
    pages > 1 ? [
      h('button', { type: 'button', disabled: state.page <= 1, onclick: () => state.set({ page: state.page - 1 }) }, 'Previous'),
      `Page ${state.page} of ${pages}`,
      h('button', { type: 'button', disabled: state.page >= pages, onclick: () => state.set({ page: state.page + 1 }) }, 'Next'),
    ] : null);
}

/** What a user whose role is too low sees instead of the page. */
export function needsRole(ctx, role, what) {
  return h('div.empty.role-needed', { id: 'role-needed' },
    h('p.empty-title', `${what} needs the ${role} role`),
    h('p.muted', `You are logged in as ${ctx.session.username}, with the ${ctx.session.role} role. Ask an Admin for a user with the ${role} role.`),
    h('div.actions', h('a.button', { href: '/dags' }, 'Back to the DAG list')));
}

/**
 * A labelled form field; its error element (made here unless `error` is given) shows a
 * message for `name`; `onClear` runs when the message is cleared.
 */
export function field({ label, name, input, hint, required = false, optional = false, error: given = null, onClear = null, wide = false }) {
  const error = given || h('p.field-error', { dataset: { errorFor: name }, role: 'alert', hidden: true });
  const control = input.matches && input.matches('input, select, textarea') ? input : input.querySelector('input, select, textarea');
  if (control && !control.id) control.id = `field-${name}`;
  const el = h('div.field', { dataset: { field: name }, class: wide ? 'span-2' : null },
    h('label', { for: control ? control.id : null }, label,
      required ? h('abbr.required', { title: 'required' }, '*') : null,
      optional ? h('span.muted.small', ' (optional)') : null),
    input,
    hint ? h('span.hint', hint) : null,
    error);
  return {
    name,
    el,
    control,
    error,
    setError(message) {
      error.textContent = message || '';
      error.hidden = !message;
      if (!message && onClear) onClear();
      if (control) {
        if (message) control.setAttribute('aria-invalid', 'true');
        else control.removeAttribute('aria-invalid');
      }
    },
  };
}

/**
 * A dialog with a form. `fields` come from `field()`; `submit(form)` does the request and
 * returns true to close. An ApiError it throws shows next to the field its `loc` names (or,
 * for a 409, next to `conflictField`), else above the buttons.
 */
export function formDialog({ id, title, intro, fields, submitLabel = 'Save', submit, conflictField, wide = false }) {
  const formId = `${id}-form`;
  const general = h('div.form-error', { role: 'alert', hidden: true });
  const form = h('form', { id: formId, novalidate: true, autocomplete: 'off' },
    intro || null,
    fields.map((f) => f.el),
    general);
  const save = h('button.primary', { type: 'submit', form: formId }, submitLabel);
  const cancel = h('button', { type: 'button' }, 'Cancel');
  const { dialog, close } = openDialog({ title, body: form, actions: [cancel, save], id, wide });
  cancel.addEventListener('click', close);
  for (const f of fields) {
    if (f.control) f.control.addEventListener('input', () => f.setError(null));
  }
  const showGeneral = (message) => {
    replace(general, message);
    general.hidden = !message;
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (save.disabled) return;
    for (const f of fields) f.setError(null);
    showGeneral(null);
    save.disabled = true;
    try {
      if (await submit(form, { fields: byName(fields), showGeneral })) close();
    } catch (err) {
      let placed = false;
      for (const f of fields) {
        const message = err.fieldMessage ? err.fieldMessage(f.name) : null;
        if (message) {
          f.setError(message);
          if (!placed && f.control) f.control.focus();
          placed = true;
        }
      }
      if (!placed && err.status === 409 && conflictField) {
        const f = fields.find((x) => x.name === conflictField);
        if (f) {
          f.setError(err.message);
          if (f.control) f.control.focus();
          placed = true;
        }
      }
      if (!placed) showGeneral(err.status === 403 ? `Refused: ${err.message}` : err.message);
    } finally {
      save.disabled = false;
    }
  });
  const first = fields.find((f) => f.control && !f.control.readOnly && !f.control.disabled);
  if (first) first.control.focus();
  return { dialog, form, close };
}

function byName(fields) {
  return Object.fromEntries(fields.map((f) => [f.name, f]));
}

/** The shared empty state of a list with a search: no match, or nothing yet. */
export function emptyList(state, { none, noneHint, actions = [], noMatch }) {
  if (state.search) {
    return empty(noMatch, 'Clear the search to see them all.', h('button', { type: 'button', onclick: () => state.set({ search: '', page: 1 }) }, 'Clear the search'));
  }
  return empty(none, noneHint, ...actions);
}

/** `command` as a code chip, for the hints that name a CLI command. */
export function cli(command) {
  return h('code.cli', command);
}
