// Datasets: upload an archive or one Parquet file (POST /v1/datasets, the
// file as the raw body, with upload progress) and read the server's check
// report (format, samples, entries, unpacked bytes, a Parquet file's
// columns), or why it was refused; previews of a dataset's first samples
// (target image, conditioning image, caption: GET /v1/datasets/{id}/samples)
// as the trainer reads them, whatever the format; and the list of uploaded
// datasets with links to preview and train on each.
// Not here: extraction, checks or decoding (the server does all three).
import { api, apiBlob, uploadDataset } from './api.js';
import { errorNotice, facts, fmtBytes, fmtTime, h } from './ui.js';

const ACCEPT = '.tar,.tar.gz,.tgz,.tar.bz2,.tar.xz,.tar.zst,.zip,.parquet';
const FORMATS = {
  imagefolder: 'imagefolder (metadata.jsonl)',
  fill50k: 'prompt.json (fill50k layout)',
  webdataset: 'WebDataset (*.tar shards)',
  parquet: 'Parquet (Hugging Face Hub layout)',
};

function report(d, heading) {
  return h('section', { class: 'report', 'aria-labelledby': `r-${d.id}`, 'data-dataset': d.id },
    h('h3', { id: `r-${d.id}` }, heading),
    facts([
      ['Format', FORMATS[d.format] || d.format],
      ['Samples', String(d.samples)],
      ['Columns', d.columns ? d.columns.join(', ') : undefined],
      ['Archive entries', String(d.entries)],
      ['Unpacked size', fmtBytes(d.bytes)],
      ['Index file', d.index],
      ['Uploaded as', d.original_name || undefined],
    ]),
    h('p', {}, h('a', { href: `#/train?dataset=${encodeURIComponent(d.id)}` }, 'Train a ControlNet on it →')));
}

// The first samples, each a figure of its two images and its caption; the
// images are fetched with the token (an <img src> cannot send it).
function samples(d, signal) {
  const box = h('section', { class: 'samples', 'aria-labelledby': `s-${d.id}`, 'data-samples': d.id },
    h('h3', { id: `s-${d.id}` }, 'First samples'), h('p', { class: 'muted' }, 'Loading…'));
  const urls = [];
  signal.addEventListener('abort', () => urls.forEach((u) => URL.revokeObjectURL(u)));
  const image = async (href, alt) => {
    const { blob } = await apiBlob(href, { signal });
    const url = URL.createObjectURL(blob);
    urls.push(url);
    return h('img', { src: url, alt });
  };
  (async () => {
    const { samples: list } = await api(`/v1/datasets/${encodeURIComponent(d.id)}/samples`, { signal });
    const figures = await Promise.all(list.map(async (s) => h('figure', { 'data-sample': s.index },
      h('div', { class: 'pair' },
        await image(s.image, `target image of ${s.name}`),
        await image(s.conditioning_image, `conditioning image of ${s.name}`)),
      h('figcaption', {}, s.caption || h('em', {}, '(empty caption)'), h('br'), h('small', {}, s.name)))));
    box.replaceChildren(box.firstChild, h('div', { class: 'gallery' }, figures));
  })().catch((err) => {
    if (err.name !== 'AbortError') box.replaceChildren(box.firstChild, errorNotice(err));
  });
  return box;
}

export async function render(main, params, signal) {
  const input = h('input', { id: 'archive', name: 'archive', type: 'file', accept: ACCEPT, required: true });
  const bar = h('progress', { max: 1, value: 0, hidden: true, 'aria-label': 'upload progress' });
  const result = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit' }, 'Upload and check');
  const form = h('form', { class: 'card', 'aria-labelledby': 'up-h' },
    h('h2', { id: 'up-h' }, 'Upload a dataset'),
    h('p', {}, 'A tar (optionally gz, bz2, xz or zst) or zip archive holding ',
      h('code', {}, 'metadata.jsonl'), ' (file_name, conditioning_image_file_name, text), ',
      h('code', {}, 'prompt.json'), ' (source, target, prompt) or a Hub snapshot in Parquet (',
      h('code', {}, 'data/train-*.parquet'), '), at its top or in one folder; or one ',
      h('code', {}, '.parquet'), ' file (image, conditioning_image, text columns).'),
    h('label', { for: 'archive' }, 'Archive or Parquet file'), input, submit, bar, result);
  const shown = h('div', { 'aria-live': 'polite' });
  const listBox = h('section', { 'aria-labelledby': 'list-h' });
  main.append(h('h1', {}, 'Datasets'), form, shown, listBox);

  const list = async () => {
    const { datasets } = await api('/v1/datasets', { signal });
    const picked = datasets.find((d) => d.id === params.id);
    if (picked) shown.replaceChildren(report(picked, `Dataset ${picked.id}`), samples(picked, signal));
    listBox.replaceChildren(h('h2', { id: 'list-h' }, 'Uploaded datasets'));
    if (!datasets.length) {
      listBox.append(h('p', { class: 'muted' }, 'No datasets uploaded yet.'));
      return;
    }
    listBox.append(h('div', { class: 'scroll' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Dataset', 'Format', 'Samples', 'Size', 'Uploaded', 'Name', '']
        .map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, datasets.map((d) => h('tr', { 'data-dataset': d.id },
        h('td', {}, d.id), h('td', {}, d.format), h('td', {}, String(d.samples)), h('td', {}, fmtBytes(d.bytes)),
        h('td', {}, fmtTime(d.created_at)), h('td', {}, d.original_name || '—'),
        h('td', {}, h('a', { href: `#/datasets?id=${encodeURIComponent(d.id)}` }, 'Preview'), ' ',
          h('a', { href: `#/train?dataset=${encodeURIComponent(d.id)}` }, 'Train'))))))));
  };

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const file = input.files[0];
    if (!file) return;
    submit.disabled = true;
    bar.hidden = false;
    bar.value = 0;
    result.replaceChildren(h('p', { role: 'status' }, `Uploading ${file.name} (${fmtBytes(file.size)})…`));
    try {
      const d = await uploadDataset(file, (f) => { bar.value = f; });
      result.replaceChildren(report(d, `Dataset ${d.id} accepted`), samples(d, signal));
      form.reset();
      await list();
    } catch (err) {
      result.replaceChildren(h('h3', {}, `${file.name} was not accepted`), errorNotice(err));
    } finally {
      submit.disabled = false;
      bar.hidden = true;
    }
  });

  await list();
}
