// Browser tests of hvdeploy-web (node:test + playwright-core driving Debian's
// headless Chromium) against a real worker, broker and database started by
// tests/web/run.sh. Each page's screenshot lands in $WEB_LOGS/web-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { randomUUID, randomBytes } from 'node:crypto';

const { chromium } = await import(process.env.PLAYWRIGHT);
const WEB = process.env.WEB_URL;       // actions on, password WEB_PASSWORD
const RO = process.env.WEB_RO_URL;     // read-only, tight connection limits
const PASSWORD = process.env.WEB_PASSWORD;
const LOGS = process.env.WEB_LOGS;
const CTL = process.env.HVDEPLOYCTL;
const JOBS = process.env.JOBS_DIR;
const SECRET = 'Web-Test-Pw-' + randomBytes(6).toString('hex');

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const dirs = [];
let withPassword, withoutPassword;

async function launch(credentials) {
  const dir = mkdtempSync(join(tmpdir(), 'hvd-web-chromium-'));
  dirs.push(dir);
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: '/usr/bin/chromium', headless: true, args: ARGS, // the fresh dir is passed as --user-data-dir by playwright
    httpCredentials: credentials, viewport: { width: 1280, height: 900 },
  });
  ctx.setDefaultTimeout(20000);
  return ctx;
}

before(async () => {
  withPassword = await launch({ username: 'operator', password: PASSWORD });
  withoutPassword = await launch(undefined);
});

