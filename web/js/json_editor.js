// A JSON text editor: a monospaced textarea checked as you type, which says where the text
// stops being JSON (line and column) or that it has the wrong shape (an object, a list),
// and can re-indent what was typed. Used for list and object params, the trigger's raw
// conf and a connection's extra.

import { h } from './dom.js';

/** Pretty JSON text of `value` ('' for undefined). */
export function jsonText(value) {
  return value === undefined ? '' : JSON.stringify(value, null, 2);
}

/**
 * Parse `text` as JSON: `{ok: true, value}` or `{ok: false, message}`, the message naming the
 * line and column where it went wrong.
 */
export function parseJson(text) {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return { ok: false, message: describe(err, text) };
  }
}

function describe(err, text) {
  const raw = String(err.message || err).replace(/^JSON\.parse: /, '');
  const at = /at position (\d+)/.exec(raw);
  // Chromium says "… in JSON at position 12 (line 2 column 5)"; others only the position.
  const reason = raw.replace(/\s*in JSON at position \d+.*$/, '').replace(/\s*\(line \d+ column \d+\)$/, '');
  if (!at) return `Not valid JSON: ${reason}`;
  const before = text.slice(0, Number(at[1]));
  const line = before.split('\n').length;
  const column = before.length - before.lastIndexOf('\n');
  return `Not valid JSON at line ${line}, column ${column}: ${reason}`;
}

const SHAPES = {
  object: ['a JSON object, like {"key": "value"}', (v) => v !== null && typeof v === 'object' && !Array.isArray(v)],
  array: ['a JSON list, like ["a", "b"]', (v) => Array.isArray(v)],
};

/**
 * A textarea holding JSON. `expect` ('object', 'array' or null for any JSON) is the shape the
 * text must have; `optional` lets it be empty (its value is then `undefined`); `onChange`
 * hears every valid edit's value; `error` is the element that shows what is wrong (one is
 * made if not given). Returns `{el, textarea, valid, value, set(value), check()}`.
 */
export function jsonEditor({ name, id, value, expect = null, optional = false, rows, error, onChange, label } = {}) {
  const textarea = h('textarea.json-editor', {
    name,
    id,
    spellcheck: 'false',
    autocomplete: 'off',
    autocapitalize: 'off',
    'aria-label': label,
  });
  const status = error || h('p.field-error', { role: 'status' });
  const editor = {
    el: null,
    textarea,
    valid: true,
    value,
    /** Show `next` as pretty JSON, without telling `onChange`. */
    set(next) {
      textarea.value = jsonText(next);
      fit();
      editor.check({ quiet: true });
    },
    /** Check the text now; shows and returns whether it is valid. */
    check({ quiet = false } = {}) {
      const text = textarea.value;
      let problem = null;
      let parsed;
      if (!text.trim()) {
        if (!optional) problem = expect ? `Enter ${SHAPES[expect][0]}.` : 'Enter a JSON value.';
      } else {
        const result = parseJson(text);
        if (!result.ok) problem = result.message;
        else if (expect && !SHAPES[expect][1](result.value)) problem = `Must be ${SHAPES[expect][0]}.`;
        else parsed = result.value;
      }
      editor.valid = !problem;
      textarea.setAttribute('aria-invalid', String(!editor.valid));
      textarea.classList.toggle('invalid', !editor.valid);
      status.textContent = problem || '';
      status.hidden = !problem;
      if (editor.valid) {
        editor.value = parsed;
        if (!quiet && onChange) onChange(parsed);
      }
      return editor.valid;
    },
  };
  const format = h('button.ghost.small.json-format', {
    type: 'button',
    title: 'Re-indent the JSON',
    onclick: () => {
      if (editor.check({ quiet: true }) && editor.value !== undefined) textarea.value = jsonText(editor.value);
      fit();
    },
  }, 'Format');
  const fit = () => {
    const lines = textarea.value.split('\n').length;
    textarea.rows = rows || Math.min(14, Math.max(3, lines));
  };
  textarea.addEventListener('input', () => {
    editor.check();
  });
  textarea.addEventListener('blur', fit);
  textarea.value = jsonText(value);
  fit();
  editor.el = h('div.json-field', textarea, h('div.json-tools', format), error ? null : status);
  editor.check({ quiet: true });
  return editor;
}
