// The client of cnet's REST API (api/openapi.yaml): the bearer token kept in
// sessionStorage, JSON requests whose failures become ApiError with a message
// a person can act on, the job event stream (Server-Sent Events read with
// fetch, because EventSource cannot send an Authorization header), dataset
// upload with progress, authenticated downloads, and which routes the server
// offers (read from the OpenAPI document it serves).
// Not here: rendering (ui.js and the views).

const TOKEN_KEY = 'cnet.token';
const SSE_RETRY_MS = 2000; // wait before reconnecting a dropped event stream

export function token() { return sessionStorage.getItem(TOKEN_KEY); }
export function setToken(t) { sessionStorage.setItem(TOKEN_KEY, t); }
export function clearToken() { sessionStorage.removeItem(TOKEN_KEY); }

// Views listen for this to ask for the token again (401/403).
export const authEvents = new EventTarget();

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || null;
  }
}

// What a person should read for a failed request: the server's own message
// (it names the field and the limit) with the status explained.
function explain(status, code, message, retryAfter) {
  switch (status) {
  case 401: return 'Sign in with the API token to continue.';
  case 403: return 'The server did not accept this token. Sign in again.';
  case 413: return `Too large: ${message}`;
  case 429: return `The job queue is full. Try again in ${retryAfter || 'a few'} seconds.`;
  case 507: return `The server is out of disk space: ${message}`;
  case 503: return `The server is busy or not ready: ${message}`;
  default: return message || `The server answered ${status}${code ? ` (${code})` : ''}.`;
  }
}

async function failure(resp) {
  let code = '', message = '', field = null;
  const text = await resp.text();
  try {
    const e = JSON.parse(text).error || {};
    code = e.code || '';
    message = e.message || '';
    field = e.field || null;
  } catch {
    message = text.slice(0, 200);
  }
  const err = new ApiError(resp.status, code,
                           explain(resp.status, code, message, resp.headers.get('Retry-After')), field);
  if (resp.status === 401 || resp.status === 403) authEvents.dispatchEvent(new Event('auth'));
  return err;
}

function headers(extra) {
  const h = new Headers(extra || {});
  const t = token();
  if (t) h.set('Authorization', `Bearer ${t}`);
  return h;
}

async function send(path, opts) {
  try {
    return await fetch(path, opts);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'Cannot reach the cnet server. Is it running?');
  }
}

// A JSON request; resolves to the parsed body, rejects with ApiError.
export async function api(path, { method = 'GET', body, headers: extra, signal } = {}) {
  const h = headers(extra);
  if (body !== undefined) h.set('Content-Type', 'application/json');
  const resp = await send(path, {
    method, headers: h, signal, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!resp.ok) throw await failure(resp);
  return resp.status === 204 ? null : resp.json();
}

// A file from the API as a Blob (artifacts, generated images).
export async function apiBlob(path, { method = 'GET', body, accept, signal } = {}) {
  const h = headers(accept ? { Accept: accept } : {});
  if (body !== undefined) h.set('Content-Type', 'application/json');
  const resp = await send(path, {
    method, headers: h, signal, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!resp.ok) throw await failure(resp);
  return { blob: await resp.blob(), headers: resp.headers };
}

// Public probes (no token): liveness and readiness.
export async function health() {
  const resp = await send('/readyz', {});
  const body = await resp.json().catch(() => ({}));
  return { ready: resp.ok, message: body.error ? body.error.message : '', checks: body.checks };
}

// One value of a YAML flow map: a number, a quoted or bare string, a list.
function flowValue(v) {
  v = v.trim();
  if (v.startsWith('[')) return splitFlow(v.slice(1, -1)).map(flowValue);
  if (v.startsWith("'")) return v.slice(1, -1).replace(/''/g, "'");
  if (v.startsWith('"')) return JSON.parse(v);
  if (v === 'true' || v === 'false') return v === 'true';
  return v !== '' && Number.isFinite(Number(v)) ? Number(v) : v;
}

// Splits "a: 1, b: [x, y], c: 'p, q'" at its top-level commas.
function splitFlow(text) {
  const parts = [];
  let depth = 0, quote = '', start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) { if (c === quote) quote = ''; continue; }
    if (c === "'" || c === '"') quote = c;
    else if (c === '[' || c === '{') depth++;
    else if (c === ']' || c === '}') depth--;
    else if (c === ',' && !depth) { parts.push(text.slice(start, i)); start = i + 1; }
  }
  if (text.slice(start).trim()) parts.push(text.slice(start));
  return parts;
}

