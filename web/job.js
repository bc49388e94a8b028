// One job's page: state, progress (step, loss, lr, samples/s, ETA), loss and
// learning-rate curves from every progress event (the stream is replayed from
// the first event, so the curve is complete), validation images and other
// files of the job's dir, the event log, cancel, and the Hub repo it pushes
// to. Live through GET /v1/jobs/{id}/events; the job itself is re-read on
// each state, checkpoint or cancel event.
// Not here: the list (jobs.js) or the event stream's parsing (api.js).
import { ApiError, api, apiBlob, followEvents } from './api.js';
import { lineChart } from './chart.js';
import {
  errorNotice, facts, fmtDuration, fmtNumber, fmtTime, h, notice, progressBar, saveBlob, stateBadge,
} from './ui.js';

const IMAGE_RE = /\.(png|jpe?g|webp)$/i;
const LOG_MAX = 500; // events kept on screen

function summary(j) {
  const p = j.progress || {};
  const spec = j.spec || {};
  const hub = spec.push_to_hub && spec.push_to_hub.repo_id;
  const hubUrl = hub ? `https://huggingface.co/${hub}` : null;
  return facts([
    ['State', stateBadge(j.state, j.cancel_requested)],
    ['Kind', j.kind],
    ['Progress', progressBar(j)],
    ['Queue position', j.state === 'queued' ? String(j.queue_position) : undefined],
    ['Loss', p.loss !== undefined ? fmtNumber(p.loss) : undefined],
    ['Learning rate', p.lr !== undefined ? fmtNumber(p.lr) : undefined],
    ['Samples/s', p.samples_per_s !== undefined ? fmtNumber(p.samples_per_s) : undefined],
    ['ETA', j.state === 'running' && p.eta_s !== undefined ? fmtDuration(p.eta_s) : undefined],
    ['Last checkpoint', j.checkpoint_step !== null ? `step ${j.checkpoint_step}` : undefined],
    ['Attempt', `${j.attempt} of ${j.max_attempts}`],
    ['Created', fmtTime(j.created_at)],
    ['Started', fmtTime(j.started_at)],
    ['Finished', fmtTime(j.finished_at)],
    ['Hub repo', hub ? (j.state === 'succeeded'
      ? h('a', { href: hubUrl, rel: 'noopener noreferrer', target: '_blank' }, hub)
      : `${hub} (pushed when training succeeds)`) : undefined],
  ]);
}

function specTable(spec) {
  const rows = Object.entries(spec || {}).map(([k, v]) =>
    h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, typeof v === 'object' ? JSON.stringify(v) : String(v))));
  return h('details', { class: 'spec' }, h('summary', {}, 'Options'),
    h('table', {}, h('tbody', {}, rows)));
}

// The job's files: images shown (fetched with the token), all downloadable.
function artifacts(j, signal, shown) {
  const list = (j.links && j.links.artifacts) || [];
  const box = h('section', { 'aria-labelledby': 'files-h' }, h('h2', { id: 'files-h' }, 'Files'));
  if (!list.length) {
    box.append(h('p', { class: 'muted' }, 'No files yet. Validation images, checkpoints and the trained weights appear here.'));
    return box;
  }
  const gallery = h('div', { class: 'gallery' });
  const ul = h('ul', { class: 'files' });
  for (const a of list) {
    const btn = h('button', { type: 'button', class: 'quiet' }, `Download ${a.name}`);
    btn.addEventListener('click', async () => {
      btn.disabled = true;
      try {
        const { blob } = await apiBlob(a.href, { signal });
        saveBlob(blob, a.name);
      } catch (e) {
        if (e.name !== 'AbortError') btn.after(errorNotice(e));
      } finally {
        btn.disabled = false;
      }
    });
    ul.append(h('li', {}, btn));
    if (IMAGE_RE.test(a.name)) {
      const fig = h('figure', {}, h('figcaption', {}, a.name));
      gallery.append(fig);
      if (!shown.has(a.name)) {
        shown.set(a.name, apiBlob(a.href, { signal }).then(({ blob }) => URL.createObjectURL(blob)));
      }
      shown.get(a.name).then(
        (url) => fig.prepend(h('img', { src: url, alt: `${a.name}, a file of job ${j.id}` })),
        (e) => { if (e.name !== 'AbortError') fig.append(errorNotice(e)); });
    }
  }
  if (gallery.childElementCount) box.append(h('h3', {}, 'Images'), gallery);
  box.append(ul);
  return box;
}

function logLine(ev) {
  const d = ev.data && typeof ev.data === 'object' ? ev.data : {};
  let text;
  switch (ev.type) {
  case 'state': text = `state → ${d.state} (attempt ${d.attempt})${d.reason ? `: ${d.reason}` : ''}`; break;
  case 'progress':
    text = d.phase === 'download'
      ? `downloading ${d.file}: ${d.done_bytes} of ${d.total_bytes} bytes`
      : `step ${d.step}/${d.total}, loss ${fmtNumber(d.loss)}, lr ${fmtNumber(d.lr)}`;
    break;
  case 'checkpoint': text = `checkpoint saved at step ${d.step}`; break;
  case 'cancel_requested': text = 'cancel requested; the job stops at the next step'; break;
  default: text = `${ev.type}: ${JSON.stringify(ev.data)}`;
  }
  return h('li', { 'data-event': ev.type }, h('span', { class: 'muted' }, `#${ev.id} `), text);
}

