// Talking to the server: `/api/v2` and `/ui/` with the session cookie, the CSRF header on
// every request that changes something, and the server's `{"detail"}` turned into one error.

let csrf = { header: 'x-csrf-token', token: '' };

/** Remember the session's CSRF value (from `GET /ui/session` or the login answer). */
export function setCsrf(header, token) {
  csrf = { header, token };
}

/** An answer that was not 2xx: its status, its message, and for 422s the field it names. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(message(status, detail));
    this.status = status;
    this.detail = detail;
  }

  /** For a validation error, the message about `field` (the last part of `loc`). */
  fieldMessage(field) {
    if (!Array.isArray(this.detail)) return null;
    const hit = this.detail.find((d) => Array.isArray(d.loc) && d.loc[d.loc.length - 1] === field);
    return hit ? hit.msg : null;
  }
}

function message(status, detail) {
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc || []).filter((p) => p !== 'body').join('.') || 'request'}: ${d.msg}`).join('; ');
  }
  if (detail && typeof detail === 'object') return JSON.stringify(detail);
  return `HTTP ${status}`;
}

let onUnauthorized = () => {};

/** What to do when the session is gone (the app sends the user to the login page). */
export function whenUnauthorized(fn) {
  onUnauthorized = fn;
}

function url(target, query) {
  const u = new URL(target, location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === '') continue;
    for (const v of Array.isArray(value) ? value : [value]) u.searchParams.append(key, v);
  }
  return u.pathname + u.search;
}

/** One request; JSON in and out. */
export async function request(method, target, { query, body, signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD') headers[csrf.header] = csrf.token;
  let response;
  try {
    response = await fetch(url(target, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      signal,
    });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'The server cannot be reached. Is Updraft running?');
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    if (response.status === 401 && !target.startsWith('/ui/session')) onUnauthorized();
    throw new ApiError(response.status, data && typeof data === 'object' && 'detail' in data ? data.detail : data);
  }
  return data;
}

export const get = (target, query, opts) => request('GET', target, { ...opts, query });
export const post = (target, body, opts) => request('POST', target, { ...opts, body });
export const patch = (target, body, opts) => request('PATCH', target, { ...opts, body });
export const del = (target, opts) => request('DELETE', target, opts);

/** Every item of a paged `/api/v2` listing (`key` names the list), 100 at a time. */
export async function all(target, key, query = {}) {
  const items = [];
  for (let offset = 0; ; offset += 100) {
    const page = await get(target, { ...query, limit: 100, offset });
    items.push(...page[key]);
    if (page[key].length < 100 || items.length >= page.total_entries) return items;
  }
}
