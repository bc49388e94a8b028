// The generate playground: a control image (uploaded, drawn on a canvas, or
// both), prompt, negative prompt, scheduler, steps, guidance, ControlNet
// scale, seed and size, sent to POST /v1/generate as JSON with the image in
// base64 and `Accept: image/png` (the synchronous answer the service issue
// documents); shows the image with the parameters that made it. For an SDXL
// base (GET /v1/models' pipeline is a StableDiffusionXL... class) it also
// offers prompt_2, negative_prompt_2 and the micro-conditioning sizes,
// typed as "H,W" (diffusers' (height, width) order) and sent as [h, w].
// The preprocessor and its preview (preprocess.js) and the img2img /
// inpainting inputs (img2img.js) add their fields to the same request.
// Only offered when the server's OpenAPI document has the /v1/generate route;
// otherwise the page says so and shows no form. Not here: the preprocessors
// themselves (the server's annotators).
import { api, apiBlob, limits, routes, schema } from './api.js';
import { img2imgPanel } from './img2img.js';
import { preprocessPanel } from './preprocess.js';
import { errorNotice, facts, h, markField, notice } from './ui.js';

const SIZE_MIN = 64; // px per side the drawing canvas takes

// SDXL's (height, width) pair fields of GenerateSpec.
const SDXL_SIZES = ['original_size', 'crops_coords_top_left', 'target_size',
  'negative_original_size', 'negative_crops_coords_top_left', 'negative_target_size'];
const isSdxl = (m) => Boolean(m && m.pipeline && m.pipeline.startsWith('StableDiffusionXL'));

// "H,W" -> [h, w]; anything else is sent as typed, so the server names the field.
function pair(text) {
  const m = /^\s*(\d+)\s*,\s*(\d+)\s*$/.exec(text);
  return m ? [Number(m[1]), Number(m[2])] : text;
}

function num(label, name, value, attrs) {
  return h('div', { class: 'field' }, h('label', { for: `g-${name}` }, label),
    h('input', { id: `g-${name}`, name, value, type: 'number', ...attrs }));
}

// A canvas the control image is put on (uploads are scaled to cover it and
// centre-cropped) and drawn on with the pointer: white strokes on black, the
// look of scribble and edge maps.
function controlCanvas() {
  const canvas = h('canvas', { width: 512, height: 512, class: 'control', 'aria-label': 'control image; draw with the pointer' });
  const ctx = canvas.getContext('2d');
  const clear = () => { ctx.fillStyle = '#000'; ctx.fillRect(0, 0, canvas.width, canvas.height); };
  clear();
  let drawing = false;
  const at = (e) => {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * (canvas.width / r.width), (e.clientY - r.top) * (canvas.height / r.height)];
  };
  canvas.addEventListener('pointerdown', (e) => {
    drawing = true;
    canvas.setPointerCapture(e.pointerId);
    ctx.beginPath();
    ctx.moveTo(...at(e));
  });
  canvas.addEventListener('pointermove', (e) => {
    if (!drawing) return;
    ctx.strokeStyle = '#fff';
    ctx.lineWidth = Math.max(2, canvas.width / 128);
    ctx.lineCap = 'round';
    ctx.lineTo(...at(e));
    ctx.stroke();
  });
  canvas.addEventListener('pointerup', () => { drawing = false; });
  const put = async (file) => {
    const bmp = await createImageBitmap(file);
    const s = Math.max(canvas.width / bmp.width, canvas.height / bmp.height);
    clear();
    ctx.drawImage(bmp, (canvas.width - bmp.width * s) / 2, (canvas.height - bmp.height * s) / 2, bmp.width * s, bmp.height * s);
  };
  const resize = (w, h2) => { canvas.width = w; canvas.height = h2; clear(); };
  const base64 = () => new Promise((resolve) => canvas.toBlob((b) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result).replace(/^data:[^,]*,/, ''));
    r.readAsDataURL(b);
  }, 'image/png'));
  return { canvas, clear, put, resize, base64 };
}

