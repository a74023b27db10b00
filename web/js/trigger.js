// The Trigger dialog: a form made from the DAG's typed params (text, whole numbers,
// numbers, switches, selects for enums, JSON editors for lists and objects) with their
// defaults, descriptions and required marks; an optional logical date and run id; and the
// run's conf as JSON, kept in step with the form both ways. The server checks the params:
// its message shows next to the field it names, and nothing is run until it accepts.

import * as api from './api.js';
import { h, replace, path, link, timezone } from './dom.js';
import { openDialog, toast } from './dialog.js';
import { jsonEditor, jsonText } from './json_editor.js';

/**
 * Open the trigger dialog for `dagId`. After a run is made the user is taken to the DAG's
 * grid, where it shows live (or stays there, when the dialog was opened from a DAG page).
 */
export async function openTrigger(ctx, dagId) {
  const form = h('form', { id: 'trigger-form', novalidate: true, autocomplete: 'off' });
  const submit = h('button.primary', { type: 'submit', form: 'trigger-form', disabled: true, 'data-trigger-submit': '' }, '▶ Trigger');
  const cancel = h('button', { type: 'button' }, 'Cancel');
  const { dialog, close } = openDialog({
    title: `Trigger ${dagId}`,
    id: 'trigger-dialog',
    wide: true,
    body: form,
    actions: [cancel, submit],
  });
  cancel.addEventListener('click', close);
  form.append(h('p.loading', 'Loading the DAG’s params…'));

  let details;
  try {
    details = await api.get(`/api/v2/dags/${path(dagId)}/details`);
  } catch (err) {
    replace(form, h('p.form-error', { role: 'alert' }, `The DAG could not be loaded: ${err.message}`));
    return;
  }
  const trigger = buildForm(ctx, details, form, submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (submit.disabled) return;
    submit.disabled = true;
    try {
      const run = await trigger.send();
      if (!run) return;
      close();
      const runHref = `/dags/${path(dagId)}/runs/${path(run.dag_run_id)}`;
      toast(h('span', 'Triggered ', link(runHref, run.dag_run_id), ` of ${dagId}.`));
      const here = location.pathname;
      const dagHome = `/dags/${path(dagId)}`;
      if (here !== dagHome && !here.startsWith(`${dagHome}/`)) ctx.navigate(dagHome);
    } finally {
      submit.disabled = false;
    }
  });
  submit.disabled = false;
  dialog.dataset.ready = 'true';
  trigger.focusFirst();
}

/** What a param's input is: from its schema's type, else from its default's JSON type. */
function widgetOf(param) {
  const schema = param.schema || {};
  if (Array.isArray(schema.enum) && schema.enum.length) return 'enum';
  const type = schema.type || inferType(param.value);
  if (type === 'string' && typeof param.value === 'string' && param.value.includes('\n')) return 'multiline';
  return ['string', 'integer', 'number', 'boolean', 'array', 'object'].includes(type) ? type : 'json';
}

