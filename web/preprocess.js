// The generate page's preprocessor: which annotator the control image goes
// through (the server's list, GET /v1/preprocessors, with each one's
// parameters as threshold_a / threshold_b inputs labelled, bounded and
// defaulted by the server) and processor_res (for those that take it), and a preview: the control
// image as POST /v1/preprocess makes it, shown before generating. The same
// fields go into the generate request, so the run preprocesses exactly what
// the preview showed. Not here: the annotators (the server's), the canvas.
import { api, apiBlob, limits, routes } from './api.js';
import { errorNotice, h } from './ui.js';

const SLOTS = ['threshold_a', 'threshold_b'];

// preprocessPanel(spec, imageBase64, signal) → { box, fields() }: box is
// the fieldset to show; fields() the request members it sets (only those
// that differ from "none" and the defaults the server would take anyway are
// still sent, so the server names a value it refuses).
export async function preprocessPanel(spec, imageBase64, signal) {
  const paths = await routes();
  const list = paths.has('/v1/preprocessors')
    ? (await api('/v1/preprocessors', { signal })).preprocessors
    : (spec.preprocess ? spec.preprocess.enum : ['none']).map((name) => ({ name, module: name, parameters: [] }));
  const select = h('select', { id: 'g-preprocess', name: 'preprocess' },
    list.map((p) => h('option', { value: p.name, title: p.module }, p.name)));
  const params = h('div', { class: 'params' });
  const res = limits(spec.processor_res);
  const resInput = h('input', { id: 'g-processor_res', name: 'processor_res', type: 'number', min: res.min, max: res.max, placeholder: 'as it is' });
  const preview = h('img', { id: 'g-preview', alt: 'the control image the preprocessor makes', hidden: true });
  const status = h('div', { class: 'preview-status', 'aria-live': 'polite' });
  const previewBtn = h('button', { type: 'button', id: 'g-preview-btn', class: 'quiet', disabled: !paths.has('/v1/preprocess') }, 'Preview control image');
  const chosen = () => list.find((p) => p.name === select.value) || list[0];
  const resField = h('div', { class: 'field' }, h('label', { for: 'g-processor_res' }, 'Processor resolution (short side)'), resInput);
  const showParams = () => {
    params.replaceChildren(...chosen().parameters.map((p) => h('div', { class: 'field' },
      h('label', { for: `g-${p.field}` }, `${p.name} (${p.min}–${p.max})`),
      h('input', { id: `g-${p.field}`, name: p.field, type: 'number', min: p.min, max: p.max, step: 'any', value: p.default, title: p.help }))));
    resField.hidden = chosen().processor_res === false; // it would be ignored
  };
  select.addEventListener('change', showParams);
  showParams();
  let url = null;
  signal.addEventListener('abort', () => { if (url) URL.revokeObjectURL(url); });
  const fields = () => {
    const out = {};
    if (select.value !== 'none') out.preprocess = select.value;
    for (const k of SLOTS) {
      const el = params.querySelector(`[name=${k}]`);
      if (el && el.value !== '') out[k] = Number(el.value);
    }
    if (resInput.value !== '' && !resField.hidden) out.processor_res = Number(resInput.value);
    return out;
  };
  previewBtn.addEventListener('click', async () => {
    previewBtn.disabled = true;
    status.replaceChildren(h('p', { role: 'status' }, 'Preprocessing…'));
    try {
      const body = { ...fields(), image: await imageBase64() };
      const { blob } = await apiBlob('/v1/preprocess', { method: 'POST', body, accept: 'image/png', signal });
      if (url) URL.revokeObjectURL(url);
      url = URL.createObjectURL(blob);
      preview.src = url;
      preview.hidden = false;
      status.replaceChildren();
    } catch (err) {
      if (err.name !== 'AbortError') status.replaceChildren(errorNotice(err));
    } finally {
      previewBtn.disabled = false;
    }
  });
  const box = h('fieldset', { class: 'preprocess' }, h('legend', {}, 'Preprocessor'),
    h('div', { class: 'field' }, h('label', { for: 'g-preprocess' }, 'Preprocessor'), select),
    params,
    resField, previewBtn, status, preview);
  return { box, fields };
}