export async function render(main, params, signal) {
  main.append(h('h1', {}, 'Generate'));
  const paths = await routes();
  if (!paths.has('/v1/generate')) {
    main.append(notice('Image generation is not available on this server yet: its API ' +
      '(GET /v1/openapi.yaml) has no /v1/generate route. This page turns on by itself once the ' +
      'server offers it.', 'warn'));
    return;
  }
  const [{ models }, spec] = await Promise.all([api('/v1/models', { signal }), schema('GenerateSpec')]);
  // Limits and defaults are the server's (its option table, via openapi.yaml).
  const opt = (name, extra = {}) => {
    const { min, max, step } = limits(spec[name]); // the input's attributes (these fields have no open ends)
    return { min, max, step, ...extra };
  };
  const def = (name) => (spec[name] && spec[name].default !== undefined ? spec[name].default : '');
  const SIZE_MAX = limits(spec.width).max;
  const base = models.filter((m) => m.kind === 'base');
  const nets = models.filter((m) => m.kind === 'controlnet');
  const cc = controlCanvas();
  const pre = await preprocessPanel(spec, cc.base64, signal);
  const i2i = img2imgPanel();
  const file = h('input', { id: 'g-file', type: 'file', accept: 'image/png,image/jpeg' });
  file.addEventListener('change', () => { if (file.files[0]) cc.put(file.files[0]).catch((e) => out.replaceChildren(errorNotice(e))); });
  const clearBtn = h('button', { type: 'button', class: 'quiet' }, 'Clear');
  clearBtn.addEventListener('click', cc.clear);
  const out = h('div', { class: 'result', 'aria-live': 'polite' });
  const choose = (name, label, list, none) => h('div', { class: 'field' }, h('label', { for: `g-${name}` }, label),
    list.length ? h('select', { id: `g-${name}`, name }, list.map((m) => h('option', { value: m.name }, m.name)))
      : h('p', { class: 'notice warn' }, none));
  const form = h('form', { class: 'card generate', novalidate: true },
    choose('model', 'Base model', base, "No base models under the server's --models dir."),
    choose('controlnet', 'ControlNet', nets, 'No trained ControlNets yet.'),
    h('fieldset', {}, h('legend', {}, 'Control image'),
      h('div', { class: 'field' }, h('label', { for: 'g-file' }, 'Upload (scaled to cover, centre-cropped), then draw on it if you like'), file),
      cc.canvas, clearBtn),
    pre.box, i2i.box,
    h('div', { class: 'field wide' }, h('label', { for: 'g-prompt' }, 'Prompt'),
      h('textarea', { id: 'g-prompt', name: 'prompt', rows: 2, required: true })),
    h('div', { class: 'field wide' }, h('label', { for: 'g-negative_prompt' }, 'Negative prompt'),
      h('textarea', { id: 'g-negative_prompt', name: 'negative_prompt', rows: 1 })),
    h('fieldset', { id: 'g-sdxl', hidden: true }, h('legend', {}, 'SDXL'),
      h('div', { class: 'field wide' }, h('label', { for: 'g-prompt_2' }, 'Prompt 2 (second text encoder; default the prompt)'),
        h('textarea', { id: 'g-prompt_2', name: 'prompt_2', rows: 1 })),
      h('div', { class: 'field wide' }, h('label', { for: 'g-negative_prompt_2' }, 'Negative prompt 2'),
        h('textarea', { id: 'g-negative_prompt_2', name: 'negative_prompt_2', rows: 1 })),
      SDXL_SIZES.map((k) => h('div', { class: 'field' },
        h('label', { for: `g-${k}` }, `${k.replace(/_/g, ' ')} (H,W)`),
        h('input', { id: `g-${k}`, name: k, placeholder: 'H,W' })))),
    h('div', { class: 'field' }, h('label', { for: 'g-scheduler' }, 'Scheduler'),
      h('select', { id: 'g-scheduler', name: 'scheduler' }, h('option', { value: '' }, "(the model's own)"),
        (spec.scheduler ? spec.scheduler.enum : []).map((s) => h('option', { value: s }, s)))),
    num('Steps', 'steps', def('steps'), opt('steps')),
    num('Guidance', 'guidance', def('guidance'), opt('guidance', { step: 0.5 })),
    num('ControlNet scale', 'scale', def('scale'), opt('scale', { step: 0.05 })),
    num('Seed', 'seed', def('seed'), opt('seed')),
    num('Width', 'width', 512, opt('width', { min: SIZE_MIN })),
    num('Height', 'height', 512, opt('height', { min: SIZE_MIN })),
    h('button', { type: 'submit' }, 'Generate'), out);
  main.append(form);
  const sdxlBox = form.querySelector('#g-sdxl');
  const modelChanged = () => {
    sdxlBox.hidden = !isSdxl(base.find((m) => form.elements.model && m.name === form.elements.model.value));
  };
  if (form.elements.model) form.elements.model.addEventListener('change', modelChanged);
  modelChanged();
  const sizeChanged = () => {
    const w = Number(form.elements.width.value), ht = Number(form.elements.height.value);
    if (w % 8 === 0 && ht % 8 === 0 && w >= SIZE_MIN && ht >= SIZE_MIN && w <= SIZE_MAX && ht <= SIZE_MAX) cc.resize(w, ht);
  };
  form.elements.width.addEventListener('change', sizeChanged);
  form.elements.height.addEventListener('change', sizeChanged);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    markField(form, null);
    const el = form.elements;
    const body = { prompt: el.prompt.value.trim() };
    if (el.scheduler.value) body.scheduler = el.scheduler.value;
    if (el.model) body.model = el.model.value;
    if (el.controlnet) body.controlnet = el.controlnet.value;
    if (el.negative_prompt.value.trim()) body.negative_prompt = el.negative_prompt.value.trim();
    if (!sdxlBox.hidden) {
      for (const k of ['prompt_2', 'negative_prompt_2']) if (el[k].value.trim()) body[k] = el[k].value.trim();
      for (const k of SDXL_SIZES) if (el[k].value.trim()) body[k] = pair(el[k].value);
    }
    for (const k of ['steps', 'guidance', 'scale', 'seed', 'width', 'height']) {
      if (el[k].value !== '') body[k] = Number(el[k].value);
    }
    Object.assign(body, pre.fields());
    const shown = { ...body };
    Object.assign(body, await i2i.fields());
    if (body.strength !== undefined) shown.strength = body.strength;
    body.image = await cc.base64();
    const btn = form.querySelector('button[type=submit]');
    btn.disabled = true;
    out.replaceChildren(h('p', { role: 'status' }, 'Generating…'));
    try {
      const { blob } = await apiBlob('/v1/generate', { method: 'POST', body, accept: 'image/png', signal });
      const url = URL.createObjectURL(blob);
      signal.addEventListener('abort', () => URL.revokeObjectURL(url));
      out.replaceChildren(h('figure', {}, h('img', { src: url, alt: `generated: ${shown.prompt}` }),
        h('figcaption', {}, facts(Object.entries(shown).map(([k, v]) => [k, String(v)])))));
    } catch (err) {
      if (err.name === 'AbortError') return;
      markField(form, err);
      out.replaceChildren(err.status === 404
        ? notice('This server has no /v1/generate route after all; generation is unavailable.', 'warn')
        : errorNotice(err));
    } finally {
      btn.disabled = false;
    }
  });
}
