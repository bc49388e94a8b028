// The dashboard in headless Chromium (Debian's package, driven by
// playwright-core) against a real `cnet serve` on 127.0.0.1 with a fresh data
// dir: sign in (a wrong token refused first), upload a dataset and read its
// check report (and a refused archive), upload one Parquet file written by the
// independent writer (tests/tools/parquet_writer) and see its report, columns
// and sample previews (the browser's own PNG decoder shows the writer's
// circles), then name its columns in the train form, see a job created through the API
// appear in the list, cancel it from its page, filter and page the list,
// start a training job from the form (a refused field marked first), follow
// it live while tests/tools/tool_worker.c drives it through the store to succeeded
// (progress, loss and lr curves with the worker's values, checkpoint event,
// validation image, file download), the generate form (refused by a server
// without an engine, with its reason), the control image previewed through a
// preprocessor before generating (the preview's decoded pixels equal POST
// /v1/preprocess's answer for the same input, and invert's equal 255 - the
// canvas), the img2img inputs (sent only when set; the painted mask a pure
// black-and-white PNG of the init image's size), the models page, a narrow screen, and sign-out. No CSP violation
// and no uncaught error on any page. Screenshots go to $BUILD/web/.
//
//   node tests/browser/dashboard.test.mjs   (from the repo root; tests/integration/web_test.sh runs it)
import { spawn, execFileSync } from 'node:child_process';
import { deflateSync } from 'node:zlib';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BUILD = process.env.BUILD || 'build';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TOKEN = 'web-test-token-0123456789abcdef';
const STEPS = 12, STEP_MS = 250; // the stand-in worker's run
const WAIT = 15000; // ms for any one thing to appear on the page
const SHOTS = join(BUILD, 'web');

let passed = 0, failed = 0;
async function test(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e && e.message ? e.message.split('\n')[0] : e}`);
  }
}
function check(cond, msg) { if (!cond) throw new Error(msg); }

// ---- the server ------------------------------------------------------------
const dir = mkdtempSync(join(tmpdir(), 'cnet-web-'));
const data = join(dir, 'data');
mkdirSync(join(data, 'models', 'tiny-sd'), { recursive: true });
writeFileSync(join(data, 'models', 'tiny-sd', 'model_index.json'), '{"_class_name": "StableDiffusionPipeline"}\n');

function startServer() {
  return new Promise((resolve, reject) => {
    const p = spawn(join(BUILD, 'cnet'), ['serve', '--port', '0', '--data', data, '--device', 'none'], {
      env: { ...process.env, CNET_TOKEN: TOKEN }, stdio: ['ignore', 'pipe', 'ignore'],
    });
    let out = '';
    p.stdout.on('data', (b) => {
      out += b;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve({ proc: p, base: `http://127.0.0.1:${m[1]}` });
    });
    p.on('exit', (code) => reject(new Error(`cnet serve exited ${code}: ${out}`)));
  });
}
const server = await startServer();
const base = server.base;
async function apiCall(method, path, body) {
  const r = await fetch(base + path, {
    method, headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: r.status, body: await r.json() };
}

// ---- a dataset archive (imagefolder layout) and a broken one ------------------
const ds = join(dir, 'ds', 'fill2');
mkdirSync(join(ds, 'images'), { recursive: true });
mkdirSync(join(ds, 'conditioning'), { recursive: true });
let meta = '';
for (const i of [0, 1, 2]) {
  writeFileSync(join(ds, 'images', `${i}.png`), `target ${i}`);
  writeFileSync(join(ds, 'conditioning', `${i}.png`), `source ${i}`);
  meta += JSON.stringify({ file_name: `images/${i}.png`, conditioning_image_file_name: `conditioning/${i}.png`, text: `circle ${i}` }) + '\n';
}
writeFileSync(join(ds, 'metadata.jsonl'), meta);
const archive = join(dir, 'fill3.tar');
execFileSync('tar', ['-cf', archive, '-C', join(dir, 'ds'), 'fill2']);
const broken = join(dir, 'notes.tar');
writeFileSync(broken, 'this is not an archive\n'.repeat(40));

// ---- pictures to upload: 8-bit RGB PNGs written here --------------------------
const CRC = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function chunk(type, body) {
  const t = Buffer.concat([Buffer.from(type), body]);
  let c = 0xffffffff;
  for (const b of t) c = CRC[(c ^ b) & 255] ^ (c >>> 8);
  const len = Buffer.alloc(4), crc = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  crc.writeUInt32BE((c ^ 0xffffffff) >>> 0);
  return Buffer.concat([len, t, crc]);
}
function writePng(path, w, ht, rgb) {
  const raw = Buffer.alloc((w * 3 + 1) * ht);
  for (let y = 0; y < ht; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) raw[y * (w * 3 + 1) + 1 + x * 3 + c] = rgb(x, y, c);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(ht, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  writeFileSync(path, Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]));
}
const picture = join(dir, 'picture.png'), initPicture = join(dir, 'init.png');
writePng(picture, 96, 64, (x, y, c) => (x > 40 && y > 20 ? 230 - 3 * y : 30 + 2 * x + 40 * c) & 255);
writePng(initPicture, 96, 64, (x, y, c) => (x * 2 + y * 3 + 60 * c) & 255);

