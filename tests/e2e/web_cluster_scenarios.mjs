// web_cluster_scenarios.mjs: the browser side of test_web_cluster.py, run
// by web_ui_driver.mjs (its browser, sessions and screenshots): a host's
// page (load, graphs, maintenance switch; what it reads), the Migrate dialog
// (and its keyboard), the cluster
// page's DRS recommendations applied, what a viewer may not do, and a
// project user's tree without the cluster. Each scenario gets the
// driver's kit: {cfg, result, adminPage, newSession, shot}.

const vmUnder = (host, vm) => `.tree li:has(> a[data-host="${host}"]) a[data-vm="${vm}"]`;

export const clusterScenarios = {
  // The host's page: its load and its graphs with points. The host's
  // record is published every 10 s or so: the page (its host events) comes
  // to count its started VMs.
  async host_page(browser, { cfg, result, adminPage, shot }) {
    const { page } = await adminPage(browser);
    await page.click(`.tree a[data-host="${cfg.host}"]`);
    await page.waitForSelector('#host-title');
    await page.waitForFunction((want) => {
      const dd = document.querySelector('[data-field="vm-count"]');
      return dd && dd.textContent === want;
    }, cfg.vm_count, { timeout: 60000 });
    result.vm_count = await page.textContent('[data-field="vm-count"]');
    result.cpu = await page.textContent('[data-field="cpu-load"]');
    result.memory = await page.textContent('[data-field="memory-load"]');
    result.accel = await page.textContent('[data-field="accel"]');
    result.qemu = await page.textContent('[data-field="qemu-version"]');
    result.vms = await page.$$eval('[data-host-vms] [data-vm-row]', (rows) => rows.map((r) => r.dataset.vmRow));
    await page.waitForFunction(() => {
      const f = document.querySelector('figure[data-chart="cpu"]');
      return f && Number(f.dataset.points) >= 2;
    }, null, { timeout: 60000 });
    result.charts = await page.$$eval('figure[data-chart]', (fs) => fs.map((f) => f.dataset.chart));
    await shot(page, 'web-host');
  },

  // The host's page open, its maintenance switched on and off through the
  // API by another client: the switch and the tree follow the host's
  // events; every request the page makes meanwhile is counted (by path).
  // Then the tab hidden: the graphs read nothing until it is shown again.
  async host_events(browser, { cfg, result, adminPage }) {
    const { page } = await adminPage(browser);
    await page.goto(`${cfg.url}/ui/#/host/${cfg.host}`);
    await page.waitForSelector('figure[data-chart="cpu"]');
    const seen = [];
    page.on('request', (r) => seen.push(new URL(r.url()).pathname));
    const count = (path) => seen.filter((p) => p === path).length;
    const csrf = await page.evaluate(() => sessionStorage.getItem('vireo.csrf'));
    const t0 = Date.now();
    const maintenance = async (on, checked) => {
      // page.request: the session's cookie, no request of the page's own.
      const resp = await page.request.post(`${cfg.url}/v1/hosts/${cfg.host}/maintenance`, {
        headers: { 'X-CSRF-Token': csrf }, data: { on } });
      if (!resp.ok()) throw new Error(`maintenance ${on}: ${resp.status()} ${await resp.text()}`);
      await page.waitForSelector(`[data-action="maintenance"][aria-checked="${checked}"]`, { timeout: 60000 });
    };
    await maintenance(true, 'true');
    result.tree_state = await page.getAttribute(`.tree a[data-host="${cfg.host}"]`, 'data-state');
    // Longer than the old 3 s poll, twice: a poll would show here.
    await page.waitForTimeout(cfg.quiet_ms);
    await maintenance(false, 'false');
    const seconds = (Date.now() - t0) / 1000;
    result.seconds = seconds;
    result.hosts_reads = count('/v1/hosts');
    result.vms_reads = count('/v1/vms');
    result.per_minute = Math.round((seen.length * 60) / seconds);
    result.counts = Object.fromEntries([...new Set(seen)].map((p) => [p, count(p)]));
    // Hidden (as the browser says it when the tab is in the background).
    const metrics = `/v1/hosts/${cfg.host}/metrics`;
    await page.evaluate(() => {
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await page.waitForTimeout(1500); // a read under way when hidden ends
    const hiddenFrom = count(metrics);
    await page.waitForTimeout(cfg.quiet_ms);
    result.metrics_hidden = count(metrics) - hiddenFrom;
    const shown = page.waitForRequest((r) => new URL(r.url()).pathname === metrics, { timeout: 5000 });
    await page.evaluate(() => {
      delete document.hidden;
      delete document.visibilityState;
      document.dispatchEvent(new Event('visibilitychange'));
    });
    result.metrics_when_shown = Boolean(await shown.catch(() => null));
  },

  // Maintenance on from the page (keyboard: focus the switch, Enter; the
  // dialog asks, its memory check ticked with Space): the body sent, the
  // evacuation's task line ends succeeded, its report says each VM's
  // memory was verified, and the tree shows the VMs under the other host;
  // off again (no question); Evacuate… asks and sends its body.
  async maintenance(browser, { cfg, result, adminPage, shot }) {
    const { page } = await adminPage(browser);
    await page.goto(`${cfg.url}/ui/#/host/${cfg.host}`);
    await page.waitForSelector('#host-title');
    const sw = page.locator('[data-action="maintenance"]');
    result.before = await sw.getAttribute('aria-checked');
    await sw.focus();
    await page.keyboard.press('Enter');
    await page.waitForSelector('#evacuate-title');
    result.verify_default = await page.isChecked('input[name="verify_memory"]');
    await page.focus('input[name="verify_memory"]');
    await page.keyboard.press('Space');
    const sent = page.waitForRequest((r) => r.method() === 'POST' && r.url().endsWith('/maintenance'));
    await page.click('[data-action="confirm-evacuate"]');
    result.body = JSON.parse((await sent).postData());
    await page.waitForSelector('[data-maintenance-task="succeeded"]', { timeout: 120000 });
    await page.waitForSelector('[data-evacuation-report]');
    result.report = Object.fromEntries(await page.$$eval('[data-report-vm]', (rows) => rows.map((r) =>
      [r.dataset.reportVm, r.querySelector('[data-field="memory"]').textContent])));
    for (const vm of cfg.vms) await page.waitForSelector(vmUnder(cfg.other, vm), { timeout: 60000 });
    await page.waitForSelector('[data-action="maintenance"][aria-checked="true"]');
    result.tree_state = await page.getAttribute(`.tree a[data-host="${cfg.host}"]`, 'data-state');
    // In maintenance, Evacuate… moves what stayed (as `maintenance on` again).
    result.evacuate_in_maintenance = await page.isEnabled('[data-action="evacuate"]');
    await shot(page, 'web-host-maintenance');
    await page.click('[data-action="maintenance"]');
    await page.waitForSelector('[data-action="maintenance"][aria-checked="false"]');
    result.after = 'false';
    // Evacuate… (nothing left to move) asks the same: Escape closes it, the
    // focus back on the button; asked again, the box left as it is.
    await page.click('[data-action="evacuate"]');
    await page.waitForSelector('#evacuate-title');
    await page.keyboard.press('Escape');
    await page.waitForSelector('#evacuate-title', { state: 'detached' });
    result.escape_focus = await page.evaluate(() => document.activeElement.dataset.action || null);
    await page.click('[data-action="evacuate"]');
    await page.waitForSelector('#evacuate-title');
    const asked = page.waitForRequest((r) => r.method() === 'POST' && r.url().endsWith('/evacuate'));
    await page.click('[data-action="confirm-evacuate"]');
    result.evacuate_body = JSON.parse((await asked).postData());
    await page.waitForSelector('[data-maintenance-task="succeeded"]:has-text("evacuate: ")', { timeout: 60000 });
  },

  // The Migrate dialog: a target chosen, the VM under it in the tree (live),
  // the migrate task in the task log.
  async migrate(browser, { cfg, result, adminPage, shot }) {
    const { page } = await adminPage(browser);
    await page.goto(`${cfg.url}/ui/#/vm/${cfg.vm}`);
    await page.waitForSelector('#vm-title');
    await page.click('[data-action="migrate"]');
    await page.waitForSelector('#migrate-title');
    // Focus is in the dialog as soon as it shows; Tab and Shift+Tab go
    // round its six controls, never out; Escape closes it and the focus is
    // back on Migrate….
    const inDialog = () => page.evaluate(() => !!document.activeElement?.closest('.dialog.migrate'));
    result.focus_in_dialog = await inDialog();
    result.tab_stays = true;
    for (const key of ['Tab', 'Tab', 'Tab', 'Tab', 'Tab', 'Tab', 'Tab', 'Shift+Tab', 'Shift+Tab',
                       'Shift+Tab', 'Shift+Tab', 'Shift+Tab', 'Shift+Tab', 'Shift+Tab', 'Shift+Tab']) {
      await page.keyboard.press(key);
      if (!(await inDialog())) result.tab_stays = false;
    }
    await page.keyboard.press('Escape');
    await page.waitForSelector('#migrate-title', { state: 'detached' });
    result.focus_back = await page.evaluate(() => document.activeElement?.dataset.action || document.activeElement?.tagName);
    await page.click('[data-action="migrate"]');
    await page.waitForSelector('#migrate-title');
    // A refusal is shown as the API words it (a bad bandwidth).
    await page.fill('input[name="bandwidth"]', 'fast');
    await page.click('[data-action="confirm-migrate"]');
    await page.waitForSelector('[data-migrate-error]');
    result.refused = await page.textContent('[data-migrate-error]');
    // The focus was on Migrate, disabled while the request was out (the
    // browser put it on the page's body): Escape still closes the dialog.
    await page.keyboard.press('Escape');
    result.escape_after_refusal = await page.waitForSelector('#migrate-title', { state: 'detached', timeout: 5000 })
      .then(() => true, () => false);
    if (result.escape_after_refusal) {
      await page.click('[data-action="migrate"]');
      await page.waitForSelector('#migrate-title');
    }
    await page.fill('input[name="bandwidth"]', '');
    await page.selectOption('select[name="to"]', cfg.to);
    await page.fill('input[name="max_downtime_ms"]', '500');
    await shot(page, 'web-migrate');
    await page.click('[data-action="confirm-migrate"]');
    await page.waitForSelector('#migrate-title', { state: 'detached' });
    await page.waitForSelector(vmUnder(cfg.to, cfg.vm), { timeout: 120000 });
    await page.waitForSelector(`.tasks tr[data-kind="migrate"][data-target="${cfg.vm}"][data-state="succeeded"]`,
                               { timeout: 60000 }).catch(() => {});
    result.logged = await page.$$eval('.tasks tr[data-kind="migrate"]', (rows) => rows.length);
  },

  // A paused post-copy (its source host's record says so): the VM page
  // shows it without a reload, Resume migration's task succeeds and the
  // notice goes with the next record.
  async post_copy_resume(browser, { cfg, result, adminPage, shot }) {
    const { page } = await adminPage(browser);
    await page.goto(`${cfg.url}/ui/#/vm/${cfg.vm}`);
    await page.waitForSelector('[data-post-copy="paused"]', { timeout: 60000 });
    result.source = await page.textContent('[data-field="post-copy-source"]');
    await shot(page, 'web-post-copy-paused');
    await page.click('[data-action="resume-migration"]');
    await page.waitForSelector('[data-resume-task="succeeded"], [data-resume-task="failed"]', { timeout: 120000 });
    result.task = await page.getAttribute('[data-resume-task]', 'data-resume-task');
    result.gone = await page.waitForSelector('[data-post-copy="paused"]', { state: 'detached', timeout: 60000 })
      .then(() => true, () => false);
  },

  // Host events of what a record did not say: an offline host's page, its
  // maintenance switched on through the API (its member document); then
  // this host's page (no reload), which says "(manager)" once the role
  // moved here (the test stops the manager's vireod). /v1/hosts reads
  // counted.
  async host_member_events(browser, { cfg, result, adminPage }) {
    const { page } = await adminPage(browser);
    await page.reload(); // the lists read from the start: the offline host there
    await page.waitForSelector('.who');
    await page.goto(`${cfg.url}/ui/#/host/${cfg.offline}`);
    await page.waitForSelector('[data-action="maintenance"][aria-checked="false"]');
    const seen = [];
    page.on('request', (r) => seen.push(new URL(r.url()).pathname));
    const csrf = await page.evaluate(() => sessionStorage.getItem('vireo.csrf'));
    const resp = await page.request.post(`${cfg.url}/v1/hosts/${cfg.offline}/maintenance`, {
      headers: { 'X-CSRF-Token': csrf }, data: { on: true } });
    if (!resp.ok()) throw new Error(`maintenance: ${resp.status()} ${await resp.text()}`);
    await page.waitForSelector('[data-action="maintenance"][aria-checked="true"]', { timeout: 30000 })
      .catch(() => {});
    result.offline_switch = await page.getAttribute('[data-action="maintenance"]', 'aria-checked');
    await page.evaluate((host) => { location.hash = `#/host/${host}`; }, cfg.host);
    await page.waitForFunction(() => document.querySelector('[data-field="state"]')?.textContent.includes('(manager)'),
                               null, { timeout: 90000 }).catch(() => {});
    result.state = await page.textContent('[data-field="state"]');
    result.hosts_reads = seen.filter((p) => p === '/v1/hosts').length;
  },

  // The cluster page open, an offline host removed (no host event says
  // it: its record was gone already): its row leaves the page and the tree.
  async cluster_roster(browser, { cfg, result, adminPage }) {
    const { page } = await adminPage(browser);
    await page.reload(); // the lists read from the start: the host there
    await page.waitForSelector('.who');
    await page.click('.tree a[data-nav="cluster"]');
    const row = `[data-cluster-hosts] [data-host-row="${cfg.gone}"]`;
    await page.waitForSelector(row);
    const csrf = await page.evaluate(() => sessionStorage.getItem('vireo.csrf'));
    const resp = await page.request.delete(`${cfg.url}/v1/hosts/${cfg.gone}`, { headers: { 'X-CSRF-Token': csrf } });
    if (!resp.ok()) throw new Error(`host remove: ${resp.status()} ${await resp.text()}`);
    result.row_gone = await page.waitForSelector(row, { state: 'detached', timeout: 40000 })
      .then(() => true, () => false);
    result.tree_rows = await page.$$eval(`.tree a[data-host="${cfg.gone}"]`, (as) => as.length);
  },

  // DRS: manual chosen on the cluster page, a recommendation of the busy
  // host's VMs shown with its numbers and applied; its task succeeds.
  async drs(browser, { cfg, result, adminPage, shot }) {
    const { page } = await adminPage(browser);
    await page.click('.tree a[data-nav="cluster"]');
    await page.waitForSelector('#cluster-title');
    result.quorum = await page.textContent('[data-field="quorum"]');
    result.etcd_health = await page.textContent('[data-field="etcd-health"]');
    result.hosts = await page.$$eval('[data-cluster-hosts] [data-host-row]', (rows) => rows.map((r) => r.dataset.hostRow));
    await page.selectOption('select[name="drs-mode"]', 'manual');
    await page.waitForSelector('[data-recommendation]', { timeout: 150000 });
    const row = page.locator('[data-recommendation]').first();
    result.rec = { id: await row.getAttribute('data-recommendation'), vm: await row.getAttribute('data-vm'),
                   cells: await row.locator('td').allTextContents() };
    await shot(page, 'web-cluster');
    // The row of that id (a later round may list another first).
    await page.click(`[data-recommendation="${result.rec.id}"] [data-action="apply"]`);
    await page.waitForSelector('[data-apply-task="succeeded"]', { timeout: 120000 });
  },

  // HA's restart limit on the cluster page follows a change made elsewhere
  // (a PATCH as another admin's: 15 minutes) without a reload; set there (5
  // within 30 minutes), then a refused one (0): the API's message shown, the
  // settings kept.
  async ha_settings(browser, { cfg, result, adminPage }) {
    const { page } = await adminPage(browser);
    await page.goto(`${cfg.url}/ui/#/cluster`);
    await page.waitForSelector('input[name="ha-max-restarts"]');
    result.before = await page.getAttribute('[data-ha]', 'data-ha');
    await page.evaluate(() => fetch('/v1/cluster/ha', {
      method: 'PATCH', headers: { 'Content-Type': 'application/json',
                                  'X-CSRF-Token': sessionStorage.getItem('vireo.csrf') },
      body: '{"window_minutes": 15}' }));
    await page.waitForSelector('[data-ha="3/15"]');
    result.followed = await page.inputValue('input[name="ha-window-minutes"]');
    await page.fill('input[name="ha-max-restarts"]', '5');
    await page.fill('input[name="ha-window-minutes"]', '30');
    await page.click('[data-action="ha-save"]');
    await page.waitForSelector('[data-ha="5/30"]');
    await page.fill('input[name="ha-max-restarts"]', '0');
    await page.click('[data-action="ha-save"]');
    result.refused = await (await page.waitForSelector('[data-ha-error]')).textContent();
    result.after = await page.getAttribute('[data-ha]', 'data-ha');
  },

  // A viewer: no action enabled on the host, the VM or the cluster page.
  async viewer_cluster(browser, { cfg, result, newSession }) {
    const { page } = await newSession(browser, cfg.viewer, cfg.viewer_password);
    await page.goto(`${cfg.url}/ui/#/host/${cfg.host}`);
    await page.waitForSelector('[data-action="maintenance"]');
    result.maintenance_disabled = await page.isDisabled('[data-action="maintenance"]')
      && await page.isDisabled('[data-action="evacuate"]');
    await page.goto(`${cfg.url}/ui/#/vm/${cfg.vm}`);
    await page.waitForSelector('[data-action="migrate"]');
    result.migrate_disabled = await page.isDisabled('[data-action="migrate"]');
    await page.goto(`${cfg.url}/ui/#/cluster`);
    await page.waitForSelector('select[name="drs-mode"]');
    result.mode_disabled = await page.isDisabled('select[name="drs-mode"]');
    result.apply_enabled = await page.$$eval('[data-action="apply"]', (bs) => bs.filter((b) => !b.disabled).length);
    await page.waitForSelector('input[name="ha-max-restarts"]');
    // .inline-form's style with the cluster page opened first (no page
    // loading pages.css shown before).
    result.ha_display = await page.$eval('.ha-settings', (e) => getComputedStyle(e).display);
    result.ha_disabled = await page.isDisabled('input[name="ha-max-restarts"]')
      && await page.isDisabled('input[name="ha-window-minutes"]');
    result.ha_save = await page.$$eval('[data-action="ha-save"]', (bs) => bs.length);
  },

  // A user with roles on projects only: the tree, once its pools are read,
  // has no Cluster link.
  async project_cluster(browser, { cfg, result, newSession }) {
    const { page } = await newSession(browser, cfg.user, cfg.password);
    result.pools_link = Boolean(await page.waitForSelector('.tree a[href^="#/pool/"]'));
    result.cluster_links = await page.$$eval('.tree [data-nav="cluster"]', (els) => els.length);
  },
};
