// web_ui_driver.mjs: the browser side of test_web_ui.py: scenarios driving
// Debian's /usr/bin/chromium headless through npm's playwright-core (no
// browser download). One browser for the whole run: each line on stdin is
// a scenario with its settings as JSON ({scenario, url, user, password, vm,
// shots, ...}); each answer is one JSON line on stdout, {ok, result} or
// {ok: false, error, page} (the page's text, and a screenshot
// failed-SCENARIO.png). The run ends at the end of stdin.
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '..', '..', 'web', 'package.json'));
const { chromium } = require('playwright-core');

// The scenario running now: its settings, its result, its browser contexts.
let cfg = {};
let STEP_MS = 30000;
let result = {};
let contexts = [];
let lastPage = null; // shown when a scenario fails

async function newContext(browser, options = {}) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true,
                                             viewport: { width: 1366, height: 768 }, ...options });
  contexts.push(context);
  return context;
}

async function newSession(browser, user, password) {
  const context = await newContext(browser);
  const page = await context.newPage();
  lastPage = page;
  page.setDefaultTimeout(STEP_MS);
  await page.goto(cfg.url + '/');
  await page.fill('#login-user', user);
  await page.fill('#login-password', password);
  await page.press('#login-password', 'Enter');
  await page.waitForSelector('.who');
  return { context, page };
}

const shot = (page, name) => page.screenshot({ path: join(cfg.shots, name + '.png') });

async function openVm(page, tab) {
  await page.goto(`${cfg.url}/ui/#/vm/${cfg.vm}/${tab}`);
  await page.waitForSelector('#vm-title');
}

const stateOf = (page) => page.getAttribute(`.tree a[data-vm="${cfg.vm}"]`, 'data-state');

async function waitState(page, state, ms = STEP_MS) {
  await page.waitForSelector(`.tree a[data-vm="${cfg.vm}"][data-state="${state}"]`, { timeout: ms });
}

