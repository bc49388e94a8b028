// The dashboard's entry point: the hash router, sign-in (the token is checked
// against a protected route before it is kept), the server health line, and
// the navigation state. Each view module exports render(main, params, signal);
// signal aborts when the user leaves the view, which stops its timers and
// streams.
import { api, authEvents, clearToken, health, setToken, token } from './api.js';
import * as datasets from './datasets.js';
import * as generate from './generate.js';
import * as job from './job.js';
import * as jobs from './jobs.js';
import * as models from './models.js';
import * as train from './train.js';
import { errorNotice } from './ui.js';

const HEALTH_POLL_MS = 15000;

const main = document.getElementById('view');
const login = document.getElementById('login');
const loginForm = document.getElementById('login-form');
const loginError = document.getElementById('login-error');
const signout = document.getElementById('signout');
let current = null; // AbortController of the view on screen

function route() {
  const hash = location.hash.replace(/^#\/?/, '') || 'jobs';
  const [path, query = ''] = hash.split('?');
  const parts = path.split('/').map(decodeURIComponent);
  const params = Object.fromEntries(new URLSearchParams(query));
  if (parts[0] === 'jobs' && parts[1]) return { nav: 'jobs', view: job, params: { ...params, id: parts[1] } };
  const views = { jobs, train, generate, datasets, models };
  return views[parts[0]] ? { nav: parts[0], view: views[parts[0]], params } : { nav: 'jobs', view: jobs, params };
}

async function show() {
  if (current) current.abort();
  current = new AbortController();
  const { nav, view, params } = route();
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  main.replaceChildren();
  if (!token()) return askToken('');
  try {
    await view.render(main, params, current.signal);
  } catch (e) {
    if (e.name !== 'AbortError') main.append(errorNotice(e));
  }
}

function askToken(message) {
  loginError.textContent = message;
  signout.hidden = true;
  if (!login.open) login.showModal();
  document.getElementById('token').focus();
}

loginForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  const value = loginForm.elements.token.value.trim();
  if (!value) return;
  setToken(value);
  try {
    await api('/v1/models');
  } catch (err) {
    clearToken();
    loginError.textContent = err.status === 403 ? 'That token was not accepted.' : err.message;
    return;
  }
  loginForm.reset();
  login.close();
  signout.hidden = false;
  show();
});

login.addEventListener('cancel', (e) => { if (!token()) e.preventDefault(); });

authEvents.addEventListener('auth', () => {
  clearToken();
  if (current) current.abort();
  askToken('Your token was refused; sign in again.');
});

signout.addEventListener('click', () => {
  clearToken();
  show();
});

async function pollHealth() {
  const el = document.getElementById('health');
  try {
    const hs = await health();
    el.textContent = hs.ready ? 'server ready' : `server not ready: ${hs.message}`;
    el.dataset.ok = hs.ready ? 'yes' : 'no';
  } catch {
    el.textContent = 'server unreachable';
    el.dataset.ok = 'no';
  }
}

window.addEventListener('hashchange', show);
signout.hidden = !token();
pollHealth();
setInterval(pollHealth, HEALTH_POLL_MS);
show();
