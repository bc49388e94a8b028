// The form that starts a training job (POST /v1/jobs, TrainSpec of
// api/openapi.yaml): base model and dataset chosen from what the server has,
// the main options of diffusers' train_controlnet.py with its defaults, the
// rest under "More options", the dataset's columns (--image_column and its
// kin) for the formats that have columns (Parquet, imagefolder; a Parquet
// dataset's own columns offered), and an optional Hub push. Empty fields are left
// out so the server applies its own defaults; a refused field is marked with
// the server's message.
// Not here: uploading a dataset (datasets.js does; linked from here).
import { api, limits, rangeText, schema } from './api.js';
import { errorNotice, h, markField } from './ui.js';

// [name, label, extra attributes]: the kind (int, num, enum, text), the
// default and the limits are the server's TrainSpec (its option table, via
// openapi.yaml), filled in by render.
const MAIN = [
  ['resolution', 'Resolution (px)'],
  ['train_batch_size', 'Batch size'],
  ['num_train_epochs', 'Epochs'],
  ['max_train_steps', 'Max steps (overrides epochs)'],
  ['learning_rate', 'Learning rate'],
  ['lr_scheduler', 'LR schedule'],
  ['lr_warmup_steps', 'Warmup steps'],
  ['gradient_accumulation_steps', 'Gradient accumulation'],
  ['checkpointing_steps', 'Checkpoint every (steps)'],
  ['mixed_precision', 'Mixed precision'],
  ['seed', 'Seed'],
  ['num_validation_images', 'Validation images per prompt'],
  ['validation_steps', 'Validate every (steps)'],
];
const MORE = [
  ['controlnet_model_name_or_path', 'Start from ControlNet (else from the UNet)', { list: 'controlnets' }],
  ['checkpoints_total_limit', 'Checkpoints kept'],
  ['lr_num_cycles', 'LR cycles (cosine_with_restarts)'],
  ['lr_power', 'LR power (polynomial)'],
  ['adam_beta1', 'Adam β1'],
  ['adam_beta2', 'Adam β2'],
  ['adam_weight_decay', 'Adam weight decay'],
  ['adam_epsilon', 'Adam ε'],
  ['max_grad_norm', 'Max gradient norm'],
  ['proportion_empty_prompts', 'Proportion of empty prompts'],
  ['snr_gamma', 'Min-SNR γ (empty: off)'],
  ['prediction_type', 'Prediction type (empty: the scheduler\'s)'],
];

// Shown only for datasets whose format has columns; the server refuses them
// for the others (fill50k, webdataset).
const COLUMNS = [
  ['image_column', 'Target image column', { list: 'ds-columns' }],
  ['conditioning_image_column', 'Conditioning image column', { list: 'ds-columns' }],
  ['caption_column', 'Caption column', { list: 'ds-columns' }],
];
const HAS_COLUMNS = new Set(['parquet', 'imagefolder']);

// A form field's kind, default and limits from its schema property.
function describe(prop = {}) {
  const kind = prop.enum ? 'enum' : prop.type === 'integer' ? 'int' : prop.type === 'number' ? 'num' : 'text';
  const def = prop.default !== undefined ? prop.default : '';
  const options = prop.enum && (prop.default !== undefined ? prop.enum : ['', ...prop.enum]);
  return { kind, def, options, ...limits(prop) };
}

function field([name, label, extra = {}], spec) {
  const id = `f-${name}`;
  const { kind, def, options, min, max, minOpen, maxOpen, step } = describe(spec[name]);
  let input;
  if (kind === 'enum') {
    input = h('select', { id, name }, options.map((o) => h('option', { value: o, selected: o === String(def) }, o || '(default)')));
  } else {
    input = h('input', {
      id, name, value: def, type: 'text', inputmode: kind === 'int' ? 'numeric' : kind === 'num' ? 'decimal' : null,
      list: extra.list || null, 'data-kind': kind,
      'aria-describedby': min !== undefined ? `${id}-range` : null,
    });
  }
  const range = min !== undefined
    ? h('span', { class: 'hint', id: `${id}-range` },
      `${rangeText({ min, max, minOpen, maxOpen })}${step ? `, a multiple of ${step}` : ''}`)
    : null;
  return h('div', { class: 'field' }, h('label', { for: id }, label), input, range);
}

