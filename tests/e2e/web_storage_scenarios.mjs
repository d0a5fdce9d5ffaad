// web_storage_scenarios.mjs: the browser side of test_iscsi.py's pool page
// check, run by web_ui_driver.mjs (its browser, sessions and screenshots):
// an iSCSI pool's page shows each LUN's own size and a LUN a restore did
// not finish (its restore_incomplete mark) with "Accept as is…", which
// clears the mark. Each scenario gets the driver's kit: {cfg, result,
// adminPage, newSession, shot}.

export const storageScenarios = {
  async pool_restore_accept(browser, { cfg, result, adminPage, shot }) {
    const { page } = await adminPage(browser);
    await page.goto(`${cfg.url}/ui/#/pool/${cfg.pool}`);
    const row = `tr[data-volume="${cfg.volume}"]`;
    await page.waitForSelector(`${row}[data-restore-incomplete]`);
    result.mark = await page.getAttribute(row, 'data-restore-incomplete');
    result.lun_size = Number(await page.getAttribute(`${row} [data-lun-size]`, 'data-lun-size'));
    result.size_cell = await page.textContent(`${row} td:nth-child(2)`);
    await shot(page, 'web-pool-restore-incomplete');
    await page.click(`${row} [data-action="volume-restore-clear"]`);
    await page.click(`${row} [data-action="confirm-volume-restore-clear"]`);
    result.gone = await page.waitForSelector(`${row}:not([data-restore-incomplete])`, { timeout: 60000 })
      .then(() => true, () => false);
  },
};
