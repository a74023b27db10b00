// Syntax highlighting for the code tab, by small tokenizers of our own for YAML, JSON and
// Python: text in, lines of `[kind, text]` tokens out (kind null for plain text), which the
// page turns into spans with `h`, so the file's text is only ever text. The kinds: key, str,
// num, lit (true/false/null), kw, com, fn, dec, tpl ({{ templates }}), punc.

/** The language of a file, by its name. */
export function languageOf(fileloc) {
  const name = (fileloc || '').toLowerCase();
  if (name.endsWith('.yaml') || name.endsWith('.yml')) return 'yaml';
  if (name.endsWith('.json')) return 'json';
  if (name.endsWith('.py')) return 'python';
  return 'text';
}

/** `text` as lines of tokens. */
export function highlight(text, language) {
  const tokens = language === 'yaml' ? yaml(text)
    : language === 'json' ? json(text)
      : language === 'python' ? python(text)
        : [[null, text]];
  return toLines(tokens);
}

/** Split tokens at newlines, so each line can be numbered. */
function toLines(tokens) {
  const lines = [[]];
  for (const [kind, text] of tokens) {
    const parts = text.split('\n');
    parts.forEach((part, i) => {
      if (i) lines.push([]);
      if (part) lines[lines.length - 1].push([kind, part]);
    });
  }
  return lines;
}

/** Tokens of a string's text, with `{{ … }}` templates set apart. */
function withTemplates(kind, text, out) {
  const re = /\{\{.*?\}\}|\{%.*?%\}/g;
  let last = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m.index > last) out.push([kind, text.slice(last, m.index)]);
    out.push(['tpl', m[0]]);
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push([kind, text.slice(last)]);
}

// ---- YAML ----------------------------------------------------------------------------------

const YAML_LITERAL = /^(true|false|null|yes|no|on|off|~|True|False|Null|NULL|TRUE|FALSE)$/;
const NUMBER = /^[-+]?(\d[\d_]*(\.\d*)?|\.\d+)([eE][-+]?\d+)?$|^0x[\da-fA-F]+$|^0o[0-7]+$/;

