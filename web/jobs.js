// The job list (GET /v1/jobs): filters by state and kind kept in the URL,
// cursor pagination (Older follows next_cursor; Newer goes back through the
// cursors seen), and a refresh every few seconds while the list is on screen.
// Not here: one job's page (job.js).
import { api } from './api.js';
import { errorNotice, fmtDuration, fmtTime, h, progressBar, stateBadge } from './ui.js';

const STATES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
const KINDS = ['train', 'generate'];
const PAGE_SIZE = 20;
const REFRESH_MS = 3000;

function select(name, label, options, value) {
  return h('label', {}, label, ' ',
    h('select', { name }, h('option', { value: '' }, 'any'),
      options.map((o) => h('option', { value: o, selected: o === value }, o))));
}

function row(j) {
  const p = j.progress || {};
  return h('tr', { 'data-job': j.id },
    h('td', {}, h('a', { href: `#/jobs/${j.id}` }, j.id)),
    h('td', {}, j.kind),
    h('td', {}, stateBadge(j.state, j.cancel_requested)),
    h('td', {}, progressBar(j)),
    h('td', {}, j.queue_position ?? '—'),
    h('td', {}, j.state === 'running' ? fmtDuration(p.eta_s) : '—'),
    h('td', {}, fmtTime(j.created_at)));
}

export async function render(main, params, signal) {
  const state = STATES.includes(params.state) ? params.state : '';
  const kind = KINDS.includes(params.kind) ? params.kind : '';
  const cursors = params.cursors ? params.cursors.split(',') : []; // one per page back
  const cursor = cursors[cursors.length - 1] || '';

  const filters = h('form', { class: 'filters', 'aria-label': 'Filter jobs' },
    select('state', 'State', STATES, state), select('kind', 'Kind', KINDS, kind));
  filters.addEventListener('change', () => {
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(filters)) if (v) q.set(k, v);
    location.hash = `#/jobs?${q}`;
  });
  const status = h('p', { class: 'muted', role: 'status', 'aria-live': 'polite' });
  const body = h('tbody');
  const table = h('table', { class: 'jobs' },
    h('caption', { class: 'sr-only' }, 'Jobs, newest first'),
    h('thead', {}, h('tr', {}, ['Job', 'Kind', 'State', 'Progress', 'Queue', 'ETA', 'Created']
      .map((t) => h('th', { scope: 'col' }, t)))),
    body);
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  main.append(h('h1', {}, 'Jobs'), filters, status, h('div', { class: 'scroll' }, table), pager);

  const link = (cs) => {
    const q = new URLSearchParams();
    if (state) q.set('state', state);
    if (kind) q.set('kind', kind);
    if (cs.length) q.set('cursors', cs.join(','));
    return `#/jobs?${q}`;
  };

  const load = async () => {
    const q = new URLSearchParams({ limit: PAGE_SIZE });
    if (state) q.set('state', state);
    if (kind) q.set('kind', kind);
    if (cursor) q.set('cursor', cursor);
    const page = await api(`/v1/jobs?${q}`, { signal });
    body.replaceChildren(...page.jobs.map(row));
    status.textContent = page.jobs.length
      ? `${page.jobs.length} job${page.jobs.length > 1 ? 's' : ''} on this page`
      : 'No jobs match.';
    pager.replaceChildren(
      cursors.length ? h('a', { href: link(cursors.slice(0, -1)), rel: 'prev' }, '← Newer') : '',
      page.next_cursor ? h('a', { href: link([...cursors, page.next_cursor]), rel: 'next' }, 'Older →') : '');
  };

  await load();
  const alert = h('div');
  main.insertBefore(alert, status);
  const timer = setInterval(() => {
    if (document.hidden) return;
    load().then(() => alert.replaceChildren(), (e) => {
      if (e.name !== 'AbortError') alert.replaceChildren(errorNotice(e));
    });
  }, REFRESH_MS);
  signal.addEventListener('abort', () => clearInterval(timer));
}
