// Import errors (`/import-errors`): every DAG file that failed to parse, with where
// (`file:line:col`) and why, as monospaced text exactly as the parser said it, and when it
// was seen; "All DAG files imported" when there are none. Reloads when the event stream
// says it missed something.

import * as api from '../api.js';
import { h, replace, time, relative, coalesce, empty } from '../dom.js';
import { listState, searchBox, pager, emptyList, cli, PAGE_SIZE } from '../admin_form.js';

export default async function render(ctx) {
  ctx.setTitle('Import errors');
  const state = listState(ctx, '/import-errors', { order: 'filename' });
  const search = searchBox(ctx, state, { id: 'import-error-search', placeholder: 'Search file names' });
  const count = h('span.count-badge', { hidden: true });
  const body = h('div', { id: 'import-error-list' });
  ctx.main.append(
    h('div.page-head',
      h('div.grow',
        h('h1', 'Import errors ', count),
        h('p.muted.subtitle', 'DAG files that could not be read. Fix the file and save: it is read again within seconds. ', cli('dagctl dags validate'), ' checks every file locally.'))),
    h('div.toolbar', search),
    body);

  const load = coalesce(async () => {
    search.value = state.search;
    const list = await api.get('/api/v2/importErrors', {
      limit: PAGE_SIZE,
      offset: state.offset,
      order_by: state.order,
      filename_pattern: state.search ? `%${state.search}%` : undefined,
    }, { signal: ctx.signal });
    count.hidden = !list.total_entries || Boolean(state.search);
    count.textContent = String(list.total_entries);
    if (!list.import_errors.length) {
      replace(body, state.search
        ? emptyList(state, { noMatch: `No failing file matches “${state.search}”` })
        : h('div.all-imported', empty('All DAG files imported',
          h('span', 'Every file in the DAGs folder parsed. When one fails, it shows here with the line and column of the problem.'),
          h('a.button', { href: '/dags' }, 'Go to the DAG list'))));
      return;
    }
    replace(body, list.import_errors.map(errorCard), pager(list.total_entries, state, 'file'));
  });
  state.reload = load;
  ctx.onEvent((event) => {
    if (event.type === 'resync') load();
  });
  await load();
}

/** `dags/x.yaml:3:7: message` lines give the places; the text shows as the parser wrote it. */
function errorCard(error) {
  const places = [];
  for (const line of error.stack_trace.split('\n')) {
    const m = /^(.+?):(\d+):(\d+): /.exec(line);
    if (m && !places.some((p) => p.text === `${m[1]}:${m[2]}:${m[3]}`)) places.push({ text: `${m[1]}:${m[2]}:${m[3]}`, file: m[1], line: m[2], col: m[3] });
  }
  // The heading is the first place (`file:line:col`, the position in red); more places,
  // when the parser gave several, follow as chips.
  const [first, ...more] = places;
  const file = first ? first.file : error.filename;
  return h('article.card.import-error', { dataset: { file: error.filename, id: error.import_error_id } },
    h('header.import-error-head',
      h('span.file-icon', { 'aria-hidden': 'true' }, '⚠'),
      h('h2.import-file', { title: first ? `${file}, line ${first.line}, column ${first.col}` : file },
        h('code', file, first ? h('span.loc', `:${first.line}:${first.col}`) : null)),
      more.length ? h('span.places', more.map((p) => h('code.place', p.text))) : null,
      h('span.grow'),
      h('span.when.muted.small', time(error.timestamp), ' · ', relative(error.timestamp))),
    h('pre.block.import-message', error.stack_trace));
}
