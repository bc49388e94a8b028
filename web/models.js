// Models (GET /v1/models): the base models under the server's --models dir
// (folders with model_index.json) and the ControlNets trained by its jobs.
// Not here: downloading from the Hub (`cnet pull` does that on the server).
import { api } from './api.js';
import { h } from './ui.js';

export async function render(main, params, signal) {
  const { models } = await api('/v1/models', { signal });
  const base = models.filter((m) => m.kind === 'base');
  const nets = models.filter((m) => m.kind === 'controlnet');
  main.append(h('h1', {}, 'Models'));
  main.append(h('section', { 'aria-labelledby': 'base-h' }, h('h2', { id: 'base-h' }, 'Base models'),
    base.length
      ? h('ul', { class: 'models' }, base.map((m) => h('li', { 'data-model': m.name },
        h('code', {}, m.name), ' ', h('a', { href: `#/train?model=${encodeURIComponent(m.name)}` }, 'train on it'))))
      : h('p', { class: 'muted' }, 'No base models. Put a diffusers folder (with model_index.json) under the ' +
          "server's --models dir, e.g. with cnet pull.")));
  main.append(h('section', { 'aria-labelledby': 'cn-h' }, h('h2', { id: 'cn-h' }, 'Trained ControlNets'),
    nets.length
      ? h('ul', { class: 'models' }, nets.map((m) => h('li', { 'data-model': m.name },
        h('code', {}, m.name), ' from ', h('a', { href: `#/jobs/${m.job}` }, m.job))))
      : h('p', { class: 'muted' }, 'None yet: a training job that succeeds adds its ControlNet here.')));
}
