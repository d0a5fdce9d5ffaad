// web_ui_firefox.mjs: web_ui_driver.mjs's scenarios in Firefox. Debian's
// /usr/bin/firefox-esr driven over WebDriver BiDi by npm's puppeteer-core
// (Playwright needs a Firefox of its own build; no browser download here),
// behind the part of Playwright's API the scenarios use: the same scenario
// code runs in both browsers. launchFirefox() answers a browser with
// newContext() and close(); a context's pages answer Playwright's page
// calls (fill, click, waitForSelector with its states, selectOption,
// screenshot with a mask, ...). Playwright's own selector extensions
// (:has-text, :text-is) are refused with a clear error: plain CSS only.
import { createRequire } from 'node:module';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '..', '..', 'web', 'package.json'));
const puppeteer = require('puppeteer-core');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function css(selector) {
  if (/:(has-text|text-is|text|visible)\(|>>/.test(selector))
    throw new Error(`web_ui_firefox.mjs: Playwright's selector extensions are not supported: ${selector}`);
  return selector;
}

// Playwright's element handle, as the scenarios use it.
function handle(el) {
  return {
    raw: el,
    textContent: () => el.evaluate((e) => e.textContent),
    inputValue: () => el.evaluate((e) => e.value),
    getAttribute: (name) => el.evaluate((e, n) => e.getAttribute(n), name),
    isDisabled: () => el.evaluate((e) => e.disabled === true),
  };
}

function wrapPage(p) {
  let timeout = 30000;
  const t = (o) => (o && o.timeout !== undefined ? o.timeout : timeout);
  const waitFor = async (selector, options = {}) => {
    const state = options.state || 'visible';
    const opts = { timeout: t(options) };
    if (state === 'visible') opts.visible = true;
    else if (state === 'hidden' || state === 'detached') opts.hidden = true;
    const el = await p.waitForSelector(css(selector), opts);
    return el ? handle(el) : null;
  };
  const attached = (selector, options) => waitFor(selector, { ...options, state: 'attached' });
  const locate = (selector, options) => p.locator(css(selector)).setTimeout(t(options));
  const page = {
    raw: p,
    setDefaultTimeout(ms) { timeout = ms; p.setDefaultTimeout(ms); },
    goto: (url) => p.goto(url, { timeout }),
    url: () => p.url(),
    keyboard: p.keyboard,
    on: (event, f) => p.on(event, f),
    off: (event, f) => p.off(event, f),
    evaluate: (f, arg) => p.evaluate(f, arg),
    $eval: (selector, f, arg) => p.$eval(css(selector), f, arg),
    $$eval: (selector, f, arg) => p.$$eval(css(selector), f, arg),
    waitForFunction: (f, arg, options = {}) =>
      p.waitForFunction(f, { polling: options.polling || 'raf', timeout: t(options) }, arg),
    waitForTimeout: sleep,
    waitForSelector: waitFor,
    click: (selector, options) => locate(selector, options).click(),
    fill: (selector, value, options) => locate(selector, options).fill(value),
    async focus(selector, options) { await (await waitFor(selector, options)).raw.focus(); },
    async press(selector, key, options) {
      await page.focus(selector, options);
      await p.keyboard.press(key);
    },
    async selectOption(selector, value, options) {
      await waitFor(selector, options);
      await p.select(css(selector), value);
    },
    async check(selector, options) {
      if (!(await page.isChecked(selector, options))) await page.click(selector, options);
    },
    textContent: async (selector, options) => (await attached(selector, options)).textContent(),
    getAttribute: async (selector, name, options) => (await attached(selector, options)).getAttribute(name),
    inputValue: async (selector, options) => (await attached(selector, options)).inputValue(),
    isDisabled: async (selector, options) => (await attached(selector, options)).isDisabled(),
    isChecked: async (selector, options) => (await attached(selector, options)).raw.evaluate((e) => e.checked),
    isVisible: async (selector) => {
      const el = await p.$(css(selector));
      return Boolean(el && await el.isVisible());
    },
    // A mask of screenshot() names its element by the locator's selector.
    locator: (selector) => ({
      selector,
      boundingBox: async () => (await attached(selector)).raw.boundingBox(),
    }),
    // Playwright's screenshot: {path, type, quality, mask: [locator's
    // selector], maskColor}; the mask is a box painted over each element
    // for the picture (CSSOM styles: the CSP allows them).
    async screenshot({ path, type = 'png', quality, mask = [], maskColor = '#ff00ff' } = {}) {
      const selectors = mask.map((m) => m.selector);
      await p.evaluate((sels, colour) => {
        for (const s of sels) {
          for (const e of document.querySelectorAll(s)) {
            const r = e.getBoundingClientRect();
            const box = document.createElement('div');
            box.className = 'vireo-test-mask';
            Object.assign(box.style, { position: 'fixed', left: `${r.left}px`, top: `${r.top}px`,
                                       width: `${r.width}px`, height: `${r.height}px`,
                                       background: colour, zIndex: '2147483647' });
            document.body.appendChild(box);
          }
        }
      }, selectors, maskColor);
      try {
        const options = { path, type, ...(type === 'jpeg' ? { quality } : {}) };
        return Buffer.from(await p.screenshot(options));
      } finally {
        await p.evaluate(() => document.querySelectorAll('.vireo-test-mask').forEach((e) => e.remove()));
      }
    },
  };
  return page;
}

// A browser with Playwright's newContext(): each context a user context of
// its own (cookies, storage), its pages at the context's viewport.
export async function launchFirefox(executablePath) {
  const browser = await puppeteer.launch({
    browser: 'firefox', protocol: 'webDriverBiDi', executablePath, headless: true,
    acceptInsecureCerts: true, // vireod's own CA (Playwright's ignoreHTTPSErrors)
  });
  return {
    version: () => browser.version(),
    async newContext({ viewport = { width: 1366, height: 768 } } = {}) {
      const context = await browser.createBrowserContext();
      return {
        async newPage() {
          const page = await context.newPage();
          await page.setViewport(viewport);
          return wrapPage(page);
        },
        close: () => context.close(),
      };
    },
    close: () => browser.close(),
  };
}