function inferType(value) {
  if (value === null || value === undefined) return 'string';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

/** Required: typed, with no default (the server refuses a run that leaves it out). */
function isRequired(param) {
  const type = param.schema && param.schema.type;
  return (param.value === null || param.value === undefined) && Boolean(type) && type !== 'null';
}

function buildForm(ctx, details, form, submit) {
  const dagId = details.dag_id;
  // The API lists params by name; the ones a run cannot do without come first.
  const params = Object.entries(details.params || {})
    .sort(([, a], [, b]) => Number(isRequired(b)) - Number(isRequired(a)));
  const fields = new Map();
  // The conf that will be sent: every param's value, plus any other key typed in the JSON.
  let conf = {};
  for (const [name, param] of params) conf[name] = param.value === undefined ? null : param.value;

  const confError = h('p.field-error', { dataset: { errorFor: 'conf' }, role: 'alert', hidden: true });
  const confEditor = jsonEditor({
    name: 'conf',
    id: 'trigger-conf',
    value: conf,
    expect: 'object',
    error: confError,
    label: 'Run configuration (JSON)',
    onChange: (value) => {
      conf = value;
      for (const [name, field] of fields) field.show(name in conf ? conf[name] : field.param.value, { fromConf: true });
    },
  });
  const syncConf = () => {
    if (document.activeElement !== confEditor.textarea) confEditor.set(conf);
  };

  const fieldChanged = (name, result) => {
    if (!result.ok) return;
    conf = { ...conf, [name]: result.value };
    syncConf();
  };

  for (const [index, [name, param]] of params.entries()) {
    fields.set(name, paramField(name, param, index, fieldChanged));
  }

  const formError = h('div.form-error.trigger-error', { id: 'trigger-error', role: 'alert', hidden: true });
  const logicalDate = h('input', { type: 'datetime-local', id: 'trigger-logical-date', name: 'logical_date', step: 1 });
  const logicalError = h('p.field-error', { dataset: { errorFor: 'logical_date' }, hidden: true });
  const runId = h('input', { type: 'text', id: 'trigger-run-id', name: 'dag_run_id', placeholder: 'manual__<logical date>', spellcheck: 'false' });
  const runIdError = h('p.field-error', { dataset: { errorFor: 'dag_run_id' }, hidden: true });
  const zone = timezone() === 'utc' ? 'UTC' : 'this browser’s time zone';

  const advanced = h('details.trigger-advanced', { id: 'trigger-advanced' },
    h('summary', 'Configuration JSON', h('span.muted.small', ' — the conf the run gets; edits here fill the form, and the form fills it')),
    confEditor.el,
    confError);
  if (!params.length) advanced.open = true;

  const pausedNote = details.is_paused
    ? h('div.banner.warn.trigger-paused', { role: 'note' },
      h('span', h('strong', `${dagId} is paused.`), ' The run is created but waits in the queue until the DAG is unpaused.'),
      ctx.can('User') ? h('label.inline-check', h('input', { type: 'checkbox', id: 'trigger-unpause', name: '__unpause' }), 'Unpause it too') : null)
    : null;

  replace(form,
    details.description ? h('p.muted.trigger-description', details.description) : null,
    pausedNote,
    params.length
      ? h('fieldset.trigger-params', h('legend', 'Params'), [...fields.values()].map((f) => f.el))
      : h('p.muted.trigger-no-params', 'This DAG declares no params. You can still give the run a conf as JSON below.'),
    h('fieldset.trigger-options', h('legend', 'Run'),
      h('div.trigger-grid',
        h('div.field',
          h('label', { for: 'trigger-logical-date' }, 'Logical date ', h('span.muted.small', `(optional, in ${zone})`)),
          logicalDate,
          h('span.hint', 'Empty: now. The date templates see as {{ ds }} and {{ logical_date }}.'),
          logicalError),
        h('div.field',
          h('label', { for: 'trigger-run-id' }, 'Run ID ', h('span.muted.small', '(optional)')),
          runId,
          h('span.hint', 'Empty: made from the logical date.'),
          runIdError))),
    advanced,
    formError,
  );

  const clearErrors = () => {
    for (const field of fields.values()) field.setError(null);
    for (const el of [confError, logicalError, runIdError, formError]) {
      el.textContent = '';
      el.hidden = true;
    }
    for (const el of [logicalDate, runId]) el.removeAttribute('aria-invalid');
    confEditor.check({ quiet: true });
  };
  const showAt = (el, input, message) => {
    el.textContent = message;
    el.hidden = false;
    if (input) input.setAttribute('aria-invalid', 'true');
  };
  const showGeneral = (message) => {
    replace(formError, h('strong', 'The run was not created. '), message);
    formError.hidden = false;
  };
  logicalDate.addEventListener('input', () => {
    logicalError.hidden = true;
    logicalDate.removeAttribute('aria-invalid');
  });
  runId.addEventListener('input', () => {
    runIdError.hidden = true;
    runId.removeAttribute('aria-invalid');
  });

  /** Put the server's refusal next to what it is about; true when it found a place. */
  const place = (err) => {
    const text = String(err.message || '');
    if (err.status === 400) {
      // "invalid conf for DAG 'x': param 'rows' must be at least 1, got 0"
      const named = /param '([^']+)'/.exec(text);
      const message = text.replace(/^invalid conf for DAG '.*?': /, '');
      if (named && fields.has(named[1])) {
        fields.get(named[1]).setError(message, { focus: true });
        return true;
      }
      if (named || /conf/.test(text)) {
        advanced.open = true;
        showAt(confError, confEditor.textarea, message);
        return true;
      }
      return false;
    }
    if (err.status === 409) {
      showAt(runIdError, runId, text);
      runId.focus();
      return true;
    }
    if (err.status === 422 && Array.isArray(err.detail)) {
      let placed = false;
      for (const item of err.detail) {
        const loc = Array.isArray(item.loc) ? item.loc : [];
        const last = loc[loc.length - 1];
        if (loc.includes('conf') && fields.has(last)) {
          fields.get(last).setError(item.msg, { focus: !placed });
        } else if (last === 'conf') {
          advanced.open = true;
          showAt(confError, confEditor.textarea, item.msg);
        } else if (last === 'logical_date') {
          showAt(logicalError, logicalDate, item.msg);
        } else if (last === 'dag_run_id') {
          showAt(runIdError, runId, item.msg);
        } else {
          continue;
        }
        placed = true;
      }
      return placed;
    }
    return false;
  };

  return {
    focusFirst() {
      const first = form.querySelector('.trigger-params input, .trigger-params select, .trigger-params textarea') || logicalDate;
      first.focus();
    },
    /** Check what can be checked here, send, and answer the new run (or null). */
    async send() {
      clearErrors();
      let firstBad = null;
      for (const [name, field] of fields) {
        const result = field.read();
        if (!result.ok) {
          field.setError(result.message);
          firstBad = firstBad || field;
          continue;
        }
        if (!field.untouched) conf = { ...conf, [name]: result.value };
        if (isRequired(field.param) && (conf[name] === null || conf[name] === undefined)) {
          field.setError(`Required: the DAG has no default for ${name}.`);
          firstBad = firstBad || field;
        }
      }
      if (!confEditor.check({ quiet: true })) {
        advanced.open = true;
        confEditor.textarea.focus();
        return null;
      }
      if (firstBad) {
        firstBad.focus();
        return null;
      }
      let logical = null;
      if (logicalDate.value) {
        logical = toInstant(logicalDate.value);
        if (!logical) {
          showAt(logicalError, logicalDate, 'Enter a date and time, or leave it empty for now.');
          logicalDate.focus();
          return null;
        }
      }
      const body = { logical_date: logical, conf };
      if (runId.value.trim()) body.dag_run_id = runId.value.trim();
      try {
        const unpause = form.querySelector('#trigger-unpause');
        const run = await api.post(`/api/v2/dags/${path(dagId)}/dagRuns`, body);
        if (unpause && unpause.checked) {
          await api.patch(`/api/v2/dags/${path(dagId)}`, { is_paused: false }).catch((err) => toast(`Not unpaused: ${err.message}`, 'error'));
        }
        return run;
      } catch (err) {
        if (!place(err)) {
          showGeneral(err.status === 403 ? 'Your role may not trigger DAGs: it takes the User role or higher.' : err.message);
        }
        return null;
      }
    },
  };
}