// The request body: non-empty fields, typed; a typo is caught before sending.
function collect(form) {
  const spec = {};
  const get = (n) => form.elements.namedItem(n);
  spec.pretrained_model_name_or_path = get('pretrained_model_name_or_path').value.trim();
  spec.dataset = get('dataset').value.trim();
  for (const [name, label] of [...MAIN, ...MORE, ...COLUMNS]) {
    if (get(name).matches(':disabled')) continue;
    const v = get(name).value.trim();
    const kind = get(name).dataset.kind;
    if (v === '') continue;
    if (kind === 'int' || kind === 'num') {
      const x = Number(v);
      if (!Number.isFinite(x) || (kind === 'int' && !Number.isInteger(x))) {
        const err = new Error(`${label} must be ${kind === 'int' ? 'a whole number' : 'a number'}.`);
        err.field = name;
        throw err;
      }
      spec[name] = x;
    } else {
      spec[name] = v;
    }
  }
  for (const name of ['scale_lr', 'use_8bit_adam', 'gradient_checkpointing', 'set_grads_to_none']) {
    if (get(name).checked) spec[name] = true;
  }
  const prompts = get('validation_prompt').value.split('\n').map((s) => s.trim()).filter(Boolean);
  if (prompts.length) spec.validation_prompt = prompts;
  const repo = get('repo_id').value.trim();
  if (repo) spec.push_to_hub = { repo_id: repo, private: get('private').checked };
  return spec;
}

