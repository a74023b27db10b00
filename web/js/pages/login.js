// The login page: the same users and passwords as the REST API; on success the server sets
// the session cookie and the user goes where they were headed.

import * as api from '../api.js';
import { h } from '../dom.js';
import { startSession } from '../app.js';

export default async function render(ctx) {
  ctx.setTitle('Log in');
  const next = safeNext(ctx.query.get('next'));
  if (ctx.session) {
    ctx.navigate(next, { replace: true });
    return;
  }
  const error = h('p.form-error', { id: 'login-error', role: 'alert', hidden: true });
  const username = h('input', { id: 'username', name: 'username', autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button.primary', { type: 'submit' }, 'Log in');
  const form = h('form', { id: 'login-form', class: 'card login' },
    h('div.login-brand', h('img', { src: '/static/favicon.svg', alt: '', width: 40, height: 40 }), h('h1', 'Updraft')),
    h('label', { for: 'username' }, 'Username'), username,
    h('label', { for: 'password' }, 'Password'), password,
    error,
    submit,
    h('p.muted.small', 'Running standalone? The admin password is in .updraft/standalone_admin_password.txt and in its first log lines.'),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    error.hidden = true;
    try {
      const info = await api.post('/ui/session', { username: username.value, password: password.value });
      startSession(info);
      ctx.navigate(next, { replace: true });
    } catch (err) {
      error.textContent = err.status === 401 ? 'Wrong username or password.' : err.message;
      error.hidden = false;
      password.select();
    } finally {
      submit.disabled = false;
    }
  });
  ctx.main.appendChild(h('div.login-wrap', form));
  username.focus();
}

/** Only paths of this app, never another site. */
function safeNext(next) {
  if (!next || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/login')) return '/dags';
  return next;
}