/** The datetime-local text as an instant, read in the zone the app shows times in. */
function toInstant(text) {
  const withSeconds = /T\d\d:\d\d$/.test(text) ? `${text}:00` : text;
  const date = new Date(timezone() === 'utc' ? `${withSeconds}Z` : withSeconds);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

/**
 * One param's field: label (with a required mark), input, description, range, and the
 * element its errors show in. `read()` answers `{ok, value}` or `{ok: false, message}`;
 * `show(value)` puts a value from the conf JSON in the input.
 */
function paramField(name, param, index, changed) {
  const id = `trigger-param-${index}`;
  const kind = widgetOf(param);
  const schema = param.schema || {};
  const required = isRequired(param);
  const error = h('p.field-error', { dataset: { errorFor: name }, role: 'alert', hidden: true });
  const note = h('p.hint.param-note', { hidden: true });
  let input;
  let editor = null;
  let read;
  let show;

  if (kind === 'enum') {
    const choices = schema.enum;
    input = h('select', { id, name },
      choices.some((c) => same(c, param.value)) ? null : h('option', { value: '' }, required ? 'Choose one…' : '(none)'),
      choices.map((choice, i) => h('option', { value: String(i), selected: same(choice, param.value) }, typeof choice === 'string' ? choice : JSON.stringify(choice))));
    read = () => ({ ok: true, value: input.value === '' ? null : choices[Number(input.value)] });
    show = (value) => {
      const at = choices.findIndex((c) => same(c, value));
      if (at < 0) return false;
      input.value = String(at);
      return true;
    };
  } else if (kind === 'boolean') {
    const box = h('input', { type: 'checkbox', id, name, checked: param.value === true, role: 'switch' });
    const word = h('span.switch-word', param.value === true ? 'true' : 'false');
    box.addEventListener('change', () => {
      word.textContent = String(box.checked);
    });
    read = () => ({ ok: true, value: box.checked });
    show = (value) => {
      if (typeof value !== 'boolean') return false;
      box.checked = value;
      word.textContent = String(value);
      return true;
    };
    input = [box, word];
  } else if (kind === 'integer' || kind === 'number') {
    // Text, not type=number: what was typed reaches the server as it is, so its message
    // (a bound, a type) is the one the user sees.
    input = h('input', {
      type: 'text',
      id,
      name,
      inputmode: kind === 'integer' ? 'numeric' : 'decimal',
      value: param.value === null || param.value === undefined ? '' : String(param.value),
      spellcheck: 'false',
    });
    read = () => {
      const text = input.value.trim();
      if (text === '') return { ok: true, value: null };
      const number = Number(text);
      return { ok: true, value: Number.isFinite(number) && /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text) ? number : text };
    };
    show = (value) => {
      input.value = value === null || value === undefined ? '' : typeof value === 'string' ? value : JSON.stringify(value);
      return value === null || typeof value === 'number' || typeof value === 'string';
    };
  } else if (kind === 'string' || kind === 'multiline') {
    const attrs = { id, name, value: param.value === null || param.value === undefined ? '' : String(param.value), spellcheck: 'false' };
    input = kind === 'multiline' ? h('textarea', { ...attrs, rows: 4 }) : h('input', { type: 'text', ...attrs });
    read = () => ({ ok: true, value: input.value === '' && (param.value === null || param.value === undefined) ? null : input.value });
    show = (value) => {
      input.value = value === null || value === undefined ? '' : typeof value === 'string' ? value : JSON.stringify(value);
      return value === null || typeof value === 'string';
    };
  } else {
    editor = jsonEditor({
      name,
      id,
      value: param.value === undefined ? null : param.value,
      expect: kind === 'array' || kind === 'object' ? kind : null,
      optional: !required && kind === 'json',
      error,
    });
    input = editor.el;
    read = () => (editor.check({ quiet: true })
      ? { ok: true, value: editor.value === undefined ? null : editor.value }
      : { ok: false, message: error.textContent });
    show = (value) => {
      editor.set(value);
      return true;
    };
  }

  const control = Array.isArray(input) ? input[0] : editor ? editor.textarea : input;
  const hints = [];
  if (param.description) hints.push(param.description);
  const range = rangeText(kind, schema);
  if (range) hints.push(range);
  const typeLabel = { enum: 'one of', integer: 'integer', number: 'number', boolean: 'boolean', array: 'list', object: 'object', string: 'text', multiline: 'text', json: 'JSON' }[kind];

  const field = {
    param,
    untouched: true,
    el: h('div.field.param-field', { dataset: { param: name, kind } },
      h('div.param-label',
        h('label', { for: id },
          h('span.param-name', name),
          required ? h('abbr.required', { title: 'required' }, '*') : null),
        h('span.param-type', typeLabel)),
      h('div.param-control',
        Array.isArray(input)
          ? h('div.switch-row', h('label.switch', input[0], h('span')), input[1])
          : input,
        hints.length ? h('span.hint', hints.join(' · ')) : null,
        note,
        error)),
    read,
    show(value, { fromConf = false } = {}) {
      const fits = show(value);
      field.untouched = true;
      note.hidden = fits || !fromConf;
      note.textContent = fits ? '' : `The configuration JSON sets this to ${JSON.stringify(value)}, which this input cannot show; that value is sent.`;
      field.setError(null);
    },
    setError(message, { focus = false } = {}) {
      if (message) {
        error.textContent = message;
        error.hidden = false;
        control.setAttribute('aria-invalid', 'true');
        if (focus) field.focus();
      } else if (!editor) {
        error.textContent = '';
        error.hidden = true;
        control.removeAttribute('aria-invalid');
      } else {
        editor.check({ quiet: true });
      }
    },
    focus() {
      control.focus();
      field.el.scrollIntoView({ block: 'nearest' });
    },
  };
  const onEdit = () => {
    field.untouched = false;
    note.hidden = true;
    const result = read();
    if (!editor) {
      error.hidden = true;
      control.removeAttribute('aria-invalid');
    }
    changed(name, result);
  };
  control.addEventListener(kind === 'enum' || kind === 'boolean' ? 'change' : 'input', onEdit);
  return field;
}

function rangeText(kind, schema) {
  const { minimum: min, maximum: max } = schema;
  const has = (v) => v !== null && v !== undefined;
  const what = kind === 'integer' ? 'a whole number' : 'a number';
  if (has(min) && has(max)) return `${what} from ${min} to ${max}`;
  if (has(min)) return `${what}, at least ${min}`;
  if (has(max)) return `${what}, at most ${max}`;
  if (kind === 'integer') return 'a whole number';
  return null;
}

function same(a, b) {
  return jsonText(a) === jsonText(b);
}
