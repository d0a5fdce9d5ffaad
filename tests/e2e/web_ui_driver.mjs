// web_ui_driver.mjs: the browser side of test_web_ui.py: scenarios driving
// Debian's /usr/bin/chromium headless through npm's playwright-core (no
// browser download), or, with VIREO_BROWSER=firefox, Debian's firefox-esr
// through web_ui_firefox.mjs (puppeteer-core over WebDriver BiDi, behind
// the Playwright calls the scenarios make; test_web_firefox.py). One
// browser for the whole run: each line on stdin is
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
const FIREFOX = process.env.VIREO_BROWSER === 'firefox';

// The scenario running now: its settings, its result, its browser contexts.
let cfg = {};
let STEP_MS = 30000;
let result = {};
let contexts = [];
let lastPage = null; // shown when a scenario fails

const CONTEXT_OPTIONS = { ignoreHTTPSErrors: true, viewport: { width: 1366, height: 768 } };

async function newContext(browser, options = {}) {
  const context = await browser.newContext({ ...CONTEXT_OPTIONS, ...options });
  contexts.push(context);
  return context;
}

async function newSession(browser, user, password, { kept = false } = {}) {
  const context = kept ? await browser.newContext(CONTEXT_OPTIONS) : await newContext(browser);
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

// The admin's session, kept from one scenario to the next: a new browser
// context and login per scenario cost a renderer process and a cold load
// of the whole app each. Each scenario starts on the overview (a change of
// the URL's hash: the app stays loaded, its live updates keep it current).
// The scenarios about sessions make their own: login, firstload (a cold
// cache), viewer, the second session of live, the operator of backups, the
// project user of project_objects. A
// failed scenario ends it: the next one logs in again.
let adminSession = null;

async function adminPage(browser) {
  if (!adminSession) adminSession = await newSession(browser, cfg.user, cfg.password, { kept: true });
  const { page } = adminSession;
  lastPage = page;
  page.setDefaultTimeout(STEP_MS);
  await page.goto(cfg.url + '/ui/#/');
  await page.waitForSelector('.who');
  return adminSession;
}

async function endAdminSession() {
  if (adminSession) await adminSession.context.close().catch(() => {});
  adminSession = null;
}

// The pictures of the pages. With VIREO_WEB_SHOTS=1, every page as PNG
// for docs/web.md (docs/images/). Without it (make check), the main pages
// only, as JPEG (cheaper to encode than PNG), kept as the run's artefacts
// in BUILD/web-ui/. The ones a test checks (shotMasked) and the page of a
// failed scenario are always taken.
const DOC_SHOTS = process.env.VIREO_WEB_SHOTS === '1';
const MAIN_PAGES = new Set(['overview', 'vm-summary', 'vm-console', 'vm-graphs', 'admin-users',
                            'web-host', 'web-cluster']);
// Firefox's pictures are named firefox-NAME.
const shotPath = (name, ext) => join(cfg.shots, (FIREFOX ? 'firefox-' : '') + name + ext);
const saveShot = (page, name) => page.screenshot({ path: shotPath(name, '.png') });
const shot = (page, name) => (DOC_SHOTS ? saveShot(page, name)
  : MAIN_PAGES.has(name)
    ? page.screenshot({ path: shotPath(name, '.jpg'), type: 'jpeg', quality: 70 })
    : Promise.resolve());

// A screenshot with what `selector` shows painted over (a secret must not
// reach BUILD/web-ui/ nor docs/images/); answers how many colours the
// picture has inside that element's box (1: hidden).
async function shotMasked(page, name, selector) {
  const box = await page.locator(selector).boundingBox();
  const png = await page.screenshot({ path: shotPath(name, '.png'),
                                      mask: [page.locator(selector)], maskColor: '#6b7680' });
  return page.evaluate(async ({ b64, box }) => {
    // An <img> (img-src data: is allowed; a fetch of it is not, connect-src).
    const img = new Image();
    img.src = `data:image/png;base64,${b64}`;
    await img.decode();
    const bitmap = await createImageBitmap(img);
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const ctx = canvas.getContext('2d');
    ctx.drawImage(bitmap, 0, 0);
    const inset = 2;
    const data = ctx.getImageData(Math.ceil(box.x) + inset, Math.ceil(box.y) + inset,
                                  Math.floor(box.width) - 2 * inset, Math.floor(box.height) - 2 * inset).data;
    const colours = new Set();
    for (let i = 0; i < data.length; i += 4) colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
    return colours.size;
  }, { b64: png.toString('base64'), box });
}

async function openVm(page, tab) {
  await page.goto(`${cfg.url}/ui/#/vm/${cfg.vm}/${tab}`);
  await page.waitForSelector('#vm-title');
}

// A row's delete asked twice (ConfirmButton: ACTION, then confirm-ACTION);
// the row leaves the table.
async function deleteRow(page, row, action) {
  await page.click(`${row} [data-action="${action}"]`);
  await page.click(`${row} [data-action="confirm-${action}"]`);
  await page.waitForSelector(row, { state: 'detached' });
}

const stateOf = (page) => page.getAttribute(`.tree a[data-vm="${cfg.vm}"]`, 'data-state');

async function waitState(page, state, ms = STEP_MS) {
  await page.waitForSelector(`.tree a[data-vm="${cfg.vm}"][data-state="${state}"]`, { timeout: ms });
}

// driver_calls' page: a select whose third option comes 2 s after the
// load, a row hidden but in the page, a box its click leaves unchecked, a
// field that notes what its input events said.
const DRIVER_CALLS_PAGE = `<select id="pick"><option value="a">A</option><option value="b">B</option></select>
<table><tr id="hidden-row" style="display: none"><td>hidden</td></tr></table>
<input type="checkbox" id="stuck" onclick="return false">
<input id="typed" value="old" oninput="this.dataset.seen = this.value">
<ul><li>one</li><li>two</li><li>Two  words here</li></ul>
<script>setTimeout(() => document.querySelector('#pick').append(new Option('Late', 'late')), 2000);</script>`;

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
    const { page } = await adminPage(browser);
    await page.click('[data-action="create"]');
    await page.waitForSelector('#vm-name');
    await page.focus('#vm-name');
    await page.keyboard.type(cfg.vm);
    await page.selectOption('#vm-image', cfg.image);
    await page.fill('#vm-vcpus', '1');
    await page.fill('#vm-memory', String(cfg.memory_mib));
    await page.selectOption('#vm-network', cfg.network);
    if (cfg.mac) await page.fill('#vm-mac', cfg.mac);
    await page.selectOption('#vm-display', cfg.display);
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
    const { page } = await adminPage(browser);
    await openVm(page, 'summary');
    await page.evaluate(() => { window.vireoNoReload = 1; });
    await page.click('[data-action="start"]');
    await waitState(page, 'running', cfg.boot_ms);
    result.no_reload = await page.evaluate(() => window.vireoNoReload === 1);
    await page.waitForSelector(`.tasks tr[data-kind="start"][data-state="succeeded"]`);
    // The uid its QEMU runs as (the fake driver's VMs have none).
    result.qemu_uid = await page.waitForSelector('[data-field="qemu-uid"]', { timeout: 10000 })
      .then((el) => el.textContent(), () => null);
    await shot(page, 'vm-summary');
  },

  // The console tab: the boot marker, then a command and its answer.
  async console(browser) {
    const { page } = await adminPage(browser);
    await openVm(page, 'console');
    await page.waitForSelector('[data-console-status="connected"]');
    const text = () => page.evaluate(() => document.querySelector('.terminal').vireoText());
    // Looked for in the page (no round trip per look), 4 times a second.
    const until = async (needle, ms) => {
      await page.waitForFunction((n) => document.querySelector('.terminal').vireoText().includes(n),
                                 needle, { polling: 250, timeout: ms })
        .catch(async () => { throw new Error(`the console never showed '${needle}':\n${await text()}`); });
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
    const { page } = await adminPage(browser);
    await openVm(page, 'graphs');
    // Polled 4 times a second, not on every animation frame (the default).
    await page.waitForFunction(() => {
      const c = document.querySelector('[data-chart="cpu"]');
      return c && Number(c.dataset.points) >= 2;
    }, null, { polling: 250, timeout: 2 * STEP_MS });
    result.points = await page.$$eval('[data-chart]', (els) =>
      Object.fromEntries(els.map((e) => [e.dataset.chart, Number(e.dataset.points)])));
    result.canvases = await page.$$eval('.chart canvas', (els) => els.length);
    await shot(page, 'vm-graphs');
    await page.check('input[name="range"][value="1d"]');
    await page.waitForFunction(() => Number(document.querySelector('[data-chart="cpu"]').dataset.points) >= 1,
                               null, { polling: 250 });
    result.day_points = await page.getAttribute('[data-chart="cpu"]', 'data-points');
  },

  // A viewer: stop is disabled; the API itself refuses the viewer's stop (403).
  async viewer(browser) {
    const { page } = await newSession(browser, cfg.viewer, cfg.viewer_password);
    await openVm(page, 'summary');
    result.stop_disabled = await page.isDisabled('[data-action="stop"]');
    result.start_disabled = await page.isDisabled('[data-action="start"]');
    result.delete_disabled = await page.isDisabled('[data-action="delete"]');
    result.clone_disabled = await page.isDisabled('[data-action="clone"]');
    result.api = await page.evaluate(async (vm) => {
      const r = await fetch(`/v1/vms/${vm}/stop`, {
        method: 'POST', headers: { 'Content-Type': 'application/json',
                                   'X-CSRF-Token': sessionStorage.getItem('vireo.csrf') },
        body: '{}' });
      return { status: r.status, body: await r.json() };
    }, cfg.vm);
    await shot(page, 'vm-viewer');
    await openVm(page, 'hardware');
    await page.waitForSelector('[data-cdrom]');
    result.cdrom_disabled = await page.$$eval('[data-action^="cdrom-"], [data-action="start-from-cdrom"]',
                                              (els) => els.map((e) => [e.dataset.action, e.disabled]));
    // No admin pages for a viewer: no links, the page says so, the API
    // refuses the list of users (403).
    result.admin_links = await page.$$eval('[data-admin]', (els) => els.length);
    await page.goto(`${cfg.url}/ui/#/admin/users`);
    result.admin_page = await (await page.waitForSelector('.page .note')).textContent();
    result.users_api = await page.evaluate(async () => (await fetch('/v1/users')).status);
  },

  // A standalone host's page (reached from the cluster page, which says the
  // host is standalone): HA's restart limit (the cluster page's form) follows a change made elsewhere (a PATCH as another admin's) without a
  // reload; while the admin edits, the typed number stays, the page says the
  // stored ones changed, and Save sends only the number typed. Its row
  // style (.inline-form) is there. A viewer's form is read-only.
  async host_ha(browser) {
    const { page } = await adminPage(browser);
    await page.goto(`${cfg.url}/ui/#/cluster`);
    await page.click('[data-standalone] a');
    await page.waitForSelector('input[name="ha-max-restarts"]');
    result.before = await page.getAttribute('[data-ha]', 'data-ha');
    result.display = await page.$eval('.ha-settings', (e) => getComputedStyle(e).display);
    const elsewhere = (change) => page.evaluate(async (c) => (await fetch('/v1/cluster/ha', {
      method: 'PATCH', headers: { 'Content-Type': 'application/json',
                                  'X-CSRF-Token': sessionStorage.getItem('vireo.csrf') },
      body: JSON.stringify(c) })).status, change);
    await elsewhere({ max_restarts: 7, window_minutes: 20 });
    await page.waitForSelector('[data-ha="7/20"]');
    result.followed = await page.inputValue('input[name="ha-max-restarts"]');
    await page.fill('input[name="ha-max-restarts"]', '4');
    await elsewhere({ window_minutes: 25 });
    result.changed_note = await (await page.waitForSelector('[data-ha-changed]')).textContent();
    result.typed = [await page.inputValue('input[name="ha-max-restarts"]'),
                    await page.inputValue('input[name="ha-window-minutes"]')];
    await page.click('[data-action="ha-save"]');
    await page.waitForSelector('[data-ha="4/25"]');
    result.saved_window = await page.inputValue('input[name="ha-window-minutes"]');
    result.notes_after = await page.$$eval('[data-ha-changed]', (els) => els.length);
    await shot(page, 'web-host-ha');
    const { page: viewer } = await newSession(browser, cfg.viewer, cfg.viewer_password);
    await viewer.click('.tree a[href^="#/host/"]');
    await viewer.waitForSelector('input[name="ha-max-restarts"]');
    result.viewer_disabled = await viewer.isDisabled('input[name="ha-max-restarts"]')
      && await viewer.isDisabled('input[name="ha-window-minutes"]');
    result.viewer_save = await viewer.$$eval('[data-action="ha-save"]', (bs) => bs.length);
  },

  // The graphical console (noVNC): the canvas shows the guest's screen, the
  // same pixels as the API's screenshot; then text typed on it (cfg.keys).
  async screen(browser) {
    const { page } = await adminPage(browser);
    // noVNC under the strict CSP: anything the policy blocks is reported,
    // by the browser's console (Chromium's words; the listener leaves the
    // kept page with this scenario) and by the page's
    // securitypolicyviolation events (both browsers: Firefox's console
    // warnings do not reach its driver).
    const violations = [];
    result.csp_violations = violations;
    const onConsole = (m) => {
      if (/Content[- ]Security[- ]Policy/i.test(m.text())) violations.push(m.text());
    };
    page.on('console', onConsole);
    await page.evaluate(() => {
      window.vireoCsp = [];
      if (!window.vireoCspHeard) {
        window.vireoCspHeard = true;
        document.addEventListener('securitypolicyviolation',
                                  (e) => window.vireoCsp.push(`${e.violatedDirective} ${e.blockedURI}`));
      }
    });
    try {
      await openVm(page, 'screen');
      await page.waitForSelector('[data-vnc-status="connected"]', { timeout: 2 * STEP_MS });
      // The canvas against the screenshot: same size, mostly the same pixels
      // (a blinking cursor may differ), and not one colour.
      const compare = () => page.evaluate(async (vm) => {
        const canvas = document.querySelector('[data-vnc-screen] canvas');
        const mine = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        const png = await (await fetch(`/v1/vms/${vm}/screenshot`)).blob();
        const bitmap = await createImageBitmap(png);
        const c2 = new OffscreenCanvas(bitmap.width, bitmap.height);
        const ctx = c2.getContext('2d');
        ctx.drawImage(bitmap, 0, 0);
        const theirs = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
        const colours = new Set();
        let same = 0;
        for (let i = 0; i < mine.length; i += 4) {
          colours.add((mine[i] << 16) | (mine[i + 1] << 8) | mine[i + 2]);
          if (mine[i] === theirs[i] && mine[i + 1] === theirs[i + 1] && mine[i + 2] === theirs[i + 2]) same++;
        }
        return { canvas: [canvas.width, canvas.height], screenshot: [bitmap.width, bitmap.height],
                 colours: colours.size, same: mine.length === theirs.length ? same / (mine.length / 4) : 0 };
      }, cfg.vm);
      const end = Date.now() + STEP_MS;
      do {
        result.compare = await compare();
        if (result.compare.colours >= 2 && result.compare.same > 0.98) break;
        await page.waitForTimeout(500);
      } while (Date.now() < end);
      await shot(page, 'vm-screen');
      await page.click('[data-vnc-screen] canvas');
      await page.keyboard.type(cfg.keys);
      await page.keyboard.press('Enter');
      result.typed = true;
    } finally {
      page.off('console', onConsole);
      violations.push(...await page.evaluate(() => window.vireoCsp).catch(() => []));
    }
  },

  // Snapshots of the (stopped) VM: take two, a taken name's refusal, revert
  // to the first, delete the second; the task progress line and the table.
  async snapshots(browser) {
    const { page } = await adminPage(browser);
    await openVm(page, 'snapshots');
    const take = async (name) => {
      await page.fill('#snap-name', name);
      await page.fill('#snap-desc', `taken by the web UI (${name})`);
      await page.click('[data-action="snapshot-create"]');
      await page.waitForSelector(`tr[data-snapshot="${name}"][data-current="1"]`);
    };
    await take('one');
    await take('two');
    result.parent_of_two = await page.textContent('tr[data-snapshot="two"] td:nth-child(2)');
    await page.fill('#snap-name', 'one');
    await page.click('[data-action="snapshot-create"]');
    result.taken = await (await page.waitForSelector('[data-error]')).textContent();
    result.kept_name = await page.inputValue('#snap-name');
    await page.click('[data-error] button');
    await page.click('tr[data-snapshot="one"] [data-action="snapshot-revert"]');
    await page.click('tr[data-snapshot="one"] [data-action="confirm-revert"]');
    await page.waitForSelector('tr[data-snapshot="one"][data-current="1"]');
    result.task = await page.getAttribute('[data-snapshot-task]', 'data-snapshot-task');
    await page.waitForSelector(`.tasks tr[data-kind="snapshot-revert"][data-state="succeeded"]`);
    await shot(page, 'vm-snapshots');
    await page.click('tr[data-snapshot="two"] [data-action="snapshot-delete"]');
    await page.click('tr[data-snapshot="two"] [data-action="confirm-delete"]');
    await page.waitForSelector('tr[data-snapshot="two"]', { state: 'detached' });
    result.left = await page.$$eval('tr[data-snapshot]', (els) => els.map((e) => e.dataset.snapshot));
  },

  // Admin pages: make a user and a token for them (its secret shown once;
  // it works, then, revoked, no longer), then delete the user.
  async admin(browser) {
    const { page } = await adminPage(browser);
    const withSecret = (secret) => page.evaluate(async (s) => (await fetch('/v1/vms', {
      credentials: 'omit', headers: { Authorization: `Bearer ${s}` } })).status, secret);
    await page.click('[data-admin="users"]');
    await page.fill('#user-name', cfg.new_user);
    await page.selectOption('#user-role', 'operator');
    await page.fill('#user-password', cfg.new_password);
    await page.click('[data-action="user-create"]');
    await page.waitForSelector(`tr[data-user="${cfg.new_user}"]`);
    result.users = await page.$$eval('tr[data-user]', (els) =>
      els.map((e) => [e.dataset.user, e.children[1].textContent]));
    result.own_delete = await page.$$eval(`tr[data-user="${cfg.user}"] [data-action="user-delete"]`,
                                          (els) => els.length);
    await shot(page, 'admin-users');
    await page.click('[data-admin="tokens"]');
    await page.selectOption('#token-role', 'viewer');
    await page.fill('#token-user', cfg.new_user);
    await page.fill('#token-expires', '1d');
    await page.click('[data-action="token-create"]');
    const secret = await (await page.waitForSelector('[data-token-secret]')).inputValue();
    result.secret = secret;
    result.status_before = await withSecret(secret);
    result.secret_shot_colours = await shotMasked(page, 'admin-tokens', '[data-token-secret]');
    // Shown once: another visit of the page does not show it.
    await page.click('[data-admin="users"]');
    await page.click('[data-admin="tokens"]');
    await page.waitForSelector('table[data-tokens]');
    result.secret_again = await page.isVisible('[data-token-secret]');
    result.page_text = await page.textContent('.page');
    const id = secret.split('_')[1];
    const row = `tr[data-token="${id}"]`;
    result.token_row = await page.$eval(row, (e) => [...e.children].map((c) => c.textContent));
    await deleteRow(page, row, 'token-revoke');
    result.status_after = await withSecret(secret);
    await page.click('[data-admin="users"]');
    const urow = `tr[data-user="${cfg.new_user}"]`;
    await deleteRow(page, urow, 'user-delete');
  },

  // Projects (admin): make one with quotas (0 VMs), the wizard's create into
  // it refused over quota, its quota raised, the module's VM moved in (its
  // usage shown, the project's delete refused), a user given a role on it
  // and the role revoked, the VM moved back, the project deleted.
  async projects(browser) {
    const { page } = await adminPage(browser);
    const p = cfg.project;
    const row = `tr[data-project="${p}"]`;
    const moveVm = (project) => page.evaluate(async ({ vm, project }) => (await fetch(`/v1/vms/${vm}`, {
      method: 'PATCH', headers: { 'Content-Type': 'application/json',
                                  'X-CSRF-Token': sessionStorage.getItem('vireo.csrf') },
      body: JSON.stringify({ project }) })).status, { vm: cfg.vm, project });
    const openProjects = async () => {
      await page.click('[data-admin="projects"]');
      await page.waitForSelector('table[data-projects]');
    };
    const usage = () => page.$$eval(`${row} td[data-quota]`, (els) =>
      Object.fromEntries(els.map((e) => [e.dataset.quota, e.textContent])));
    await openProjects();
    await page.fill('#project-name', p);
    await page.fill('#project-vcpus', '4');
    await page.fill('#project-memory_mib', '1024');
    await page.fill('#project-vms', '0');
    await page.click('[data-action="project-create"]');
    await page.waitForSelector(row);
    result.created = await usage();
    // Over its quota: the wizard's create into it shows the API's refusal.
    await page.click('[data-action="create"]');
    await page.fill('#vm-name', 'over-quota');
    await page.selectOption('#vm-image', cfg.image);
    await page.fill('#vm-memory', '256');
    await page.waitForSelector(`#vm-project option[value="${p}"]`, { state: 'attached' });
    await page.selectOption('#vm-project', p);
    await page.click('.wizard button[type="submit"]');
    result.over_quota = await (await page.waitForSelector('[data-error]')).textContent();
    await page.click('[data-error] button');
    await openProjects();
    await page.click(`${row} [data-action="project-quotas"]`);
    await page.fill(`#quota-${p}-vms`, '1');
    await page.click(`${row} [data-action="quota-save"]`);
    await page.waitForSelector(`${row} td[data-quota="vms"]`);
    result.move_in = await moveVm(p);
    await page.click('[data-admin="users"]');
    await openProjects();
    await page.waitForSelector(`${row} td[data-quota="vms"]:has-text("1 / 1")`);
    result.with_vm = await usage();
    await shot(page, 'admin-projects');
    await page.click(`${row} [data-action="project-delete"]`);
    await page.click(`${row} [data-action="confirm-project-delete"]`);
    result.delete_refused = await (await page.waitForSelector('[data-error]')).textContent();
    await page.click('[data-error] button');
    // A role on the project for the viewer, shown on the users page, revoked.
    await page.click('[data-admin="users"]');
    await page.waitForSelector(`#grant-project option[value="${p}"]`, { state: 'attached' });
    await page.selectOption('#grant-user', cfg.viewer);
    await page.selectOption('#grant-role', 'operator');
    await page.selectOption('#grant-project', p);
    await page.click('[data-action="grant"]');
    const grant = `tr[data-user="${cfg.viewer}"] [data-grant="${p}"]`;
    result.grant = await (await page.waitForSelector(grant)).textContent();
    await shot(page, 'admin-users-grants');
    await page.click(`${grant} [data-action="grant-revoke"]`);
    await page.waitForSelector(grant, { state: 'detached' });
    result.move_out = await moveVm('default');
    await openProjects();
    await deleteRow(page, row, 'project-delete');
  },

  // Schedules (admin): a snapshot schedule of the module's VM, run now (its
  // task in the page and the task log; the snapshot on the VM's tab), then
  // deleted.
  async schedules(browser) {
    const { page } = await adminPage(browser);
    const s = cfg.schedule;
    const row = `tr[data-schedule="${s}"]`;
    await page.click('[data-nav="schedules"]');
    await page.waitForSelector('table[data-schedules]');
    await page.fill('#schedule-name', s);
    await page.selectOption('#schedule-action', 'snapshot');
    await page.selectOption('#schedule-select', 'vm');
    await page.selectOption('#schedule-vm', cfg.vm);
    await page.selectOption('#schedule-timing', 'at');
    await page.fill('#schedule-at', '30 3 * * sun');
    await page.fill('#schedule-keep-last', '2');
    await page.click('[data-action="schedule-create"]');
    await page.waitForSelector(row);
    result.row = await page.$eval(row, (e) => [...e.children].map((c) => c.textContent));
    await page.click(`${row} [data-action="schedule-run"]`);
    const task = await page.waitForSelector('[data-run-task]');
    result.task = await task.getAttribute('data-run-task');
    await page.waitForSelector(`[data-run-task="${result.task}"][data-state="succeeded"]`, { timeout: 2 * STEP_MS });
    await page.waitForSelector(`.tasks tr[data-task="${result.task}"][data-state="succeeded"]`);
    result.log_row = await page.$eval(`.tasks tr[data-task="${result.task}"]`, (e) =>
      [...e.children].map((c) => c.textContent));
    await page.waitForSelector(`${row} [data-last-run="${cfg.vm}"][data-last-state="succeeded"]`);
    result.row_after = await page.$eval(row, (e) => [...e.children].map((c) => c.textContent));
    await shot(page, 'schedules');
    await openVm(page, 'snapshots');
    result.snapshot = await page.getAttribute(`tr[data-snapshot^="${s}-"]`, 'data-snapshot');
    await page.click('[data-nav="schedules"]');
    await deleteRow(page, row, 'schedule-delete');
  },

  // The Hardware tab of the running VM: vCPUs beyond its maximum and a
  // display change are refused with the API's words; a new disk and a NIC
  // are hot-plugged (their rows appear when the tasks end).
  async hardware(browser) {
    const { page } = await adminPage(browser);
    await openVm(page, 'hardware');
    await page.waitForSelector('table[data-disks]');
    await page.waitForSelector('table[data-nics]');
    result.live_note = await page.textContent('[data-hw-live]');
    const refusal = async () => {
      const text = await (await page.waitForSelector('[data-error]')).textContent();
      await page.click('[data-error] button');
      return text;
    };
    await page.fill('#hw-vcpus', String(cfg.too_many_vcpus));
    await page.click('[data-action="hw-resources"]');
    result.cpu_refused = await refusal();
    await page.selectOption('#hw-display', 'virtio');
    await page.click('[data-action="hw-display"]');
    result.display_refused = await refusal();
    // The refused values stay in the form, to correct: put back.
    await page.fill('#hw-vcpus', '1');
    await page.selectOption('#hw-display', 'vga');
    await page.fill('#hw-disk-size', '64');
    await page.click('[data-action="disk-add"]');
    await page.waitForSelector('tr[data-disk="1"]', { timeout: 2 * STEP_MS });
    result.disk = await page.getAttribute('tr[data-disk="1"]', 'data-volume');
    await page.selectOption('#hw-nic-network', cfg.network);
    await page.click('[data-action="nic-add"]');
    await page.waitForSelector('tr[data-nic="1"]', { timeout: 2 * STEP_MS });
    result.task = await page.getAttribute('[data-task-line]', 'data-task-line');
    result.nic = await page.$eval('tr[data-nic="1"]', (e) => [...e.children].map((c) => c.textContent));
    await page.evaluate(() => document.querySelector('.hardware').scrollIntoView());
    await shot(page, 'vm-hardware');
  },

  // The Hardware tab's CD-ROM: each of cfg.cdrom_steps ('insert' cfg.iso,
  // 'eject') done with the keyboard (focus, Enter), then the drive as shown
  // once the task ended (data-cdrom: the ISO, '' for an empty drive).
  async cdrom(browser) {
    const { page } = await adminPage(browser);
    await openVm(page, 'hardware');
    await page.waitForSelector(`#hw-cdrom-iso option[value="${cfg.iso}"]`, { state: 'attached' });
    result.shown = [];
    for (const step of cfg.cdrom_steps) {
      if (step === 'insert') await page.selectOption('#hw-cdrom-iso', cfg.iso);
      await page.focus(`[data-action="cdrom-${step}"]`);
      await page.keyboard.press('Enter');
      const want = step === 'insert' ? cfg.iso : '';
      await page.waitForSelector(`[data-cdrom="${want}"]`, { timeout: 2 * STEP_MS });
      result.shown.push(await page.textContent('[data-cdrom]'));
    }
    result.boot = await page.textContent('[data-field="boot-order"]');
  },

  // The Hardware tab: the hot-plugged disk and NIC removed again (each asked
  // once more; the guest releases them).
  async hardware_remove(browser) {
    const { page } = await adminPage(browser);
    await openVm(page, 'hardware');
    for (const row of ['tr[data-disk="1"]', 'tr[data-nic="1"]']) {
      const action = row.includes('disk') ? 'disk-remove' : 'nic-remove';
      await page.waitForSelector(row);
      await page.click(`${row} [data-action="${action}"]`);
      await page.click(`${row} [data-action="confirm-${action}"]`);
      await page.waitForSelector(row, { state: 'detached', timeout: 2 * STEP_MS });
    }
    result.disks = await page.$$eval('tr[data-disk]', (els) => els.map((e) => e.dataset.volume));
    result.nics = await page.$$eval('tr[data-nic]', (els) => els.map((e) => e.dataset.network));
  },

  // The Backups tab of the running VM: a full and an incremental backup
  // taken and listed, the incremental verified, a restore over the running
  // VM refused with the API's message, a restore as a new VM (not started),
  // the incremental deleted.
  async backups(browser) {
    const { page } = await adminPage(browser);
    await openVm(page, 'backups');
    await page.waitForSelector('[data-backups]');
    await page.click('[data-action="backup-create"]');
    await page.waitForSelector('tr[data-backup][data-kind="full"]', { timeout: 3 * STEP_MS });
    await page.check('#backup-incremental');
    await page.click('[data-action="backup-create"]');
    const inc = 'tr[data-backup][data-kind="incremental"]';
    await page.waitForSelector(inc, { timeout: 3 * STEP_MS });
    result.rows = await page.$$eval('tr[data-backup]', (els) =>
      els.map((e) => [e.dataset.backup, ...[...e.children].slice(1, 4).map((c) => c.textContent)]));
    const id = await page.getAttribute(inc, 'data-backup');
    const row = `tr[data-backup="${id}"]`;
    await page.click(`${row} [data-action="backup-verify"]`);
    await page.waitForSelector(`${row} td[data-verified="ok"]`, { timeout: 2 * STEP_MS });
    await page.click(`${row} [data-action="backup-restore"]`);
    await page.click(`${row} [data-action="confirm-backup-restore"]`);
    result.restore_refused = await (await page.waitForSelector('[data-error]')).textContent();
    await page.click('[data-error] button');
    await page.click(`${row} [data-action="backup-restore"]`);
    await page.fill(`#restore-as-${id}`, cfg.copy);
    await page.click(`${row} [data-action="confirm-backup-restore"]`);
    await page.waitForSelector(`.tree a[data-vm="${cfg.copy}"]`, { timeout: 3 * STEP_MS });
    await page.waitForSelector('[data-task-line="succeeded"]', { timeout: 3 * STEP_MS });
    await shot(page, 'vm-backups');
    await page.click(`${row} [data-action="backup-delete"]`);
    await page.click(`${row} [data-action="confirm-backup-delete"]`);
    await page.waitForSelector(row, { state: 'detached' });
    result.left = await page.$$eval('tr[data-backup]', (els) => els.map((e) => e.dataset.kind));
    // An operator restores over the VM only: a new VM is the admin's.
    const op = (await newSession(browser, cfg.operator, cfg.operator_password)).page;
    await openVm(op, 'backups');
    await op.click('tr[data-backup] [data-action="backup-restore"]');
    const as = await op.waitForSelector('tr[data-backup] input[id^="restore-as-"]');
    result.operator_as = [await as.isDisabled(), await as.getAttribute('title')];
  },

  // A pool's page: its capacity, its volumes and who uses them; a volume
  // made and deleted, a volume a VM uses refused with the API's message,
  // and the volume the Hardware tab's removal left (cfg.kept) deleted.
  async pool(browser) {
    const { page } = await adminPage(browser);
    await page.click(`.tree a[href="#/pool/${cfg.pool}"]`);
    await page.waitForSelector('table[data-volumes]');
    result.capacity = Number(await page.getAttribute('.usage', 'data-capacity'));
    const boot = `tr[data-volume="${cfg.vm}-disk0"]`;
    result.used_by = await page.getAttribute(`${boot} td[data-used-by]`, 'data-used-by');
    await page.fill('#volume-name', cfg.volume);
    await page.fill('#volume-size', '32');
    await page.click('[data-action="volume-create"]');
    const row = `tr[data-volume="${cfg.volume}"][data-state="ready"]`;
    await page.waitForSelector(row, { timeout: 2 * STEP_MS });
    result.row = await page.$eval(row, (e) => [...e.children].map((c) => c.textContent));
    await shot(page, 'pool');
    // A volume made elsewhere (not by this page: no task of its own, no
    // event it follows) shows on the open page, polled as a project user's.
    result.other_made = await page.evaluate(async ({ pool, name }) =>
      (await fetch(`/v1/pools/${pool}/volumes`, {
        method: 'POST', body: JSON.stringify({ name, size_bytes: 8 << 20 }),
        headers: { 'Content-Type': 'application/json',
                   'X-CSRF-Token': sessionStorage.getItem('vireo.csrf') } })).status,
    { pool: cfg.pool, name: cfg.other });
    await page.waitForSelector(`tr[data-volume="${cfg.other}"][data-state="ready"]`, { timeout: 2 * STEP_MS });
    await deleteRow(page, `tr[data-volume="${cfg.other}"]`, 'volume-delete');
    await page.click(`${boot} [data-action="volume-delete"]`);
    await page.click(`${boot} [data-action="confirm-volume-delete"]`);
    result.refused = await (await page.waitForSelector('[data-error]')).textContent();
    await page.click('[data-error] button');
    await deleteRow(page, `tr[data-volume="${cfg.volume}"]`, 'volume-delete');
    await deleteRow(page, `tr[data-volume="${cfg.kept}"]`, 'volume-delete');
    result.left = await page.$$eval('tr[data-volume]', (els) => els.map((e) => e.dataset.volume));
  },

  // The networks: one made (isolated, with DHCP) from the list page, its
  // page; the default network's page (subnet, DHCP range, the VM's lease);
  // its delete refused while the VM's NIC is on it; the new one deleted.
  async network(browser) {
    const { page } = await adminPage(browser);
    const fields = () => page.$$eval('[data-field]', (els) =>
      Object.fromEntries(els.map((e) => [e.dataset.field, e.textContent])));
    await page.click('[data-nav="networks"]');
    await page.waitForSelector('table[data-networks]');
    await page.fill('#network-name', cfg.net);
    await page.selectOption('#network-type', 'isolated');
    await page.fill('#network-subnet', cfg.subnet);
    await page.click('[data-action="network-create"]');
    await page.waitForSelector(`#network-title:has-text("${cfg.net}")`, { timeout: 2 * STEP_MS });
    result.made = await fields();
    await page.click(`.tree a[href="#/network/${cfg.network}"]`);
    await page.waitForSelector(`#network-title:has-text("${cfg.network}")`);
    await page.waitForSelector(`tr[data-lease] a[href="#/vm/${cfg.vm}"]`);
    result.default = await fields();
    result.lease = await page.$eval(`tr[data-lease]:has(a[href="#/vm/${cfg.vm}"])`, (e) => e.dataset.lease);
    await shot(page, 'network');
    await page.click('[data-action="network-delete"]');
    await page.click('[data-action="confirm-network-delete"]');
    result.refused = await (await page.waitForSelector('[data-error]')).textContent();
    await page.click('[data-error] button');
    await page.click(`.tree a[href="#/network/${cfg.net}"]`);
    await page.waitForSelector(`#network-title:has-text("${cfg.net}")`);
    await page.click('[data-action="network-delete"]');
    await page.click('[data-action="confirm-network-delete"]');
    await page.waitForSelector('table[data-networks]');
    await page.waitForSelector(`tr[data-network="${cfg.net}"]`, { state: 'detached' });
    result.left = await page.$$eval('tr[data-network]', (els) => els.map((e) => e.dataset.network));
  },

  // A project's volumes and networks: the admin makes a volume and a network
  // in cfg.project from the browser (each row shows it), moves a volume of
  // no project (cfg.free) into it, and reads the project's use on the
  // projects page; then the project's user (admin there, no cluster role)
  // sees the pool with only the project's volumes, may create only in it,
  // and makes one (its task read by id: no event stream for them).
  async project_objects(browser) {
    const { page } = await adminPage(browser);
    const p = cfg.project;
    const volumes = (pg) => pg.$$eval('tr[data-volume]', (els) => els.map((e) => e.dataset.volume));
    const projectOf = (pg, row) => pg.getAttribute(`${row} td[data-project]`, 'data-project');
    const openPool = async (pg) => {
      await pg.click(`.tree a[href="#/pool/${cfg.pool}"]`);
      await pg.waitForSelector('table[data-volumes]');
    };
    await openPool(page);
    result.admin_volumes = await volumes(page);
    await page.waitForSelector(`#volume-project option[value="${p}"]`, { state: 'attached' });
    result.admin_default = await page.inputValue('#volume-project');
    await page.fill('#volume-name', cfg.volume);
    await page.fill('#volume-size', '16');
    await page.selectOption('#volume-project', p);
    await page.click('[data-action="volume-create"]');
    const row = `tr[data-volume="${cfg.volume}"][data-state="ready"]`;
    await page.waitForSelector(row, { timeout: 2 * STEP_MS });
    result.volume_project = await projectOf(page, row);
    const free = `tr[data-volume="${cfg.free}"]`;
    await page.selectOption(`#move-${cfg.free}`, p);
    await page.click(`${free} [data-action="project-move"]`);
    await page.waitForSelector(`${free} td[data-project="${p}"]`);
    result.moved = await projectOf(page, free);
    await shot(page, 'pool-projects');
    await page.click('[data-nav="networks"]');
    await page.waitForSelector('table[data-networks]');
    await page.fill('#network-name', cfg.net);
    await page.selectOption('#network-type', 'isolated');
    await page.selectOption('#network-project', p);
    await page.click('[data-action="network-create"]');
    await page.waitForSelector(`#network-title:has-text("${cfg.net}")`, { timeout: 2 * STEP_MS });
    result.network_project = await page.textContent('[data-field="project"]');
    await page.waitForSelector(`.tree a[data-network="${cfg.net}"] .tag`);
    await page.click('[data-admin="projects"]');
    const prow = `tr[data-project="${p}"]`;
    // The counts: the API's, of every host (the test made another host's).
    await page.waitForSelector(`${prow} td[data-count="networks"]:text-is("${cfg.counts.networks}")`);
    await page.waitForSelector(`${prow} td[data-count="volumes"]`);
    result.usage = await page.$$eval(`${prow} td[data-quota], ${prow} td[data-count]`, (els) =>
      Object.fromEntries(els.map((e) => [e.dataset.quota || e.dataset.count, e.textContent])));
    await shot(page, 'admin-projects-usage');
    // Its quotas changed in the page: the disk's (1500 MiB, a fraction of
    // GiB) kept, the form valid.
    await page.click(`${prow} [data-action="project-quotas"]`);
    await page.fill(`#quota-${p}-vcpus`, '8');
    result.quota_form_valid = await page.$eval(`form[data-quota-form="${p}"]`, (f) => f.checkValidity());
    if (result.quota_form_valid) {
      await page.click(`${prow} [data-action="quota-save"]`);
      await page.waitForSelector(`${prow} td[data-quota="vcpus"]:has-text("0 / 8")`);
    }
    // The project's user.
    const { page: user } = await newSession(browser, cfg.puser, cfg.ppassword);
    const reads = [];
    user.on('request', (r) => { if (r.method() === 'GET') reads.push(new URL(r.url()).pathname); });
    const readsOf = (path) => reads.filter((p) => p === path).length;
    await openPool(user);
    // The pool's count: of the volumes the page lists (not the VM's disk).
    result.user_pool_count = [await user.textContent('.pool-page dt:text-is("Volumes") + dd'),
                              (await volumes(user)).length];
    await user.waitForSelector(`#volume-project option[value="${p}"]`, { state: 'attached' });
    result.user_choices = await user.$$eval('#volume-project option', (els) => els.map((e) => e.value));
    await user.fill('#volume-name', cfg.uvolume);
    await user.fill('#volume-size', '8');
    await user.click('[data-action="volume-create"]');
    await user.waitForSelector(`tr[data-volume="${cfg.uvolume}"][data-state="ready"]`, { timeout: 2 * STEP_MS });
    result.user_volumes = await volumes(user);
    result.user_projects = await user.$$eval('tr[data-volume] td[data-project]', (els) => els.map((e) => e.dataset.project));
    result.user_error = await user.$$eval('[data-error]', (els) => els.map((e) => e.textContent));
    result.user_networks = await user.$$eval('.tree a[data-network]', (els) => els.map((e) => e.dataset.network));
    await shot(user, 'pool-project-user');
    // Another user's volume in the project shows up on the open pool page.
    const adminCall = (method, path, body) => page.evaluate(async ({ method, path, body }) =>
      (await fetch(path, { method, headers: { 'Content-Type': 'application/json',
                                              'X-CSRF-Token': sessionStorage.getItem('vireo.csrf') },
                           body: JSON.stringify(body) })).status, { method, path, body });
    result.admin_volume = await adminCall('POST', `/v1/pools/${cfg.pool}/volumes`,
                                          { name: cfg.avolume, size_bytes: 8 << 20, project: p });
    await user.waitForSelector(`tr[data-volume="${cfg.avolume}"]`, { timeout: 2 * STEP_MS });
    result.user_sees_admin_volume = true;
    // A VM of the project: its page judges by the user's role there (admin).
    result.admin_vm = await adminCall('POST', '/v1/vms', { name: cfg.pvm, memory_mib: 64, project: p });
    await user.waitForSelector(`.tree a[data-vm="${cfg.pvm}"]`, { timeout: 2 * STEP_MS });
    await user.goto(`${cfg.url}/ui/#/vm/${cfg.pvm}/summary`);
    await user.waitForSelector('#vm-title');
    result.user_vm_actions = await user.$$eval('.actions button', (els) =>
      Object.fromEntries(els.map((e) => [e.dataset.action, !e.disabled])));
    await openPool(user);
    // Its polls (no event stream): 2 reads of the VMs (5 s or more), then
    // none while the tab is hidden (5.5 s, more than a poll's 5), and one at
    // once when shown again.
    for (let i = 0; readsOf('/v1/vms') < 2 && i < 60; i++) await user.waitForTimeout(500);
    result.user_polls = { vms: readsOf('/v1/vms'), pools: readsOf('/v1/pools') };
    const visibility = (hidden) => user.evaluate((h) => {
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => h });
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (h ? 'hidden' : 'visible') });
      document.dispatchEvent(new Event('visibilitychange'));
    }, hidden);
    await visibility(true);
    const before = reads.length;
    await user.waitForTimeout(5500);
    result.user_polls.hidden = reads.slice(before).filter((p) => p.startsWith('/v1/'));
    const shown = user.waitForRequest((r) => new URL(r.url()).pathname === '/v1/vms', { timeout: 3000 })
      .then(() => true, () => false);
    await visibility(false);
    result.user_polls.shown = await shown;
  },
  // Two sessions: what the second does (pause, resume) shows in the first,
  // live, without a reload.
  async live(browser) {
    const a = await adminPage(browser);
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

  // Force stop from the VM's page: the tree and the summary say stopped.
  async stop(browser) {
    const { page } = await adminPage(browser);
    await openVm(page, 'summary');
    await page.click('[data-action="force-stop"]');
    await waitState(page, 'stopped');
    result.state = await page.textContent('[data-field="state"]');
  },

  // A failed action (start a running VM): the API's message is shown.
  async failure(browser) {
    const { page } = await adminPage(browser);
    await openVm(page, 'summary');
    await page.click('[data-action="start"]');
    result.shown = await (await page.waitForSelector('[data-error]')).textContent();
    await shot(page, 'vm-error');
  },

  // Delete with its confirmation (the VM must be stopped).
  // Clone of the stopped VM from its page: the task's line ends succeeded
  // and the new VM shows in the tree; its disk in a dir pool, the full copy
  // box cannot be cleared (linked clones are of disks in rbd pools).
  async clone(browser) {
    const { page } = await adminPage(browser);
    await openVm(page, 'summary');
    await page.click('[data-action="clone"]');
    await page.fill('#clone-name', cfg.clone);
    result.full_checked = await page.isChecked('#clone-full');
    result.full_disabled = await page.isDisabled('#clone-full'); // a dir disk: no linked clone
    await page.click('[data-action="clone-submit"]');
    await page.waitForSelector('.clone-form [data-task-line="succeeded"]', { timeout: 4 * STEP_MS });
    await page.waitForSelector(`.tree a[data-vm="${cfg.clone}"]`);
    result.in_tree = true;
    await shot(page, 'vm-clone');
  },

  async delete(browser) {
    const { page } = await adminPage(browser);
    await openVm(page, 'summary');
    await page.click('[data-action="delete"]');
    await page.waitForSelector('[data-action="confirm-delete"]');
    result.asked = await page.textContent('#confirm-text');
    await page.click('[data-action="confirm-delete"]');
    await page.waitForSelector(`.tree a[data-vm="${cfg.vm}"]`, { state: 'detached' });
    result.gone = true;
  },

  // The driver's own calls on a page of their own (no vireod): what
  // Playwright refuses, web_ui_firefox.mjs must refuse too.
  async driver_calls(browser) {
    const context = await newContext(browser);
    const page = await context.newPage();
    lastPage = page;
    page.setDefaultTimeout(STEP_MS);
    await page.goto(`data:text/html,${encodeURIComponent(DRIVER_CALLS_PAGE)}`);
    const refused = (call) => call().then(() => false, () => true);
    const brief = { timeout: 1000 };
    result.select_absent_refused = await refused(() => page.selectOption('#pick', 'absent', brief));
    await page.selectOption('#pick', 'late');
    result.picked = await page.inputValue('#pick');
    result.hidden_row_detached_refused = await refused(() =>
      page.waitForSelector('#hidden-row', { state: 'detached', ...brief }));
    result.check_refused = await refused(() => page.check('#stuck', brief));
    await page.fill('#typed', '');
    result.emptied_seen = await page.getAttribute('#typed', 'data-seen');
    result.has_text = await (await page.waitForSelector('li:has-text("TWO words")')).textContent();
    result.text_is = await (await page.waitForSelector('li:text-is("two")')).textContent();
  },

  // First load: bytes over the wire and the first paint, with a cold cache.
  async firstload(browser) {
    const context = await newContext(browser);
    const page = await context.newPage();
    let bytes = 0;
    const client = await context.newCDPSession(page);
    await client.send('Network.enable');
    client.on('Network.loadingFinished', (e) => { bytes += e.encodedDataLength; });
    // What the login page fetches: the views loaded when first shown
    // (lazy.jsx) must not be among them.
    result.fetched = [];
    page.on('request', (r) => result.fetched.push(new URL(r.url()).pathname));
    await page.goto(cfg.url + '/ui/');
    await page.waitForSelector('#login-user');
    result.first_paint_ms = await page.evaluate(() => {
      const p = performance.getEntriesByType('paint').find((e) => e.name === 'first-contentful-paint');
      return p ? p.startTime : null;
    });
    result.transferred_bytes = bytes;
  },
};

// test_web_cluster.py's and test_iscsi.py's scenarios, given this driver's kit.
const { clusterScenarios } = await import('./web_cluster_scenarios.mjs');
const { storageScenarios } = await import('./web_storage_scenarios.mjs');
for (const [name, f] of Object.entries({ ...clusterScenarios, ...storageScenarios }))
  scenarios[name] = (browser) => f(browser, { cfg, result, adminPage, newSession, shot });

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
      await saveShot(lastPage, `failed-${cfg.scenario}`).catch(() => {});
      answer.page = await lastPage.evaluate(() => document.body.innerText).catch(() => '');
    }
    await endAdminSession();
  }
  for (const c of contexts) await c.close().catch(() => {});
  process.stdout.write(JSON.stringify(answer) + '\n');
}

const browser = FIREFOX
  ? await (await import('./web_ui_firefox.mjs')).launchFirefox(process.env.VIREO_FIREFOX || '/usr/bin/firefox-esr')
  : await chromium.launch({
    executablePath: process.env.VIREO_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    headless: true,
  });
try {
  for await (const line of createInterface({ input: process.stdin }))
    if (line.trim()) await run(browser, line);
} finally {
  await endAdminSession();
  await browser.close();
}