export async function render(main, params, signal) {
  const id = params.id;
  if (!/^j_[0-9a-f]{32}$/.test(id)) {
    main.append(h('h1', {}, 'Job'), errorNotice(new Error(`"${id}" is not a job id.`)));
    return;
  }
  const head = h('div', { class: 'job-head' });
  const alerts = h('div', { role: 'alert' });
  const sum = h('section', { 'aria-label': 'Summary' });
  const curves = h('section', { class: 'curves', 'aria-labelledby': 'curves-h' });
  const files = h('div');
  const streamState = h('span', { class: 'muted', role: 'status' });
  const log = h('ul', { class: 'log', 'aria-live': 'off' });
  const specBox = h('div');
  main.append(h('p', {}, h('a', { href: '#/jobs' }, '← All jobs')), head, alerts, sum, curves, files,
    h('section', { 'aria-labelledby': 'log-h' },
      h('h2', { id: 'log-h' }, 'Events ', streamState), log), specBox);

  const points = { loss: [], lr: [] };
  const shown = new Map(); // artifact name → Promise of its object URL
  signal.addEventListener('abort', () => {
    for (const p of shown.values()) p.then((u) => URL.revokeObjectURL(u), () => {});
  });
  let job = null;

  const cancelBtn = h('button', { type: 'button', class: 'danger' }, 'Cancel job');
  cancelBtn.addEventListener('click', async () => {
    if (!confirm(`Cancel job ${id}? A running job stops at its next step.`)) return;
    cancelBtn.disabled = true;
    try {
      paint(await api(`/v1/jobs/${id}/cancel`, { method: 'POST', signal }));
    } catch (e) {
      if (e.name !== 'AbortError') alerts.replaceChildren(errorNotice(e));
      cancelBtn.disabled = false;
    }
  });

  function paintCurves() {
    curves.replaceChildren(h('h2', { id: 'curves-h' }, 'Training curves'));
    if (!points.loss.length) {
      curves.append(h('p', { class: 'muted' }, job && job.kind === 'train'
        ? 'No training steps reported yet; the curves start with the first step.'
        : 'This job reports no training steps.'));
      return;
    }
    curves.append(h('div', { class: 'charts' }, lineChart('loss', points.loss), lineChart('learning rate', points.lr)));
  }

  function paint(j) {
    job = j;
    const open = j.state === 'queued' || j.state === 'running';
    cancelBtn.disabled = !open || j.cancel_requested;
    cancelBtn.hidden = !open;
    head.replaceChildren(h('h1', {}, `Job ${j.id}`), cancelBtn);
    sum.replaceChildren(summary(j));
    if (j.error) sum.append(h('p', { class: 'notice error' }, `Failed (${j.error.code}): ${j.error.message}`));
    if (j.state === 'queued') {
      sum.append(notice(`Waiting in the queue at position ${j.queue_position}. It starts when an engine worker of this server is free.`));
    }
    files.replaceChildren(artifacts(j, signal, shown));
    specBox.replaceChildren(specTable(j.spec));
    paintCurves();
  }

  const refresh = async () => {
    try {
      paint(await api(`/v1/jobs/${id}`, { signal }));
    } catch (e) {
      if (e.name !== 'AbortError') alerts.replaceChildren(errorNotice(e));
    }
  };

  try {
    paint(await api(`/v1/jobs/${id}`, { signal }));
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      main.replaceChildren(h('h1', {}, 'Job'), errorNotice(new Error(`There is no job ${id} on this server.`)));
      return;
    }
    throw e;
  }

  let repaint = 0;
  const onEvent = (ev) => {
    log.append(logLine(ev));
    while (log.childElementCount > LOG_MAX) log.firstElementChild.remove();
    if (ev.type === 'progress' && ev.data && typeof ev.data.step === 'number') {
      const d = ev.data;
      if (typeof d.loss === 'number') points.loss.push([d.step, d.loss]);
      if (typeof d.lr === 'number') points.lr.push([d.step, d.lr]);
      job = { ...job, progress: d };
      // Many events arrive at once on replay: paint once per frame.
      if (!repaint) repaint = requestAnimationFrame(() => { repaint = 0; paint(job); });
    } else {
      refresh();
    }
  };
  followEvents(id, onEvent, signal, (s) => { streamState.textContent = s === 'live' ? '(live)' : '(reconnecting…)'; })
    .then(() => {
      if (signal.aborted) return;
      streamState.textContent = '(ended: the job is finished)';
      refresh();
    }, (e) => { if (e.name !== 'AbortError') alerts.replaceChildren(errorNotice(e)); });
}
