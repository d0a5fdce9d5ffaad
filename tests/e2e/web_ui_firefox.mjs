// web_ui_firefox.mjs: web_ui_driver.mjs's scenarios in Firefox. Debian's
// /usr/bin/firefox-esr driven over WebDriver BiDi by npm's puppeteer-core
// (Playwright needs a Firefox of its own build; no browser download here),
// behind the part of Playwright's API the scenarios use: the same scenario
// code runs in both browsers. launchFirefox() answers a browser with
// newContext() and close(); a context's pages answer Playwright's page
// calls (fill, click, waitForSelector with its states, selectOption,
// screenshot with a mask, ...). Selectors are CSS with Playwright's
// :has-text("t") (the text, case and spaces aside) and :text-is("t") (the
// whole text) after a compound; its other extensions are refused.
import { createRequire } from 'node:module';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '..', '..', 'web', 'package.json'));
const puppeteer = require('puppeteer-core');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Playwright's text pseudo-classes, run in the page: the elements the
// selector up to each one matches are marked when their text fits, the
// pseudo-class becomes an attribute selector of that mark, and the marks
// go. Answers the first visible match (any match with attached), or with
// absent whether there is none. Self-contained: it runs in the page.
function waitText(selector, attached, absent) {
  const norm = (t) => t.replace(/\s+/g, ' ').trim();
  const pseudo = /:(has-text|text-is)\("((?:[^"\\]|\\.)*)"\)/;
  let rest = selector;
  let m;
  for (let n = 0; (m = pseudo.exec(rest)); n++) {
    const want = norm(JSON.parse(`"${m[2]}"`));
    const fits = m[1] === 'text-is' ? (t) => norm(t) === want
      : (t) => norm(t).toLowerCase().includes(want.toLowerCase());
    for (const e of document.querySelectorAll(rest.slice(0, m.index)))
      if (fits(e.textContent)) e.setAttribute('data-vireo-text', `${e.getAttribute('data-vireo-text') || ''} m${n}`);
    rest = `${rest.slice(0, m.index)}[data-vireo-text~="m${n}"]${rest.slice(m.index + m[0].length)}`;
  }
  const found = [...document.querySelectorAll(rest)];
  document.querySelectorAll('[data-vireo-text]').forEach((e) => e.removeAttribute('data-vireo-text'));
  const visible = (e) => e.checkVisibility() && e.getClientRects().length > 0;
  const e = found.find((x) => attached || visible(x));
  return absent ? !e : e;
}
const TEXT_PSEUDO = /:(has-text|text-is)\(/;

function css(selector) {
  if (/:(text|visible|nth-match)\(|>>/.test(selector) || TEXT_PSEUDO.test(selector))
    throw new Error(`web_ui_firefox.mjs: not supported here (only in waitForSelector and the reads): ${selector}`);
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
    // detached: until no element matches (puppeteer's hidden also takes a
    // match that is there but not shown: that is Playwright's hidden).
    if (TEXT_PSEUDO.test(selector)) {
      const gone = state === 'hidden' || state === 'detached';
      const found = await p.waitForFunction(waitText, { polling: 100, timeout: t(options) },
                                            selector, state === 'attached' || state === 'detached', gone);
      return gone ? null : handle(found.asElement());
    }
    if (state === 'detached') {
      await p.waitForFunction((s) => !document.querySelector(s), { polling: 100, timeout: t(options) },
                              css(selector));
      return null;
    }
    const opts = { timeout: t(options) };
    if (state === 'visible') opts.visible = true;
    else if (state === 'hidden') opts.hidden = true;
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
    waitForRequest: (f, options) => p.waitForRequest(f, { timeout: t(options) }),
    waitForSelector: waitFor,
    click: (selector, options) => locate(selector, options).click(),
    // Playwright's fill('') is an input event too (puppeteer's only clears
    // the value: a controlled input would keep its state).
    async fill(selector, value, options) {
      await locate(selector, options).fill(value);
      if (value === '') await p.$eval(css(selector), (e) => e.dispatchEvent(new Event('input', { bubbles: true })));
    },
    async focus(selector, options) { await (await waitFor(selector, options)).raw.focus(); },
    async press(selector, key, options) {
      await page.focus(selector, options);
      await p.keyboard.press(key);
    },
    // Playwright's: the option whose value (else label) is `value`, waited
    // for; puppeteer's select() would pick the first option when none is.
    async selectOption(selector, value, options) {
      const select = await waitFor(selector, options);
      await p.waitForFunction((e, v) => [...e.options].some((o) => o.value === v || o.label === v),
                              { polling: 100, timeout: t(options) }, select.raw, value);
      await select.raw.evaluate((e, v) => {
        const o = [...e.options].find((x) => x.value === v) || [...e.options].find((x) => x.label === v);
        e.value = o.value;
        e.dispatchEvent(new Event('input', { bubbles: true }));
        e.dispatchEvent(new Event('change', { bubbles: true }));
      }, value);
    },
    // Playwright's: a box that stays unchecked after the click is an error.
    async check(selector, options) {
      if (await page.isChecked(selector, options)) return;
      await page.click(selector, options);
      if (!(await page.isChecked(selector, options))) throw new Error(`check: ${selector} did not become checked`);
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
