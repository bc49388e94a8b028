// Small DOM helpers shared by the views: an element builder that only ever
// sets text (never innerHTML, so server data cannot inject markup), number
// and time formatting, the state badge and progress bar, and error notices.
// Not here: any request (api.js) or view logic.

// h('a', {href: '#/jobs', class: 'x'}, 'text', child, ...) → HTMLElement.
// Attributes starting with "on" become listeners; null/false ones are skipped.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

export function fmtDuration(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return '—';
  s = Math.max(0, Math.round(s));
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  return hh ? `${hh} h ${mm} min` : mm ? `${mm} min ${ss} s` : `${ss} s`;
}

export function fmtBytes(n) {
  if (!Number.isFinite(n)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) n /= 1024, i++;
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

export function fmtNumber(x) {
  if (typeof x !== 'number' || !Number.isFinite(x)) return '—';
  return Math.abs(x) >= 1e-3 && Math.abs(x) < 1e4 ? String(Number(x.toPrecision(4))) : x.toExponential(2);
}

export function stateBadge(state, cancelRequested) {
  const label = cancelRequested && (state === 'running' || state === 'queued') ? `${state} (cancelling)` : state;
  return h('span', { class: `badge state-${state}`, 'data-state': state }, label);
}

// A <progress> with its text, for a job's {step, total} (or nothing yet).
export function progressBar(job) {
  const p = job.progress;
  if (p && p.phase === 'download') { // a job pulling its hf:// models first
    const mb = (b) => (b / 1e6).toFixed(1);
    const text = `downloading ${p.file}: ${mb(p.done_bytes)} of ${mb(p.total_bytes)} MB`;
    return h('span', { class: 'progress' },
      h('progress', { max: p.total_bytes || 1, value: p.done_bytes || 0, 'aria-label': text }),
      h('span', { class: 'progress-text' }, text));
  }
  if (!p || !p.total) {
    const text = job.state === 'succeeded' ? 'done' : 'not started';
    return h('span', { class: 'muted' }, text);
  }
  const pct = Math.min(100, Math.round((100 * p.step) / p.total));
  return h('span', { class: 'progress' },
    h('progress', { max: p.total, value: p.step, 'aria-label': `step ${p.step} of ${p.total}` }),
    h('span', { class: 'progress-text' }, `${p.step}/${p.total} (${pct}%)`));
}

// A notice for an error (ApiError or any Error), with role=alert.
export function errorNotice(err) {
  return h('p', { class: 'notice error', role: 'alert' }, err && err.message ? err.message : String(err));
}

export function notice(text, kind = 'info') {
  return h('p', { class: `notice ${kind}`, role: 'status' }, text);
}

// A <dl> from [label, value] pairs (values may be nodes); skips undefined values.
export function facts(pairs) {
  return h('dl', { class: 'facts' },
    pairs.filter(([, v]) => v !== undefined).flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? '—')]));
}

// Marks the input named by an API error's field, and clears earlier marks.
export function markField(form, err) {
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  for (const el of form.querySelectorAll('.field-error')) el.remove();
  if (!err || !err.field) return;
  const name = err.field.replace(/\[\d+\]$/, '');
  const input = form.elements.namedItem(name);
  if (!input || !input.setAttribute) return;
  input.setAttribute('aria-invalid', 'true');
  const msg = h('span', { class: 'field-error', id: `${name}-error` }, err.message);
  input.setAttribute('aria-describedby', msg.id);
  input.after(msg);
  input.focus();
}

// Saves a Blob under a file name through a temporary object URL.
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}
