// Datasets: upload an archive (POST /v1/datasets, the file as the raw body,
// with upload progress) and read the server's check report (format, samples,
// entries, unpacked bytes), or why it was refused; and the list of uploaded
// datasets with a link to train on each.
// Not here: extraction or checks (the server does both).
import { api, uploadDataset } from './api.js';
import { errorNotice, facts, fmtBytes, fmtTime, h } from './ui.js';

const ACCEPT = '.tar,.tar.gz,.tgz,.tar.bz2,.tar.xz,.tar.zst,.zip';

function report(d) {
  return h('section', { class: 'report', 'aria-labelledby': `r-${d.id}`, 'data-dataset': d.id },
    h('h3', { id: `r-${d.id}` }, `Dataset ${d.id} accepted`),
    facts([
      ['Format', d.format === 'fill50k' ? 'prompt.json (fill50k layout)' : 'imagefolder (metadata.jsonl)'],
      ['Samples', String(d.samples)],
      ['Archive entries', String(d.entries)],
      ['Unpacked size', fmtBytes(d.bytes)],
      ['Index file', d.index],
      ['Uploaded as', d.original_name || undefined],
    ]),
    h('p', {}, h('a', { href: `#/train?dataset=${encodeURIComponent(d.id)}` }, 'Train a ControlNet on it →')));
}

export async function render(main, params, signal) {
  const input = h('input', { id: 'archive', name: 'archive', type: 'file', accept: ACCEPT, required: true });
  const bar = h('progress', { max: 1, value: 0, hidden: true, 'aria-label': 'upload progress' });
  const result = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit' }, 'Upload and check');
  const form = h('form', { class: 'card', 'aria-labelledby': 'up-h' },
    h('h2', { id: 'up-h' }, 'Upload a dataset'),
    h('p', {}, 'A tar (optionally gz, bz2, xz or zst) or zip archive holding ',
      h('code', {}, 'metadata.jsonl'), ' (file_name, conditioning_image_file_name, text) or ',
      h('code', {}, 'prompt.json'), ' (source, target, prompt), at its top or in one folder.'),
    h('label', { for: 'archive' }, 'Archive'), input, submit, bar, result);
  const listBox = h('section', { 'aria-labelledby': 'list-h' });
  main.append(h('h1', {}, 'Datasets'), form, listBox);

  const list = async () => {
    const { datasets } = await api('/v1/datasets', { signal });
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
        h('td', {}, h('a', { href: `#/train?dataset=${encodeURIComponent(d.id)}` }, 'Train'))))))));
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
      result.replaceChildren(report(d));
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