// The served OpenAPI document, read once: the "/path" keys (the routes this
// server has) and each schema's one-line properties ({type, minimum,
// maximum, multipleOf, default, enum, ...}) — the option tables the server
// validates against (api/api_generate.c, api/api_train.c; a test keeps the
// document equal to them), so the forms show the server's limits and
// defaults instead of copies.
let docPromise = null;
function openapi() {
  if (!docPromise) {
    docPromise = (async () => {
      const resp = await send('/v1/openapi.yaml', { headers: headers() });
      if (!resp.ok) throw await failure(resp);
      const text = await resp.text();
      const paths = new Set(), schemas = {};
      let section = '', schema = null;
      for (const line of text.split('\n')) {
        if (/^\S/.test(line)) section = line.replace(/:.*/, '');
        const m = section === 'paths' && /^ {2}(\/[^:]*):\s*$/.exec(line);
        if (m) paths.add(m[1]);
        const s = section === 'components' && /^ {4}(\w+):\s*$/.exec(line);
        if (s) schemas[schema = s[1]] = {};
        const f = schema && /^ {8}(\w+): \{(.*)\}\s*$/.exec(line);
        if (f) {
          const props = {};
          for (const part of splitFlow(f[2])) {
            const colon = part.indexOf(':');
            props[part.slice(0, colon).trim()] = flowValue(part.slice(colon + 1));
          }
          schemas[schema][f[1]] = props;
        }
      }
      return { paths, schemas };
    })();
    docPromise.catch(() => { docPromise = null; });
  }
  return docPromise;
}

// The routes this server has.
export async function routes() {
  return (await openapi()).paths;
}

// The properties of schema `name` (GenerateSpec, TrainSpec), by member.
export async function schema(name) {
  return (await openapi()).schemas[name] || {};
}

// A number input's limits from a schema property: min, max, step, and
// whether an end is itself refused (exclusiveMinimum/exclusiveMaximum).
export function limits(prop = {}) {
  return {
    min: prop.minimum ?? prop.exclusiveMinimum, max: prop.maximum ?? prop.exclusiveMaximum,
    minOpen: prop.exclusiveMinimum !== undefined, maxOpen: prop.exclusiveMaximum !== undefined,
    step: prop.multipleOf,
  };
}

// The range of limits() as a hint: "1–64" when both ends are allowed, else
// interval notation, "(0, 1]" (the server refuses 0) or "[0, 1)".
export function rangeText({ min, max, minOpen, maxOpen }) {
  if (!minOpen && !maxOpen) return `${min}–${max}`;
  return `${minOpen ? '(' : '['}${min}, ${max}${maxOpen ? ')' : ']'}`;
}

// Parses one SSE block ("id:", "event:", "data:" lines; ":" comments).
function parseBlock(block) {
  const ev = { id: null, event: 'message', data: [] };
  for (const line of block.split('\n')) {
    if (!line || line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const key = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
    if (key === 'id') ev.id = value;
    else if (key === 'event') ev.event = value;
    else if (key === 'data') ev.data.push(value);
  }
  return ev.data.length ? { id: ev.id, type: ev.event, data: ev.data.join('\n') } : null;
}

// Follows GET /v1/jobs/{id}/events from the first event, calling onEvent({id,
// type, data}) for each; reconnects with Last-Event-ID after a drop. Resolves
// when the server ends the stream (the job is terminal) or signal aborts.
export async function followEvents(id, onEvent, signal, onStatus = () => {}) {
  let last = '0';
  while (!signal.aborted) {
    try {
      const h = headers({ Accept: 'text/event-stream', 'Last-Event-ID': last });
      const resp = await fetch(`/v1/jobs/${encodeURIComponent(id)}/events`, { headers: h, signal });
      if (!resp.ok) throw await failure(resp);
      onStatus('live');
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += value.replace(/\r\n?/g, '\n');
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const ev = parseBlock(buf.slice(0, end));
          buf = buf.slice(end + 2);
          if (!ev) continue;
          if (ev.id) last = ev.id;
          let data;
          try { data = JSON.parse(ev.data); } catch { data = ev.data; }
          onEvent({ id: ev.id, type: ev.type, data });
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof ApiError && e.status >= 400 && e.status < 500) throw e;
      onStatus('reconnecting');
      await new Promise((r) => setTimeout(r, SSE_RETRY_MS));
    }
  }
}

// POST /v1/datasets with the file as the raw body; XMLHttpRequest because
// fetch reports no upload progress. onProgress(fraction in 0..1).
export function uploadDataset(file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/v1/datasets?name=${encodeURIComponent(file.name)}`);
    const t = token();
    if (t) xhr.setRequestHeader('Authorization', `Bearer ${t}`);
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onerror = () => reject(new ApiError(0, 'network', 'The upload was cut off. Is the server running?'));
    xhr.onload = async () => {
      const resp = new Response(xhr.responseText, {
        status: xhr.status,
        headers: { 'Retry-After': xhr.getResponseHeader('Retry-After') || '' },
      });
      if (xhr.status >= 200 && xhr.status < 300) resolve(await resp.json());
      else reject(await failure(resp));
    };
    xhr.send(file);
  });
}