function yaml(text) {
  const out = [];
  let block = null; // the indent of a block scalar's key, while inside it
  for (const [i, line] of text.split('\n').entries()) {
    if (i) out.push([null, '\n']);
    const indent = line.match(/^ */)[0].length;
    if (block !== null) {
      if (!line.trim() || indent > block) {
        withTemplates('str', line, out);
        continue;
      }
      block = null;
    }
    if (/^\s*#/.test(line)) {
      out.push(['com', line]);
      continue;
    }
    if (/^(---|\.\.\.)\s*$/.test(line)) {
      out.push(['kw', line]);
      continue;
    }
    let rest = line;
    const lead = rest.match(/^(\s*)((?:-\s+)*)/);
    if (lead[1]) out.push([null, lead[1]]);
    if (lead[2]) out.push(['punc', lead[2]]);
    rest = rest.slice(lead[0].length);
    const key = rest.match(/^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s#'"{}[\],&*!|>][^#]*?)(\s*:)(?=\s|$)/);
    if (key) {
      out.push(['key', key[1]]);
      out.push(['punc', key[2]]);
      rest = rest.slice(key[0].length);
    }
    if (/^\s*[|>][-+0-9]*\s*(#.*)?$/.test(rest)) {
      const m = rest.match(/^(\s*)([|>][-+0-9]*)(\s*)(#.*)?$/);
      out.push([null, m[1]], ['punc', m[2]], [null, m[3]]);
      if (m[4]) out.push(['com', m[4]]);
      // Its text is what is indented deeper than the key (or the dash) that opened it.
      block = key ? indent + lead[2].length : indent;
      continue;
    }
    yamlValue(rest, out);
  }
  return out;
}

/** A value on one line: flow collections, quoted and plain scalars, comments. */
function yamlValue(text, out) {
  const re = /(\s+)|(#.*$)|("(?:[^"\\]|\\.)*"?|'(?:[^']|'')*'?)|([[\]{},])|([&*][^\s,[\]{}]+)|(![^\s]*)|([^\s,[\]{}#:'"][^,[\]{}]*?(?=\s*(?:[,[\]{}]|:\s|:$|\s#|$)))|(:)|(.)/gy;
  for (let m = re.exec(text); m && m[0]; m = re.exec(text)) {
    const [all, space, comment, quoted, punc, anchor, tag, plain, colon] = m;
    if (space) {
      out.push([null, space]);
    } else if (comment) {
      out.push(['com', comment]);
    } else if (quoted) {
      const isKey = /^\s*:(\s|$)/.test(text.slice(re.lastIndex));
      if (isKey) out.push(['key', quoted]);
      else withTemplates('str', quoted, out);
    } else if (punc || colon) {
      out.push(['punc', all]);
    } else if (anchor) {
      out.push(['lit', anchor]);
    } else if (tag) {
      out.push(['kw', tag]);
    } else if (plain) {
      const after = text.slice(re.lastIndex);
      if (/^\s*:(\s|$)/.test(after)) out.push(['key', plain]);
      else if (YAML_LITERAL.test(plain)) out.push(['lit', plain]);
      else if (NUMBER.test(plain)) out.push(['num', plain]);
      else withTemplates(null, plain, out);
    } else {
      out.push([null, all]);
    }
  }
}

// ---- JSON ----------------------------------------------------------------------------------

function json(text) {
  const out = [];
  const re = /(\s+)|("(?:[^"\\\n]|\\.)*"?)|(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|(true|false|null)\b|([{}[\],:])|(.)/gy;
  for (let m = re.exec(text); m && m[0]; m = re.exec(text)) {
    const [all, space, string, number, literal, punc] = m;
    if (space) out.push([null, space]);
    else if (string) {
      if (/^\s*:/.test(text.slice(re.lastIndex))) out.push(['key', string]);
      else withTemplates('str', string, out);
    } else if (number) out.push(['num', number]);
    else if (literal) out.push(['lit', literal]);
    else if (punc) out.push(['punc', punc]);
    else out.push([null, all]);
  }
  return out;
}

// ---- Python --------------------------------------------------------------------------------

const KEYWORDS = new Set(['and', 'as', 'assert', 'async', 'await', 'break', 'class', 'continue', 'def', 'del', 'elif', 'else', 'except', 'finally', 'for', 'from', 'global', 'if', 'import', 'in', 'is', 'lambda', 'nonlocal', 'not', 'or', 'pass', 'raise', 'return', 'try', 'while', 'with', 'yield', 'match', 'case']);
const CONSTANTS = new Set(['True', 'False', 'None']);
const BUILTINS = new Set(['print', 'len', 'range', 'open', 'int', 'str', 'float', 'dict', 'list', 'set', 'tuple', 'bool', 'enumerate', 'zip', 'map', 'filter', 'sorted', 'sum', 'min', 'max', 'abs', 'isinstance', 'super', 'self', 'type', 'repr', 'any', 'all']);

function python(text) {
  const out = [];
  const re = /(\s+)|(#[^\n]*)|((?:[rRbBuUfF]{1,2})?(?:"""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$)|"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?))|(@[A-Za-z_][\w.]*)|(\d[\d_]*(?:\.\d*)?(?:[eE][-+]?\d+)?j?|0[xXoObB][\da-fA-F_]+)|([A-Za-z_]\w*)|([()[\]{}:,.;=+\-*/%<>!&|^~@]+)|(.)/gy;
  let previous = '';
  for (let m = re.exec(text); m && m[0]; m = re.exec(text)) {
    const [all, space, comment, string, decorator, number, word, punc] = m;
    if (space) {
      out.push([null, space]);
      continue;
    }
    if (comment) out.push(['com', comment]);
    else if (string) withTemplates('str', string, out);
    else if (decorator) out.push(['dec', decorator]);
    else if (number) out.push(['num', number]);
    else if (word) {
      if (previous === 'def' || previous === 'class') out.push(['fn', word]);
      else if (KEYWORDS.has(word)) out.push(['kw', word]);
      else if (CONSTANTS.has(word)) out.push(['lit', word]);
      else if (BUILTINS.has(word)) out.push(['fn', word]);
      else out.push([null, word]);
    } else if (punc) out.push(['punc', punc]);
    else out.push([null, all]);
    previous = word || '';
  }
  return out;
}
