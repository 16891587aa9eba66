// Weft's web app in a real browser (Debian's chromium, driven by playwright-core) against a
// real `weft serve`: what a new user does in their first hour, in order. Each step saves a
// screenshot. Run by `cargo test` (crates/weft/tests/web_app.rs), which starts the server and
// passes WEFT_URL, WEFT_SETUP_LINK, WEFT_CHROMIUM and WEFT_SCREENSHOTS.
//
// Every page visited is also checked for what the app promises: no request to another host,
// under 100 KB before images, a label on every control, text contrast of WCAG AA, and no
// sideways scrolling at 360 px.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BASE = process.env.WEFT_URL;
const SETUP_LINK = process.env.WEFT_SETUP_LINK;
const SHOTS = process.env.WEFT_SCREENSHOTS || 'screenshots';
const EMAIL = 'olu@example.com';
const PASSWORD = 'a long enough password';
const SUBJECT = 'grace.hopper@example.com';
const PAGE_BUDGET = 100 * 1024;

const RECIPE_WITH_ERROR = `name: welcome
trigger:
  webhook:
    path: welcome
steps:
  - id: greet
    sett:
      greeting: "Hello, {{ trigger.body.name }}"
`;

const RECIPE = `name: welcome
trigger:
  webhook:
    path: welcome
steps:
  - id: greet
    set:
      greeting: "Hello, {{ trigger.body.name }}"
  - id: pause
    wait: 2s
  - id: each_line
    for_each: trigger.body.lines
    as: line
    steps:
      - id: price
        set:
          total: "{{ line.qty * line.price }}"
  - id: big
    if: "trigger.body.lines | length > 1"
    then:
      - id: note
        set:
          note: "a big order from {{ trigger.body.email }}"
output:
  greeting: "{{ vars.greeting }}"
`;

let browser;
let page;
/** What the page under test asked for since the last visit: urls and bytes. */
let requests = [];
/** Script errors of the page since the last check: every page is to have none. */
let pageErrors = [];
const TOKEN = 'tok_e2e_never_shown_back_4711';

/** A stand-in for a web API the connection points at: its test must reach something. */
const standIn = http.createServer((request, response) => {
  response.writeHead(200, { 'content-type': 'application/json' });
  response.end('{"ok":true}');
});