// ---- the browser -----------------------------------------------------------
mkdirSync(SHOTS, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), 'cnet-web-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 900 },
  acceptDownloads: true,
});
const page = context.pages()[0] || await context.newPage();
page.setDefaultTimeout(WAIT);
const problems = [];
page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
page.on('console', (m) => { if (/Content.Security.Policy|Refused to/i.test(m.text())) problems.push(`CSP: ${m.text()}`); });
page.on('dialog', (d) => d.accept());
const shot = (name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
const text = async (sel) => (await page.locator(sel).first().innerText()).trim();

let datasetId = '', jobA = '', jobB = '';

await test('the page loads from cnet serve and asks for the token', async () => {
  const resp = await page.goto(base + '/');
  check(resp.status() === 200, `GET / answered ${resp.status()}`);
  check((resp.headers()['content-security-policy'] || '').includes("default-src 'none'"), 'no CSP header');
  await page.locator('#login[open]').waitFor();
  check(await page.locator('#token').evaluate((el) => el === document.activeElement), 'token field not focused');
  await shot('01-sign-in');
});

await test('a wrong token is refused with a message, the right one is kept in sessionStorage', async () => {
  await page.fill('#token', 'not-the-token-0000000000');
  await page.click('#login-form button[type=submit]');
  await page.locator('#login-error', { hasText: 'not accepted' }).waitFor();
  await page.fill('#token', TOKEN);
  await page.click('#login-form button[type=submit]');
  await page.locator('#login').waitFor({ state: 'hidden' });
  const kept = await page.evaluate(() => sessionStorage.getItem('cnet.token'));
  check(kept === TOKEN, `sessionStorage holds ${kept}`);
  await page.locator('main h1', { hasText: 'Jobs' }).waitFor();
  await page.locator('main [role=status]', { hasText: 'No jobs match' }).waitFor();
  await page.locator('#health[data-ok=yes]').waitFor();
});

await test('a dataset upload shows the server\'s check report', async () => {
  await page.click('nav >> text=Datasets');
  await page.locator('main h1', { hasText: 'Datasets' }).waitFor();
  await page.setInputFiles('#archive', archive);
  await page.click('main form button[type=submit]');
  const report = page.locator('.report');
  await report.waitFor();
  datasetId = await report.getAttribute('data-dataset');
  const listed = await apiCall('GET', '/v1/datasets');
  const d = listed.body.datasets.find((x) => x.id === datasetId);
  check(d && d.samples === 3, `the API lists ${JSON.stringify(listed.body)}`);
  const facts = await report.innerText();
  check(/Samples\s+3/.test(facts) && /imagefolder/.test(facts) && /fill3\.tar/.test(facts), `report: ${facts}`);
  await page.locator(`tr[data-dataset="${datasetId}"]`).waitFor();
  await shot('02-dataset-report');
});

await test('a broken archive is refused with the server\'s reason', async () => {
  await page.setInputFiles('#archive', broken);
  await page.click('main form button[type=submit]');
  await page.locator('main h3', { hasText: 'notes.tar was not accepted' }).waitFor();
  const msg = await text('main .notice.error');
  check(msg.length > 10 && !msg.includes('{'), `message: ${msg}`);
  await shot('03-dataset-refused');
});

await test('a job created through the API appears in the list, queued at position 1', async () => {
  const r = await apiCall('POST', '/v1/jobs', { pretrained_model_name_or_path: 'tiny-sd', dataset: datasetId, max_train_steps: 5 });
  check(r.status === 202, `POST /v1/jobs: ${r.status} ${JSON.stringify(r.body)}`);
  jobA = r.body.id;
  await page.click('nav >> text=Jobs');
  const row = page.locator(`tr[data-job="${jobA}"]`);
  await row.waitFor();
  const cells = await row.locator('td').allInnerTexts();
  check(cells[1] === 'train' && cells[2] === 'queued' && cells[4] === '1', `row: ${cells.join(' | ')}`);
  await shot('04-jobs-list');
});

await test('the job page cancels a queued job', async () => {
  await page.click(`a[href="#/jobs/${jobA}"]`);
  await page.locator('main h1', { hasText: jobA }).waitFor();
  await page.locator('main .notice', { hasText: 'position 1' }).waitFor();
  await page.click('button.danger:has-text("Cancel job")');
  await page.locator('.facts .badge[data-state=cancelled]').waitFor();
  await page.locator('.log li[data-event=state]', { hasText: 'cancelled' }).waitFor();
  check(await page.locator('button.danger').isHidden(), 'the cancel button is still shown');
  const r = await apiCall('GET', `/v1/jobs/${jobA}`);
  check(r.body.state === 'cancelled', `the API says ${r.body.state}`);
  await shot('05-job-cancelled');
});

await test('the training form marks the field the server refused', async () => {
  await page.click('nav >> text=Train');
  await page.locator('main h1', { hasText: 'Train a ControlNet' }).waitFor();
  check(await page.inputValue('#f-dataset') === datasetId, 'the newest dataset is not preselected');
  check(await page.inputValue('#f-model') === 'tiny-sd', 'the base model is not preselected');
  check(await page.inputValue('#f-gradient_accumulation_steps') === '1' &&
    await page.textContent('#f-gradient_accumulation_steps-range') === '1–64',
    'the accumulation field does not follow the table');
  check(await page.textContent('#f-learning_rate-range') === '(0, 1]' &&
    await page.textContent('#f-adam_beta1-range') === '[0, 1)',
    `open ends shown as allowed: ${await page.textContent('#f-learning_rate-range')}, ` +
    `${await page.textContent('#f-adam_beta1-range')}`);
  await page.fill('#f-resolution', '100');
  await page.click('main form button[type=submit]');
  await page.locator('#f-resolution[aria-invalid=true]').waitFor();
  const msg = await text('.field-error');
  check(/resolution/i.test(msg) && /8/.test(msg), `field message: ${msg}`);
  await shot('06-train-refused');
});

await test('the training form starts a job and opens its page', async () => {
  await page.fill('#f-resolution', '64');
  await page.fill('#f-max_train_steps', String(STEPS));
  await page.fill('#f-validation_prompt', 'a red circle\na blue circle');
  await page.click('main form button[type=submit]');
  await page.waitForURL(/#\/jobs\/j_[0-9a-f]{32}$/);
  jobB = page.url().split('/').pop();
  const r = await apiCall('GET', `/v1/jobs/${jobB}`);
  check(r.body.state === 'queued' && r.body.spec.resolution === 64 && r.body.spec.max_train_steps === STEPS &&
        r.body.spec.validation_prompt.length === 2, `the API stored ${JSON.stringify(r.body.spec)}`);
  await page.locator('.facts .badge[data-state=queued]').waitFor();
  await page.locator('main', { hasText: 'No training steps reported yet' }).waitFor();
});

await test('the job page follows the job live to succeeded with its curves, image and files', async () => {
  const worker = spawn(join(BUILD, 'tests', 'tool_worker'), [data, String(STEPS), String(STEP_MS)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  worker.stdout.on('data', (b) => { out += b; });
  worker.stderr.on('data', (b) => { err += b; });
  const exited = new Promise((r) => worker.on('exit', r));
  await page.locator('.facts .badge[data-state=running]').waitFor();
  await page.locator('.facts progress').waitFor();
  await shot('07-job-running');
  const code = await exited;
  check(code === 0, `tool_worker exited ${code}: ${err}`);
  check(out.startsWith(`claimed ${jobB}`), `the worker claimed another job: ${out.split('\n')[0]}`);
  await page.locator('.facts .badge[data-state=succeeded]').waitFor();
  const steps = out.split('\n').filter((l) => l.startsWith('step ')).map((l) => l.split(' '));
  const lastLoss = Number(steps[steps.length - 1][3]);
  const loss = page.locator('figure.chart[data-metric=loss] figcaption');
  await page.locator(`figure.chart[data-metric=loss] figcaption:has-text("${STEPS} points")`).waitFor();
  const caption = await loss.innerText();
  check(caption.includes(`latest ${Number(lastLoss.toPrecision(4))} at step ${STEPS}`), `loss caption: ${caption}`);
  const lr = await page.locator('figure.chart[data-metric="learning rate"] figcaption').innerText();
  check(lr.includes(`${STEPS} points`), `lr caption: ${lr}`);
  await page.locator('.log li[data-event=checkpoint]', { hasText: `step ${STEPS / 2}` }).waitFor();
  await page.locator('.facts', { hasText: `step ${STEPS / 2}` }).waitFor();
  const img = page.locator('.gallery img');
  await img.waitFor();
  await page.waitForFunction(() => { const i = document.querySelector('.gallery img'); return i && i.complete && i.naturalWidth > 0; });
  const size = await img.evaluate((i) => [i.naturalWidth, i.naturalHeight]);
  check(size[0] === 64 && size[1] === 64, `validation image is ${size}`);
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('button:has-text("Download worker_notes.txt")')]);
  const got = readFileSync(await dl.path(), 'utf8');
  check(got === `written by tests/tool_worker for job ${jobB}\n`, `downloaded: ${got}`);
  await page.locator('main [role=status]', { hasText: 'ended' }).waitFor();
  await shot('08-job-succeeded');
});

await test('the list filters by state and pages with cursors', async () => {
  for (let i = 0; i < 21; i++) {
    const r = await apiCall('POST', '/v1/jobs', { pretrained_model_name_or_path: 'tiny-sd', dataset: datasetId });
    check(r.status === 202, `job ${i}: ${r.status}`);
  }
  await page.goto(`${base}/#/jobs?state=cancelled`);
  await page.locator(`tr[data-job="${jobA}"]`).waitFor();
  check(await page.locator('tbody tr').count() === 1, 'state=cancelled shows other jobs');
  check(await page.inputValue('select[name=state]') === 'cancelled', 'the filter does not show its value');
  await page.selectOption('select[name=state]', 'queued');
  await page.waitForURL(/state=queued/);
  await page.locator('a[rel=next]').waitFor();
  await page.waitForFunction(() => document.querySelectorAll('tbody tr').length === 20);
  await page.click('a[rel=next]');
  await page.waitForFunction(() => document.querySelectorAll('tbody tr').length === 1);
  check(await page.locator('a[rel=next]').count() === 0, 'a next page after the last');
  await page.click('a[rel=prev]');
  await page.waitForFunction(() => document.querySelectorAll('tbody tr').length === 20);
  await page.selectOption('select[name=state]', '');
  await page.waitForFunction(() => document.querySelectorAll('tbody tr').length === 20);
  await shot('09-jobs-filtered');
});

await test('a Parquet file shows its report, columns and first samples; the train form names its columns', async () => {
  // write.mjs fill50k: six 512x512 rows; row i is a disc of colour names[i % 6]
  // at (128 + 40i, 384 - 30i) on names[(i + 2) % 6], its conditioning image a
  // white ring on black.
  const gen = join(dir, 'parquet');
  execFileSync('sh', ['tests/tools/parquet_writer/generate.sh', 'fill50k', gen], { stdio: 'ignore' });
  const file = join(gen, 'repo', 'data', 'train-00000-of-00001.parquet');
  const names = ['red', 'blue', 'cyan', 'brown', 'green', 'yellow'];
  const rgb = { red: [220, 20, 20], blue: [20, 40, 220], cyan: [0, 200, 200], brown: [120, 70, 20],
    green: [30, 160, 60], yellow: [230, 210, 40] };
  await page.click('nav >> text=Datasets');
  await page.locator('main h1', { hasText: 'Datasets' }).waitFor();
  await page.setInputFiles('#archive', file);
  await page.click('main form button[type=submit]');
  const report = page.locator('.report', { hasText: 'Parquet' });
  await report.waitFor();
  const id = await report.getAttribute('data-dataset');
  const facts = await report.innerText();
  check(/Samples\s+6/.test(facts) && /Columns\s+image, conditioning_image, text/.test(facts) &&
    /train-00000-of-00001\.parquet/.test(facts), `report: ${facts}`);
  const figures = page.locator(`[data-samples="${id}"] figure`);
  await page.waitForFunction((sel) => {
    const imgs = [...document.querySelectorAll(sel)];
    return imgs.length === 12 && imgs.every((i) => i.complete && i.naturalWidth > 0);
  }, `[data-samples="${id}"] img`);
  check(await figures.count() === 6, `${await figures.count()} previews`);
  for (let i = 0; i < 6; i++) {
    const fg = names[i % 6], bg = names[(i + 2) % 6];
    const fig = figures.nth(i);
    const caption = await fig.locator('figcaption').innerText();
    check(caption.startsWith(`${fg} circle with ${bg} background`), `sample ${i} caption: ${caption}`);
    // The pixels the browser decoded: the disc's centre and a corner of the
    // target, the ring's centre (black) of the conditioning image.
    const px = await fig.locator('img').evaluateAll((imgs, [cx, cy]) => imgs.map((img) => {
      const c = document.createElement('canvas');
      c.width = img.naturalWidth, c.height = img.naturalHeight;
      const g = c.getContext('2d');
      g.drawImage(img, 0, 0);
      const at = (x, y) => [...g.getImageData(x, y, 1, 1).data.slice(0, 3)];
      return { size: [c.width, c.height], centre: at(cx, cy), corner: at(2, 2) };
    }), [128 + 40 * i, 384 - 30 * i]);
    const same = (a, b) => a.every((v, k) => v === b[k]);
    check(same(px[0].size, [512, 512]) && same(px[0].centre, rgb[fg]) && same(px[0].corner, rgb[bg]) &&
      same(px[1].centre, [0, 0, 0]), `sample ${i} pixels: ${JSON.stringify(px)}`);
  }
  await shot('10-dataset-parquet');
  // The list links to the preview; the train form offers the dataset's columns.
  await page.goto(`${base}/#/datasets?id=${id}`);
  await page.locator(`main > div [data-samples="${id}"] figure`).first().waitFor();
  await page.goto(`${base}/#/train?dataset=${id}`);
  await page.locator('#columns:not([hidden])').waitFor();
  const offered = await page.locator('#ds-columns option').evaluateAll((o) => o.map((x) => x.value));
  check(offered.join() === 'image,conditioning_image,text', `columns offered: ${offered}`);
  await page.fill('#f-resolution', '64');
  await page.fill('#f-caption_column', 'text');
  await page.click('main form button[type=submit]');
  await page.waitForURL(/#\/jobs\/j_[0-9a-f]{32}$/);
  const r = await apiCall('GET', `/v1/jobs/${page.url().split('/').pop()}`);
  check(r.body.spec.dataset === id && r.body.spec.caption_column === 'text' && !('image_column' in r.body.spec),
    `the API stored ${JSON.stringify(r.body.spec)}`);
});

await test('the generate page sends its form; a server without an engine answers why', async () => {
  // The server runs with --device none (the stand-in worker drives jobs), so a
  // synchronous generate is refused with the server's own message.
  await page.click('nav >> text=Generate');
  await page.locator('main form.generate').waitFor();
  // the form's limits and defaults are the server's option table (via openapi.yaml)
  check(await page.getAttribute('#g-steps', 'max') === '1000' && await page.inputValue('#g-steps') === '20',
    'the steps field does not follow the table');
  check(await page.getAttribute('#g-width', 'max') === '1024', 'the width field does not show the HTTP cap');
  check(await page.locator('#g-scheduler option[value=ddpm]').count() === 1, 'no ddpm in the scheduler list');
  await page.fill('#g-prompt', 'a red circle');
  await page.click('main form.generate button[type=submit]');
  await page.locator('main .notice', { hasText: 'runs no engine' }).waitFor();
  await shot('11-generate-no-engine');
});

// The pixels of an image (a PNG's base64, or an <img> on the page) as the
// browser decodes them, without colour conversion.
const decodeInPage = (selOrB64) => page.evaluate(async (arg) => {
  let bmp;
  const opts = { colorSpaceConversion: 'none', premultiplyAlpha: 'none' };
  if (arg.startsWith('#')) bmp = await createImageBitmap(document.querySelector(arg), opts);
  else {
    const bytes = Uint8Array.from(atob(arg), (ch) => ch.charCodeAt(0));
    bmp = await createImageBitmap(new Blob([bytes], { type: 'image/png' }), opts);
  }
  const c = new OffscreenCanvas(bmp.width, bmp.height);
  const ctx = c.getContext('2d');
  ctx.drawImage(bmp, 0, 0);
  return { w: bmp.width, h: bmp.height, px: Array.from(ctx.getImageData(0, 0, bmp.width, bmp.height).data) };
}, selOrB64);

await test('the generate page shows the control image a preprocessor makes before generating', async () => {
  await page.locator('#g-preprocess').waitFor();
  check(await page.locator('#g-preprocess option[value=scribble_xdog]').count() === 1, 'no scribble_xdog in the preprocessor list');
  await page.setInputFiles('#g-file', picture);
  await page.waitForFunction(() => {
    const d = document.querySelector('canvas.control').getContext('2d').getImageData(0, 0, 512, 512).data;
    return d[0] !== 0 || d[1] !== 0;
  });
  await page.selectOption('#g-preprocess', 'invert');
  const [req] = await Promise.all([
    page.waitForRequest((r) => r.url().endsWith('/v1/preprocess') && r.method() === 'POST'),
    page.click('#g-preview-btn')]);
  await page.waitForFunction(() => { const i = document.querySelector('#g-preview'); return !i.hidden && i.complete && i.naturalWidth > 0; });
  const sent = JSON.parse(req.postData());
  check(sent.preprocess === 'invert' && typeof sent.image === 'string', `the preview sent ${Object.keys(sent)}`);
  const r = await fetch(base + '/v1/preprocess', {
    method: 'POST', body: JSON.stringify(sent),
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json', Accept: 'application/json' },
  });
  const answer = await r.json();
  check(r.status === 200 && answer.module === 'invert (from white bg & black line)', `POST /v1/preprocess: ${r.status}`);
  const shown = await decodeInPage('#g-preview'), want = await decodeInPage(answer.image), src = await decodeInPage(sent.image);
  check(shown.w === want.w && shown.h === want.h && shown.w === 512, `preview ${shown.w}x${shown.h}, answer ${want.w}x${want.h}`);
  let diff = 0, notInverted = 0;
  for (let i = 0; i < shown.px.length; i++) {
    diff += shown.px[i] !== want.px[i];
    if (i % 4 !== 3) notInverted += shown.px[i] !== 255 - src.px[i];
  }
  check(diff === 0, `${diff} preview values differ from the server's answer`);
  check(notInverted === 0, `${notInverted} preview values are not 255 - the control image's`);
  // another preprocessor's parameters come from the server, and go into the generate request
  await page.selectOption('#g-preprocess', 'threshold');
  check(await page.getAttribute('#g-threshold_a', 'max') === '255' && await page.inputValue('#g-threshold_a') === '127',
    'threshold_a does not show the server\'s range and default');
  await page.fill('#g-threshold_a', '90');
  const [gen] = await Promise.all([
    page.waitForRequest((q) => q.url().endsWith('/v1/generate') && q.method() === 'POST'),
    page.click('main form.generate button[type=submit]')]);
  const body = JSON.parse(gen.postData());
  check(body.preprocess === 'threshold' && body.threshold_a === 90, `generate sent preprocess ${body.preprocess} ${body.threshold_a}`);
  for (const k of ['init_image', 'strength', 'mask_image', 'padding_mask_crop'])
    check(!(k in body), `${k} was sent without an init image`);
  await shot('11b-generate-preview');
});

await test('the img2img inputs send an init image, its strength and a painted black-and-white mask of its size', async () => {
  await page.setInputFiles('#g-init', initPicture);
  await page.locator('.mask-stack:not([hidden])').waitFor();
  await page.waitForFunction(() => document.querySelector('#g-mask').width === 96);
  await page.locator('#g-mask').scrollIntoViewIfNeeded();
  const box = await page.locator('#g-mask').boundingBox();
  await page.mouse.move(box.x + box.width * 0.2, box.y + box.height * 0.3);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.6, { steps: 8 });
  await page.mouse.move(box.x + box.width * 0.7, box.y + box.height * 0.4, { steps: 8 });
  await page.mouse.up();
  await page.fill('#g-padding_mask_crop', '8');
  const [gen] = await Promise.all([
    page.waitForRequest((q) => q.url().endsWith('/v1/generate') && q.method() === 'POST'),
    page.click('main form.generate button[type=submit]')]);
  const body = JSON.parse(gen.postData());
  check(typeof body.init_image === 'string' && body.strength === 0.8 && typeof body.mask_image === 'string' &&
    body.padding_mask_crop === 8, `generate sent ${Object.keys(body).join(', ')}`);
  const init = await decodeInPage(body.init_image), mask = await decodeInPage(body.mask_image);
  check(init.w === 96 && init.h === 64, `init image ${init.w}x${init.h}`);
  check(mask.w === 96 && mask.h === 64, `mask ${mask.w}x${mask.h}, not the init image's size`);
  let white = 0, black = 0, other = 0;
  for (let i = 0; i < mask.px.length; i += 4) {
    const [r, g, b, a] = mask.px.slice(i, i + 4);
    if (r === 255 && g === 255 && b === 255 && a === 255) white++;
    else if (r === 0 && g === 0 && b === 0 && a === 255) black++;
    else other++;
  }
  check(other === 0 && white > 50 && black > 50, `mask: ${white} white, ${black} black, ${other} other pixels`);
  await page.locator('main .notice').first().waitFor(); // the server's answer (no engine, or the field it lacks)
  await shot('11c-generate-img2img');
});

await test('the models page lists the base model', async () => {
  await page.click('nav >> text=Models');
  await page.locator('li[data-model="tiny-sd"]').waitFor();
  await shot('12-models');
});

await test('a narrow screen stacks the layout without horizontal scrolling', async () => {
  await page.setViewportSize({ width: 390, height: 800 });
  await page.click('nav >> text=Jobs');
  await page.locator('tbody tr').first().waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the page is ${overflow}px wider than the screen`);
  await shot('13-jobs-narrow');
  await page.setViewportSize({ width: 1280, height: 900 });
});

await test('sign-out forgets the token and asks again', async () => {
  await page.click('#signout');
  await page.locator('#login[open]').waitFor();
  check(await page.evaluate(() => sessionStorage.getItem('cnet.token')) === null, 'the token is still kept');
});

await test('no page violated the CSP or threw', async () => {
  check(problems.length === 0, problems.join('; '));
});

await context.close();
server.proc.kill('SIGTERM');
rmSync(profile, { recursive: true, force: true });
rmSync(dir, { recursive: true, force: true });
console.log(`web_test: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