const scenarios = {
  // The login page; a wrong password shows the API's message; the right one
  // shows the tree.
  async login(browser) {
    const context = await newContext(browser);
    const page = await context.newPage();
    lastPage = page;
    page.setDefaultTimeout(STEP_MS);
    const t0 = Date.now();
    await page.goto(cfg.url + '/');
    await page.waitForSelector('#login-user');
    result.login_page_ms = Date.now() - t0;
    result.url = page.url();
    await shot(page, 'login');
    await page.fill('#login-user', cfg.user);
    await page.fill('#login-password', 'not-the-password');
    await page.press('#login-password', 'Enter');
    result.wrong = await (await page.waitForSelector('.login .error')).textContent();
    await page.fill('#login-password', cfg.password);
    await page.press('#login-password', 'Enter');
    result.who = await (await page.waitForSelector('.who')).textContent();
    await page.waitForSelector('.tree a[href^="#/host/"]');
    await shot(page, 'overview');
  },

  // The wizard (keyboard only after the first field), then the VM's page.
  async create(browser) {
    const { page } = await newSession(browser, cfg.user, cfg.password);
    await page.click('[data-action="create"]');
    await page.waitForSelector('#vm-name');
    await page.focus('#vm-name');
    await page.keyboard.type(cfg.vm);
    await page.selectOption('#vm-image', cfg.image);
    await page.fill('#vm-vcpus', '1');
    await page.fill('#vm-memory', String(cfg.memory_mib));
    await page.selectOption('#vm-network', cfg.network);
    result.cloud_init_fields = await page.isVisible('#vm-user');
    await shot(page, 'wizard');
    await page.press('#vm-memory', 'Enter');
    await page.waitForSelector('#vm-title');
    await page.waitForSelector(`.tree a[data-vm="${cfg.vm}"]:is([data-state="defined"], [data-state="stopped"])`);
    result.state = await stateOf(page);
    result.hash = await page.evaluate(() => location.hash);
  },

  // Start from the VM's page; the state changes without a reload.
  async start(browser) {
    const { page } = await newSession(browser, cfg.user, cfg.password);
    await openVm(page, 'summary');
    await page.evaluate(() => { window.vireoNoReload = 1; });
    await page.click('[data-action="start"]');
    await waitState(page, 'running', cfg.boot_ms);
    result.no_reload = await page.evaluate(() => window.vireoNoReload === 1);
    await page.waitForSelector(`.tasks tr[data-kind="start"][data-state="succeeded"]`);
    await shot(page, 'vm-summary');
  },

  // The console tab: the boot marker, then a command and its answer.
  async console(browser) {
    const { page } = await newSession(browser, cfg.user, cfg.password);
    await openVm(page, 'console');
    await page.waitForSelector('[data-console-status="connected"]');
    const text = () => page.evaluate(() => document.querySelector('.terminal').vireoText());
    const until = async (needle, ms) => {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        if ((await text()).includes(needle)) return;
        await page.waitForTimeout(200);
      }
      throw new Error(`the console never showed '${needle}':\n${await text()}`);
    };
    await until(cfg.boot_marker, cfg.boot_ms);
    await page.click('.terminal');
    await page.keyboard.type('echo web-$((6*7))-ok\n');
    await until('web-42-ok', STEP_MS);
    result.ok = true;
    await shot(page, 'vm-console');
  },

  // The graphs tab: every chart has points (the VM is sampled every second).
  async graphs(browser) {
    const { page } = await newSession(browser, cfg.user, cfg.password);
    await openVm(page, 'graphs');
    await page.waitForFunction(() => {
      const c = document.querySelector('[data-chart="cpu"]');
      return c && Number(c.dataset.points) >= 2;
    }, null, { timeout: 2 * STEP_MS });
    result.points = await page.$$eval('[data-chart]', (els) =>
      Object.fromEntries(els.map((e) => [e.dataset.chart, Number(e.dataset.points)])));
    result.canvases = await page.$$eval('.chart canvas', (els) => els.length);
    await shot(page, 'vm-graphs');
    await page.check('input[name="range"][value="1d"]');
    await page.waitForFunction(() => Number(document.querySelector('[data-chart="cpu"]').dataset.points) >= 1);
    result.day_points = await page.getAttribute('[data-chart="cpu"]', 'data-points');
  },

  // A viewer: stop is disabled; the API itself refuses the viewer's stop (403).
  async viewer(browser) {
    const { page } = await newSession(browser, cfg.viewer, cfg.viewer_password);
    await openVm(page, 'summary');
    result.stop_disabled = await page.isDisabled('[data-action="stop"]');
    result.start_disabled = await page.isDisabled('[data-action="start"]');
    result.delete_disabled = await page.isDisabled('[data-action="delete"]');
    result.api = await page.evaluate(async (vm) => {
      const r = await fetch(`/v1/vms/${vm}/stop`, {
        method: 'POST', headers: { 'Content-Type': 'application/json',
                                   'X-CSRF-Token': sessionStorage.getItem('vireo.csrf') },
        body: '{}' });
      return { status: r.status, body: await r.json() };
    }, cfg.vm);
    await shot(page, 'vm-viewer');
  },

  // Two sessions: what the second does (pause, resume) shows in the first,
  // live, without a reload.
  async live(browser) {
    const a = await newSession(browser, cfg.user, cfg.password);
    const b = await newSession(browser, cfg.user, cfg.password);
    await openVm(a.page, 'summary');
    await a.page.evaluate(() => { window.vireoNoReload = 1; });
    await openVm(b.page, 'summary');
    await b.page.click('[data-action="pause"]');
    const t0 = Date.now();
    await waitState(a.page, 'paused');
    result.seen_ms = Date.now() - t0;
    result.summary = await a.page.textContent('[data-field="state"]');
    await b.page.click('[data-action="resume"]');
    await waitState(a.page, 'running');
    result.no_reload = await a.page.evaluate(() => window.vireoNoReload === 1);
  },

  // A failed action (start a running VM): the API's message is shown.
  async failure(browser) {
    const { page } = await newSession(browser, cfg.user, cfg.password);
    await openVm(page, 'summary');
    await page.click('[data-action="start"]');
    result.shown = await (await page.waitForSelector('[data-error]')).textContent();
    await shot(page, 'vm-error');
  },

  // Delete with its confirmation (the VM must be stopped).
  async delete(browser) {
    const { page } = await newSession(browser, cfg.user, cfg.password);
    await openVm(page, 'summary');
    await page.click('[data-action="delete"]');
    await page.waitForSelector('[data-action="confirm-delete"]');
    result.asked = await page.textContent('#confirm-text');
    await page.click('[data-action="confirm-delete"]');
    await page.waitForSelector(`.tree a[data-vm="${cfg.vm}"]`, { state: 'detached' });
    result.gone = true;
  },

  // First load: bytes over the wire and the first paint, with a cold cache.
  async firstload(browser) {
    const context = await newContext(browser);
    const page = await context.newPage();
    let bytes = 0;
    const client = await context.newCDPSession(page);
    await client.send('Network.enable');
    client.on('Network.loadingFinished', (e) => { bytes += e.encodedDataLength; });
    await page.goto(cfg.url + '/ui/');
    await page.waitForSelector('#login-user');
    result.first_paint_ms = await page.evaluate(() => {
      const p = performance.getEntriesByType('paint').find((e) => e.name === 'first-contentful-paint');
      return p ? p.startTime : null;
    });
    result.transferred_bytes = bytes;
  },
};

async function run(browser, line) {
  cfg = JSON.parse(line);
  STEP_MS = cfg.timeout_ms || 30000;
  result = {};
  contexts = [];
  lastPage = null;
  const answer = { ok: true };
  try {
    await scenarios[cfg.scenario](browser);
    answer.result = result;
  } catch (e) {
    answer.ok = false;
    answer.error = `${cfg.scenario}: ${e.stack || e}`;
    if (lastPage) {
      await shot(lastPage, `failed-${cfg.scenario}`).catch(() => {});
      answer.page = await lastPage.evaluate(() => document.body.innerText).catch(() => '');
    }
  }
  for (const c of contexts) await c.close().catch(() => {});
  process.stdout.write(JSON.stringify(answer) + '\n');
}

const browser = await chromium.launch({
  executablePath: process.env.VIREO_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  headless: true,
});
try {
  for await (const line of createInterface({ input: process.stdin }))
    if (line.trim()) await run(browser, line);
} finally {
  await browser.close();
}
