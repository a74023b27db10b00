// The DAG page's code tab: the DAG file as the server reads it now, with line numbers and
// highlighting (`highlight.js`), its path and version, and a copy button.

import * as api from '../api.js';
import { h, replace, path, empty } from '../dom.js';
import { toast } from '../dialog.js';
import { highlight, languageOf } from './highlight.js';

export default async function render(ctx, page) {
  const { dagId, dag, body } = page;
  const code = await api.get(`/ui/dags/${path(dagId)}/code`, null, { signal: ctx.signal });
  if (code.content === null || code.content === undefined) {
    replace(body, empty('The DAG file cannot be shown', code.error || 'The server could not read it.'));
    return;
  }
  const language = languageOf(code.fileloc);
  const lines = highlight(code.content.replace(/\n$/, ''), language);
  const gutter = lines.map((_, i) => String(i + 1)).join('\n');
  const text = h('code', { class: `language-${language}` });
  const fragment = document.createDocumentFragment();
  lines.forEach((tokens, i) => {
    if (i) fragment.appendChild(document.createTextNode('\n'));
    for (const [kind, part] of tokens) {
      if (kind) {
        const span = document.createElement('span');
        span.className = `tok-${kind}`;
        span.textContent = part;
        fragment.appendChild(span);
      } else {
        fragment.appendChild(document.createTextNode(part));
      }
    }
  });
  text.appendChild(fragment);
  const copy = h('button.small', { type: 'button', id: 'code-copy' }, 'Copy');
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(code.content);
      toast('Copied the DAG file');
    } catch {
      toast('This browser did not allow copying', 'error');
    }
  });
  replace(body,
    h('div.dag-code-head',
      h('span.mono', { id: 'code-file' }, code.fileloc),
      h('span.muted.small', `${lines.length} line${lines.length === 1 ? '' : 's'} · ${language.toUpperCase()}`),
      h('span.muted.small', { title: dag.file_token }, `version ${dag.file_token.slice(0, 12)}`),
      h('div.dag-fill'),
      copy),
    h('div.dag-code-view', { id: 'dag-code' },
      h('pre.dag-code-gutter', { 'aria-hidden': 'true' }, gutter),
      h('pre.dag-code-text', text)));
}