export async function render(main, params, signal) {
  const [{ models }, { datasets }, spec] = await Promise.all([
    api('/v1/models', { signal }), api('/v1/datasets', { signal }), schema('TrainSpec')]);
  const base = models.filter((m) => m.kind === 'base');
  const nets = models.filter((m) => m.kind === 'controlnet');
  const result = h('div', { 'aria-live': 'polite' });
  const columnList = h('datalist', { id: 'ds-columns' });
  const columnHelp = h('p', { class: 'hint', id: 'columns-help' });
  const columns = h('fieldset', { id: 'columns', 'aria-describedby': 'columns-help' },
    h('legend', {}, 'Dataset columns'), columnHelp, columnList, COLUMNS.map((f) => field(f, spec)));
  // A known dataset without columns hides them; a path under --data-root
  // (format unknown here) shows them.
  const showColumns = (id) => {
    const d = datasets.find((x) => x.id === id.trim());
    columns.hidden = columns.disabled = Boolean(d) && !HAS_COLUMNS.has(d.format);
    columnList.replaceChildren(...((d && d.columns) || []).map((c) => h('option', { value: c })));
    columnHelp.textContent = (d && d.columns ? `This dataset's columns: ${d.columns.join(', ')}. ` : '') +
      'Empty: image, conditioning_image and text, as train_controlnet.py.';
  };
  const modelHelp = base.length ? null
    : h('p', { class: 'notice warn', id: 'model-help' }, "This server has no base models under its --models dir yet; " +
      'the job will be refused until one is there.');
  const form = h('form', { class: 'card train', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'f-model' }, 'Base model'),
      h('input', { id: 'f-model', type: 'text', name: 'pretrained_model_name_or_path', list: 'bases', required: true,
        value: params.model || (base[0] && base[0].name) || '', 'aria-describedby': modelHelp ? 'model-help' : null })),
    modelHelp,
    h('datalist', { id: 'bases' }, base.map((m) => h('option', { value: m.name }))),
    h('datalist', { id: 'controlnets' }, nets.map((m) => h('option', { value: m.name }))),
    h('div', { class: 'field' }, h('label', { for: 'f-dataset' }, 'Dataset'),
      h('input', { id: 'f-dataset', type: 'text', name: 'dataset', list: 'dsets', required: true,
        value: params.dataset || (datasets[0] && datasets[0].id) || '', 'aria-describedby': 'dataset-help' }),
      h('span', { class: 'hint', id: 'dataset-help' }, 'an uploaded dataset id, or a path under the server\'s --data-root. ',
        h('a', { href: '#/datasets' }, 'Upload one'))),
    h('datalist', { id: 'dsets' }, datasets.map((d) => h('option', { value: d.id },
      `${d.original_name || d.id}: ${d.samples} samples`))),
    columns,
    h('fieldset', {}, h('legend', {}, 'Training'), MAIN.map((f) => field(f, spec))),
    h('fieldset', {}, h('legend', {}, 'Validation'),
      h('div', { class: 'field wide' }, h('label', { for: 'f-validation_prompt' }, 'Validation prompts (one per line, conditioning images from the dataset)'),
        h('textarea', { id: 'f-validation_prompt', name: 'validation_prompt', rows: 3 }))),
    h('details', {}, h('summary', {}, 'More options'),
      h('fieldset', {}, h('legend', { class: 'sr-only' }, 'More options'), MORE.map((f) => field(f, spec)),
        h('div', { class: 'field' }, h('label', {}, h('input', { type: 'checkbox', name: 'scale_lr' }),
          ' Scale the learning rate by batch × accumulation (scale_lr)')),
        h('div', { class: 'field' }, h('label', {}, h('input', { type: 'checkbox', name: 'use_8bit_adam' }),
          ' 8-bit AdamW: about a quarter of the optimizer memory (use_8bit_adam)')),
        h('div', { class: 'field' }, h('label', {}, h('input', { type: 'checkbox', name: 'gradient_checkpointing' }),
          ' Recompute activations in the backward: less memory, slower (gradient_checkpointing)')),
        h('div', { class: 'field' }, h('label', {}, h('input', { type: 'checkbox', name: 'set_grads_to_none' }),
          ' No gradient memory between steps (set_grads_to_none)'))),
    ),
    h('fieldset', {}, h('legend', {}, 'Publish to the Hugging Face Hub (optional)'),
      h('div', { class: 'field' }, h('label', { for: 'f-repo' }, 'Repository (user/name)'),
        h('input', { id: 'f-repo', type: 'text', name: 'repo_id', placeholder: 'you/controlnet-canny' })),
      h('div', { class: 'field' }, h('label', {}, h('input', { type: 'checkbox', name: 'private' }), ' Private repository'))),
    h('button', { type: 'submit' }, 'Start training'),
    result);
  main.append(h('h1', {}, 'Train a ControlNet'), form);
  const datasetInput = form.elements.namedItem('dataset');
  showColumns(datasetInput.value);
  datasetInput.addEventListener('input', () => showColumns(datasetInput.value));

  // One Idempotency-Key per distinct request, so a double click or a retry
  // after a lost answer cannot queue the job twice. (crypto.randomUUID needs
  // a secure context; a dashboard on a LAN address over http is not one.)
  let lastBody = '', key = '';
  const newKey = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const btn = form.querySelector('button[type=submit]');
    result.replaceChildren();
    markField(form, null);
    let spec;
    try {
      spec = collect(form);
    } catch (err) {
      markField(form, err);
      result.replaceChildren(errorNotice(err));
      return;
    }
    if (JSON.stringify(spec) !== lastBody) lastBody = JSON.stringify(spec), key = newKey();
    btn.disabled = true;
    try {
      const job = await api('/v1/jobs', { method: 'POST', body: spec, signal, headers: { 'Idempotency-Key': key } });
      location.hash = `#/jobs/${job.id}`;
    } catch (err) {
      if (err.name === 'AbortError') return;
      const f = err.field === 'push_to_hub.repo_id' || err.field === 'push_to_hub' ? { ...err, message: err.message, field: 'repo_id' } : err;
      markField(form, f);
      result.replaceChildren(errorNotice(err));
    } finally {
      btn.disabled = false;
    }
  });
}