after(async () => {
  await withPassword?.close();
  await withoutPassword?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function ctl(...args) {
  const r = spawnSync(CTL, args, { encoding: 'utf8', env: process.env, timeout: 60000 });
  return { rc: r.status, out: r.stdout, err: r.stderr };
}

// Submits a job from tests/data/jobs/<file> with a fresh id, VM name and host; returns its id.
function submit(file, host, edit) {
  const job = JSON.parse(readFileSync(join(JOBS, file), 'utf8'));
  job.job_id = randomUUID();
  job.request.target_host = host;
  job.request.vm_spec.vm_name = `web-${job.job_id.slice(0, 8)}`;
  if (job.request.guest_config) job.request.guest_config.guest_la_pw = SECRET;
  if (job.options) job.options.on_failure = 'keep';
  if (edit) edit(job);
  const path = join(tmpdir(), `hvd-web-job-${job.job_id}.json`);
  writeFileSync(path, JSON.stringify(job));
  const r = ctl('submit', path, '--no-wait');
  rmSync(path);
  assert.equal(r.rc, 0, `submit: ${r.err}`);
  return job.job_id;
}

function status(id) {
  const r = ctl('status', id, '--output', 'json');
  return JSON.parse(r.out);
}

async function waitFor(what, fn, ms = 30000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function shot(page, name) {
  await page.screenshot({ path: join(LOGS, `web-${name}.png`), fullPage: true });
}

test('the job list shows submitted jobs', async () => {
  const a = submit('minimal.json', 'hv-list-1.lab');
  const b = submit('linux-static-ip.json', 'hv-list-2.lab');
  const page = await withPassword.newPage();
  await waitFor('both jobs listed', async () => {
    await page.goto(`${WEB}/jobs`);
    const text = await page.locator('table.jobs').textContent().catch(() => '');
    return text.includes(a) && text.includes(b);
  });
  assert.equal(await page.locator(`a[href="/jobs/${a}"]`).count(), 1);
  await page.goto(`${WEB}/jobs?q=${b.slice(0, 13)}`);
  assert.equal(await page.locator('table.jobs tbody tr').count(), 1, 'the search finds one job');
  await page.goto(`${WEB}/jobs`);
  await shot(page, 'jobs');
  await page.close();
});

test('a running job shows output lines arriving live, and a cancel from the page cancels it', async () => {
  const id = submit('full-windows.json', 'hv-live.lab');
  await waitFor('vm.create running', () => status(id).stages?.[0]?.status === 'running');
  const page = await withPassword.newPage();
  const dialogs = [];
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
  await page.goto(`${WEB}/jobs/${id}`);
  const before = await page.locator('#output .line').count();
  // more lines come without a reload
  await page.waitForFunction((n) => document.querySelectorAll('#output .line').length >= n + 3, before);
  const after = await page.locator('#output .line').count();
  assert.ok(after >= before + 3, `lines ${before} -> ${after}`);
  assert.match(await page.locator('#live').textContent(), /live/);
  // the agent's lines carry <script>: shown as text, never run
  const text = await page.locator('#output').textContent();
  assert.ok(text.includes('<script>alert("line")</script>'), 'the markup is shown as text');
  assert.equal(await page.locator('script').count(), 1, 'only app.js is a script');
  await shot(page, 'job-live');

  await page.locator('#cancel').click();
  await page.waitForURL(/done=cancel/);
  assert.match(await page.locator('#notice').textContent(), /Cancel requested/);
  await waitFor('the job cancelled', () => status(id).status === 'cancelled', 40000);
  await page.goto(`${WEB}/jobs/${id}`);
  assert.match(await page.locator('#job-status').textContent(), /cancelled/);
  assert.equal(dialogs.length, 0, 'no script ran');
  assert.ok(!(await page.content()).includes(SECRET), 'the password is masked on the page');
  await shot(page, 'job-cancelled');
  await page.close();
});

test('an action without a CSRF token, or without the password, is refused', async () => {
  const id = submit('minimal.json', 'hv-refuse.lab');
  await waitFor('vm.create running', () => status(id).stages?.[0]?.status === 'running');
  const page = await withPassword.newPage();
  await page.goto(`${WEB}/jobs/${id}`);
  const post = (body) => page.evaluate(async ([url, body]) => {
    const r = await fetch(url, { method: 'POST', body: new URLSearchParams(body), credentials: 'same-origin' });
    return { status: r.status, text: await r.text() };
  }, [`${WEB}/jobs/${id}/cancel`, body]);
  let r = await post({});
  assert.equal(r.status, 403, 'no token');
  assert.match(r.text, /CSRF token/);
  r = await post({ csrf: 'ab'.repeat(32) });
  assert.equal(r.status, 403, 'a wrong token');
  await page.close();

  // no password: the browser's cookie and its page's token, but no credentials
  const anon = await withoutPassword.newPage();
  await anon.goto(`${WEB}/jobs/${id}`);
  const token = await anon.locator('input[name=csrf]').first().getAttribute('value');
  let res = await withoutPassword.request.post(`${WEB}/jobs/${id}/cancel`, { form: { csrf: token }, maxRedirects: 0 });
  assert.equal(res.status(), 401, 'no password');
  assert.match(res.headers()['www-authenticate'] ?? '', /^Basic /);
  assert.match(await res.text(), /needs the dashboard(&#39;|')s password/);
  await anon.setContent(await res.text()); // what a browser shows
  await shot(anon, 'refused');
  await anon.close();
  const { request } = await import(process.env.PLAYWRIGHT);
  const wrong = await request.newContext({ httpCredentials: { username: 'operator', password: 'not-the-password' } });
  res = await wrong.post(`${WEB}/jobs/${id}/cancel`, { form: { csrf: token }, maxRedirects: 0 });
  assert.equal(res.status(), 401, 'a wrong password');
  await wrong.dispose();
  const s = status(id);
  assert.equal(s.cancel_requested, false, 'nothing was cancelled');

  // a read-only dashboard offers no actions and refuses them
  const ro = await withoutPassword.newPage();
  await ro.goto(`${RO}/jobs/${id}`);
  assert.equal(await ro.locator('#cancel').count(), 0);
  const r2 = await ro.evaluate(async (url) => (await fetch(url, { method: 'POST' })).status, `${RO}/jobs/${id}/cancel`);
  assert.equal(r2, 403);
  await ro.close();
});

test('a job body carrying <script> is shown as text', async () => {
  const id = submit('full-windows.json', 'hv-xss.lab', (job) => {
    job.request.nic_spec.adapter_name = '<script>alert(1)</script><img src=x onerror=alert(2)>';
    job.request.guest_config.guest_la_uid = '"><script>alert(3)</script>';
  });
  const page = await withPassword.newPage();
  const dialogs = [];
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
  await page.goto(`${WEB}/jobs/${id}`);
  const body = await page.locator('body').textContent();
  assert.ok(body.includes('<script>alert(1)</script><img src=x onerror=alert(2)>'), 'shown as text');
  assert.ok(body.includes('<script>alert(3)</script>'));
  assert.equal(await page.locator('script').count(), 1);
  assert.equal(await page.locator('img').count(), 0);
  await waitFor('the job to end', () => ['succeeded', 'failed'].includes(status(id).status), 40000);
  await page.goto(`${WEB}/jobs/${id}`);
  assert.equal(await page.locator('script').count(), 1);
  assert.equal(dialogs.length, 0);
  await shot(page, 'job');
  await page.close();
});

test('hosts and dead letters', async () => {
  // a job whose nic.create keeps failing transiently ends in the dead-letter queue
  const id = submit('full-windows.json', 'hv-dead.lab');
  await waitFor('the dead job', () => status(id).code === 'retries_exhausted', 60000);
  const busy1 = submit('minimal.json', 'hv-busy.lab');
  const busy2 = submit('minimal.json', 'hv-busy.lab');
  const page = await withPassword.newPage();
  await waitFor('a waiting job on the hosts page', async () => {
    await page.goto(`${WEB}/hosts`);
    return (await page.locator('body').textContent()).includes('host_busy');
  });
  const hosts = await page.locator('main').textContent();
  assert.ok(hosts.includes('hv-busy.lab') && hosts.includes('1 of 1'));
  assert.ok(hosts.includes(busy1) || hosts.includes(busy2));
  await shot(page, 'hosts');

  await page.goto(`${WEB}/dead`);
  assert.ok((await page.locator('table.dead').textContent()).includes(id));
  await shot(page, 'dead');
  await page.locator(`a[href="/dead/${id}"]`).click();
  assert.ok((await page.locator('main').textContent()).includes('retries_exhausted'));
  assert.ok(!(await page.content()).includes(SECRET), 'the dead letter is shown with secrets masked');
  await shot(page, 'dead-letter');
  await page.locator('#replay').click();
  await page.waitForURL(new RegExp(`/jobs/${id}\\?done=retry`));
  assert.match(await page.locator('#notice').textContent(), /resumes/);
  await page.goto(`${WEB}/dead`);
  assert.ok(!(await page.locator('main').textContent()).includes(id), 'the dead letter was removed');
  await page.close();
});

// ---- slow clients (the read-only instance: --per-ip 6 --max-connections 8 --request-timeout 3) ----

function trickle(url) {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect(Number(u.port), u.hostname);
    const t0 = Date.now();
    let timer;
    s.on('connect', () => {
      s.write('GET /jobs HTTP/1.1\r\nHost: x\r\n');
      timer = setInterval(() => s.write('X'), 500); // a header that never ends
    });
    const done = (how) => { clearInterval(timer); s.destroy(); resolve({ how, ms: Date.now() - t0 }); };
    s.on('close', () => done('closed'));
    s.on('error', () => done('error'));
    setTimeout(() => done('still open'), 15000);
  });
}

test('trickling clients cannot make the dashboard unanswerable', async () => {
  const tricklers = Array.from({ length: 6 }, () => trickle(RO));
  await new Promise((r) => setTimeout(r, 600));
  // the per-IP limit is full: one more is turned away at once
  const extra = await new Promise((resolve) => {
    const s = net.connect(Number(new URL(RO).port), '127.0.0.1');
    const t0 = Date.now();
    s.on('connect', () => s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
    let got = '';
    s.on('data', (d) => { got += d; });
    s.on('close', () => resolve({ got, ms: Date.now() - t0 }));
    s.on('error', () => resolve({ got, ms: Date.now() - t0 }));
  });
  assert.ok(!extra.got.startsWith('HTTP/1.1 200'), 'the 7th connection from one address is refused');
  const results = await Promise.all(tricklers);
  for (const r of results) {
    assert.equal(r.how, 'closed', 'the server closed the trickler');
    assert.ok(r.ms >= 2500 && r.ms < 6000, `closed after ${r.ms} ms (deadline 3 s)`);
  }
  console.log(`slow clients: 6 tricklers closed after ${Math.min(...results.map((r) => r.ms))}-` +
    `${Math.max(...results.map((r) => r.ms))} ms; the 7th refused in ${extra.ms} ms`);
  // and the dashboard answers again
  const t0 = Date.now();
  const res = await fetch(`${RO}/healthz`);
  assert.equal(res.status, 200);
  assert.ok(Date.now() - t0 < 2000);
});