test.before(async () => {
  assert.ok(BASE, 'WEFT_URL is set');
  assert.ok(SETUP_LINK, 'WEFT_SETUP_LINK is set');
  fs.mkdirSync(SHOTS, { recursive: true });
  await new Promise((resolve) => standIn.listen(0, '127.0.0.1', resolve));
  browser = await chromium.launch({
    executablePath: process.env.WEFT_CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', (error) => pageErrors.push(String(error)));
  page.on('dialog', (dialog) => dialog.accept());
  page.on('response', async (response) => {
    const request = response.request();
    let bytes = 0;
    try { bytes = (await response.body()).length; } catch { bytes = 0; }
    requests.push({ url: request.url(), type: request.resourceType(), bytes });
  });
});

test.after(async () => {
  await browser?.close();
  standIn.close();
});

async function shot(name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** Opens a page of the app afresh and checks what every page promises. */
async function visit(pathname, heading) {
  requests = [];
  await page.goto(BASE + pathname);
  await page.getByRole('heading', { level: 1, name: heading }).waitFor();
  await page.waitForLoadState('networkidle');
  await checkPage(pathname);
}

async function checkPage(label) {
  const origin = new URL(BASE).origin;
  const foreign = requests.filter((one) => !one.url.startsWith(origin) && !one.url.startsWith('data:') && !one.url.startsWith('blob:'));
  assert.deepEqual(foreign, [], `${label} asked another host`);
  assert.deepEqual(pageErrors, [], `${label} had script errors`);
  pageErrors = [];
  const bytes = requests.filter((one) => one.type !== 'image').reduce((sum, one) => sum + one.bytes, 0);
  assert.ok(bytes < PAGE_BUDGET, `${label} took ${bytes} bytes, over ${PAGE_BUDGET}`);
  const problems = await page.evaluate(accessibilityProblems);
  assert.deepEqual(problems, [], `${label} has accessibility problems`);
}

/** Runs in the page: controls without labels and text below WCAG AA contrast. */
function accessibilityProblems() {
  const found = [];
  for (const control of document.querySelectorAll('input:not([type=hidden]), select, textarea, button')) {
    // Not drawn, not read out: such as the account name a password form holds for password managers.
    if (control.closest('[hidden]')) continue;
    const named = control.labels?.length || control.getAttribute('aria-label') || control.getAttribute('aria-labelledby')
      || (control.tagName === 'BUTTON' && control.textContent.trim());
    if (!named) found.push(`unlabelled ${control.outerHTML.slice(0, 80)}`);
  }
  const rgb = (text) => (text.match(/[\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => {
    const channel = (value) => { const c = value / 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  };
  const background = (element) => {
    for (let node = element; node; node = node.parentElement) {
      const colour = rgb(getComputedStyle(node).backgroundColor);
      if (colour.length === 3 || (colour.length === 4 && colour[3] > 0.5)) return colour.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  for (let text = walker.nextNode(); text; text = walker.nextNode()) {
    const element = text.parentElement;
    if (!text.textContent.trim() || seen.has(element) || !element.checkVisibility?.()) continue;
    seen.add(element);
    const style = getComputedStyle(element);
    if (element.closest('.visually-hidden, svg, option')) continue;
    const [fore, back] = [luminance(rgb(style.color).slice(0, 3)), luminance(background(element))];
    const ratio = (Math.max(fore, back) + 0.05) / (Math.min(fore, back) + 0.05);
    const large = parseFloat(style.fontSize) >= 24 || (parseFloat(style.fontSize) >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) found.push(`contrast ${ratio.toFixed(2)} of "${text.textContent.trim().slice(0, 40)}"`);
  }
  return found;
}

/** The page at 360 px: nothing wider than the screen, then back to a desktop's width. */
async function checkNarrow(name) {
  await page.setViewportSize({ width: 360, height: 780 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `${name} scrolls sideways by ${overflow} px at 360 px`);
  await shot(`${name}-360px`);
  await page.setViewportSize({ width: 1280, height: 900 });
}

test('a new user sets Weft up, builds a recipe, watches it run, reruns it and erases a person', async (t) => {
  // Each step builds on the one before: after a failure the rest are skipped, not piled on.
  let broken = false;
  const step = (name, body) => t.test(name, { skip: broken && 'an earlier step failed' }, async () => {
    try { await body(); } catch (error) {
      broken = true;
      await shot('failed').catch(() => {});
      throw error;
    }
  });
  await step('first-run setup makes the owner and signs them in', async () => {
    await page.goto(SETUP_LINK);
    await page.getByLabel('Your name').fill('Olu Owner');
    await page.getByLabel('Email').fill(EMAIL);
    await page.getByLabel('Password').fill(PASSWORD);
    await shot('01-setup');
    await page.getByRole('button', { name: 'Create the owner account' }).click();
    await page.getByRole('heading', { level: 1, name: 'Dashboard' }).waitFor();
  });

  await step('signing out and in again; the keyboard reaches the skip link first', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
    await visit('/sign-in', 'Sign in');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to content');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(outline, 'none', 'the focused control shows it');
    await page.getByLabel('Email').fill(EMAIL);
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('alert').waitFor();
    await shot('02-sign-in-refused');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Dashboard' }).waitFor();
  });

  await step('a connection is made from its connector\'s form and tested', async () => {
    await visit('/connections', 'Connections');
    await page.getByLabel('Connector').selectOption('http');
    await page.getByLabel('Name', { exact: true }).fill('shop-api');
    await page.getByLabel('base_url', { exact: true }).fill(`http://127.0.0.1:${standIn.address().port}`);
    await page.getByLabel('auth', { exact: true }).fill('bearer');
    await page.getByLabel('token', { exact: true }).fill(TOKEN);
    await shot('03-new-connection');
    await page.getByRole('button', { name: 'Create' }).click();
    await page.getByRole('heading', { level: 1, name: 'shop-api' }).waitFor();
    await page.getByRole('button', { name: 'Test' }).click();
    await page.getByText('The test passed.').waitFor();
    await checkPage('/connections/{id}');
    assert.ok(!(await page.content()).includes(TOKEN), 'the secret is never shown back');
    await shot('04-connection-tested');
  });

  let recipeUrl;
  await step('a recipe with a mistake is flagged at its line as it is typed, then fixed and saved', async () => {
    await visit('/recipes/new', 'New recipe');
    const editor = page.getByLabel('Recipe (YAML)');
    await editor.fill(RECIPE_WITH_ERROR);
    const problem = page.getByRole('button', { name: /^Line 7, column 5: unknown key `sett`/ });
    await problem.waitFor();
    const flagged = await page.locator('.gutter li.bad').allTextContents();
    assert.ok(flagged.includes('7'), `line 7 is marked in the gutter (marked: ${flagged})`);
    await shot('05-editor-error');
    await problem.click();
    assert.equal(await page.evaluate(() => document.activeElement.id), 'recipe-text', 'the problem takes the caret to its line');
    await editor.fill(RECIPE);
    await page.getByText('The recipe is valid.').waitFor();
    assert.equal(await page.locator('.gutter li.bad').count(), 0);
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('heading', { level: 1, name: 'welcome' }).waitFor();
    recipeUrl = page.url();
    const flow = page.getByRole('list', { name: 'Flow of welcome' });
    for (const step of ['greet', 'pause', 'each_line', 'price', 'big', 'note']) {
      await flow.getByText(step, { exact: true }).waitFor();
    }
    await checkPage('/recipes/{id}');
    await shot('06-recipe-flow');
    await checkNarrow('06-recipe-flow');
  });

  await step('a second version is saved and compared with the first', async () => {
    await page.getByRole('link', { name: 'Edit' }).click();
    const editor = page.getByLabel('Recipe (YAML)');
    await editor.waitFor();
    await editor.fill((await editor.inputValue()).replace('"Hello, {{', '"Welcome, {{'));
    await page.getByText('The recipe is valid.').waitFor();
    await page.getByRole('button', { name: 'Save a new version' }).click();
    await page.getByText('version 2 ·').waitFor();
    await page.getByRole('link', { name: 'Versions' }).click();
    await page.getByRole('heading', { name: 'Changes from version 1 to 2' }).waitFor();
    const diff = page.getByRole('region', { name: 'Difference' });
    await diff.locator('del', { hasText: '"Hello, {{' }).waitFor();
    await diff.locator('ins', { hasText: '"Welcome, {{' }).waitFor();
    assert.deepEqual(await diff.locator('ins, del').evaluateAll((lines) => lines.map((line) => line.tagName)), ['DEL', 'INS'],
      'one line changed: the old one removed, then the new one added');
    await page.getByText('1 line(s) removed, 1 added.').waitFor();
    await shot('06-versions-diff');
  });

  await step('a test run with a sample event shows its job step by step', async () => {
    await page.getByRole('link', { name: 'Test run' }).click();
    await page.getByLabel('Sample event (JSON)').fill(JSON.stringify({ body: { name: 'Ada', lines: [{ qty: 1, price: 3 }] } }));
    await page.getByRole('button', { name: 'Run with this event' }).click();
    await page.locator('.badge.succeeded').first().waitFor({ timeout: 20000 });
    await page.locator('ol.steps > li').filter({ hasText: 'greet' }).first().getByText('Output', { exact: true }).click();
    await page.getByText('"Welcome, Ada"').first().waitFor();
    await shot('06-test-run');
  });

  let jobId;
  await step('its webhook fires and the job page follows the job live until it finishes', async () => {
    const answer = await fetch(`${BASE}/hooks/welcome`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Grace', email: SUBJECT, lines: [{ qty: 2, price: 5 }, { qty: 1, price: 7 }] }),
    });
    assert.equal(answer.status, 202);
    jobId = (await answer.json()).job_id;
    await page.goto(`${BASE}/jobs/${jobId}`);
    await page.getByText('updating live…').waitFor();
    await shot('07-job-running');
    await page.locator('.badge.succeeded').first().waitFor({ timeout: 20000 });
    assert.equal(await page.getByText('updating live…').count(), 0, 'the page stops updating once the job ended');
    await checkPage('/jobs/{id}');
  });

  await step('its steps open to show their input and output', async () => {
    const steps = page.locator('ol.steps > li');
    assert.ok(await steps.count() >= 5, 'greet, pause, two loop iterations, big and note are listed');
    const greet = steps.filter({ hasText: 'greet' }).first();
    await greet.getByText('Output', { exact: true }).click();
    await greet.getByText('"Welcome, Grace"').first().waitFor();
    await shot('08-job-steps');
    await checkNarrow('08-job-steps');
  });

  await step('the job is rerun and the rerun finishes too', async () => {
    await page.getByRole('button', { name: 'Rerun', exact: true }).click();
    await page.getByText('Rerun of').waitFor();
    assert.notEqual(page.url(), `${BASE}/jobs/${jobId}`);
    await page.locator('.badge.succeeded').first().waitFor({ timeout: 20000 });
    await shot('09-rerun');
  });

  await step('the jobs list and the dashboard show the three jobs', async () => {
    await visit('/jobs', 'Jobs');
    assert.equal(await page.locator('tbody tr').filter({ hasText: 'welcome' }).count(), 3);
    await shot('10-jobs');
    await visit('/?days=1', 'Dashboard');
    await page.getByText('Jobs per hour, last 24 hours').first().waitFor();
    await shot('11-dashboard');
    await checkNarrow('11-dashboard');
    await visit(new URL(recipeUrl).pathname, 'welcome');
  });

  await step('the usage page shows the month against the plan, with a chart by month', async () => {
    await visit('/usage', 'Usage');
    await page.getByText('unlimited', { exact: true }).waitFor();
    await page.getByText('Tasks per month').first().waitFor();
    const usage = await page.evaluate(async () => (await fetch('/api/v1/usage')).json());
    assert.ok(usage.usage.jobs >= 3, 'the jobs run so far are counted');
    await page.getByText(String(usage.usage.tasks), { exact: true }).first().waitFor();
    await shot('16-usage');
    await checkNarrow('16-usage');
  });

  await step('a person is found in the job history and erased from it', async () => {
    await visit('/privacy', 'Privacy');
    await page.getByLabel('Email, phone number or other identifier').fill(SUBJECT);
    await page.getByRole('button', { name: 'Search the job history' }).click();
    await page.getByText(/^2 jobs hold/).waitFor();
    await shot('12-subject-found');
    await page.getByRole('button', { name: 'Erase from every ended job' }).click();
    await page.getByText(/2 of 2 jobs erased/).waitFor({ timeout: 20000 });
    await shot('13-subject-erased');
    const record = await page.evaluate(async (id) => (await fetch(`/api/v1/jobs/${id}`)).text(), jobId);
    assert.ok(!record.includes(SUBJECT), 'the job no longer holds the address');
    assert.ok(record.includes('[erased]'));
  });

  await step('the other pages draw, within their budget, labelled and legible', async () => {
    for (const [pathname, title] of [['/members', 'Members'], ['/tokens', 'API tokens'], ['/audit', 'Audit log'],
      ['/library', 'Library'], ['/account', 'Your account'], ['/connections', 'Connections']]) {
      await visit(pathname, title);
      assert.ok(!(await page.content()).includes(TOKEN), `${pathname} shows no secret`);
    }
    await checkNarrow('15-account');
  });

  await step('every job of the recipe is rerun at once, with its progress shown', async () => {
    const recipeId = new URL(recipeUrl).pathname.split('/').pop();
    await visit(`/jobs?recipe=${recipeId}`, 'Jobs');
    await page.getByRole('button', { name: 'Rerun them' }).click();
    await page.getByText('3 of 3 jobs: 3 rerun, 0 skipped').waitFor({ timeout: 20000 });
    await page.getByText('3 rerun, 0 skipped.').waitFor();
    await shot('14-bulk-rerun');
  });
});
