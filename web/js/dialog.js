// Dialogs (the native <dialog>, so focus and Escape behave) and toasts, shared by every page.

import { h } from './dom.js';

/**
 * Open a modal dialog. `body` is a node; `actions` are buttons made by the caller. Returns
 * `{dialog, close}`; the dialog removes itself when closed.
 */
export function openDialog({ title, body, actions = [], id, wide = false }) {
  const close = () => dialog.close();
  const dialog = h('dialog', { id, class: wide ? 'wide' : null, 'aria-label': title },
    h('header', h('h2', title), h('button.ghost.close', { type: 'button', 'aria-label': 'Close', onclick: close }, '×')),
    h('div.dialog-body', body),
    actions.length ? h('footer', actions) : null,
  );
  dialog.addEventListener('close', () => dialog.remove());
  document.body.appendChild(dialog);
  dialog.showModal();
  return { dialog, close };
}

/** Ask before something that cannot be undone; resolves true if confirmed. */
export function confirmDialog(title, text, { confirm = 'Confirm', danger = false, details = null } = {}) {
  return new Promise((resolve) => {
    let answered = false;
    const yes = h(`button.${danger ? 'danger' : 'primary'}`, { type: 'button', 'data-confirm': '' }, confirm);
    const no = h('button', { type: 'button' }, 'Cancel');
    const { dialog, close } = openDialog({ title, body: [h('p', text), details], actions: [no, yes] });
    yes.addEventListener('click', () => {
      answered = true;
      resolve(true);
      close();
    });
    no.addEventListener('click', close);
    dialog.addEventListener('close', () => {
      if (!answered) resolve(false);
    });
    yes.focus();
  });
}

/** A short message in the corner: 'ok', 'error' or 'info'. */
export function toast(text, kind = 'ok') {
  const box = document.getElementById('toasts');
  if (!box) return;
  const item = h('div.toast', { dataset: { kind } }, text);
  box.appendChild(item);
  setTimeout(() => item.remove(), kind === 'error' ? 8000 : 4000);
}
