// Recipes: the list, and a recipe's page: its flow drawn as a diagram, the editor that checks
// the YAML as it is typed, its versions with a diff between two, and a test run whose job is
// shown step by step as it runs.

import { h, api, jobLink, session, heading, table, link, badge, time, message, say, explain, button, field, can, go, announce } from '../lib.js';
import { watchJob } from './jobs.js';

const STARTER = `name: my-recipe
trigger:
  webhook:
    path: my-recipe
steps:
  - id: greet
    set:
      greeting: "Hello, {{ trigger.body.name }}"
output:
  greeting: "{{ vars.greeting }}"
`;

export async function render(main, { id, params }) {
  if (!id) return list(main);
  if (id === 'new') return editorPage(main, null);
  const recipe = await api('GET', `/recipes/${encodeURIComponent(id)}`);
  return recipePage(main, recipe, params.get('tab') || 'flow');
}

async function list(main) {
  const { recipes } = await api('GET', '/recipes');
  main.replaceChildren(
    heading('Recipes'),
    can('builder') ? h('div', { class: 'actions' }, h('a', { class: 'button', href: '/recipes/new' }, 'New recipe')) : null,
    recipes.length
      ? table('Recipes of this workspace', ['Recipe', 'Status', 'Version', 'Last run', 'Updated'], recipes.map((recipe) => [
        link(`/recipes/${encodeURIComponent(recipe.id)}`, recipe.name),
        badge(recipe.enabled ? 'enabled' : 'disabled'),
        String(recipe.version),
        recipe.last_job
          ? h('span', null, badge(recipe.last_job.status), ' ', time(recipe.last_job.created_at), ' ', jobLink(recipe.last_job.id))
          : badge(null),
        time(recipe.updated_at),
      ]))
      : h('p', null, 'No recipes yet.'));
}

const TABS = [['flow', 'Flow'], ['edit', 'Edit'], ['versions', 'Versions'], ['test', 'Test run']];

async function recipePage(main, recipe, tab) {
  const base = `/recipes/${encodeURIComponent(recipe.id)}`;
  const status = h('div', { class: 'form-message' });
  const toggle = can('builder')
    ? button(recipe.enabled ? 'Disable' : 'Enable', async () => {
      try {
        await api('POST', `${base}/${recipe.enabled ? 'disable' : 'enable'}`);
        announce(`Recipe ${recipe.enabled ? 'disabled' : 'enabled'}`);
        go(`${base}?tab=${tab}`);
      } catch (error) { say(status, 'error', explain(error)); }
    }, { class: 'secondary' })
    : null;
  const remove = can('builder')
    ? button('Delete', async () => {
      if (!confirm(`Delete the recipe ${recipe.name} and its versions? Its job history stays until retention removes it.`)) return;
      try { await api('DELETE', base); go('/recipes'); } catch (error) { say(status, 'error', explain(error)); }
    }, { class: 'danger' })
    : null;
  main.replaceChildren(
    heading(recipe.name),
    h('p', null, badge(recipe.enabled ? 'enabled' : 'disabled'), ` version ${recipe.version}`,
      recipe.webhook_path ? [' · webhook ', h('code', null, webhookUrl(recipe.webhook_path))] : null),
    h('div', { class: 'actions' }, toggle, link(`/jobs?recipe=${encodeURIComponent(recipe.id)}`, 'Its jobs'), remove),
    status,
    h('nav', { class: 'tabs', 'aria-label': 'Recipe' }, TABS.map(([key, label]) =>
      h('a', { href: `${base}?tab=${key}`, 'aria-current': key === tab ? 'page' : null }, label))));
  const body = h('section', { 'aria-label': TABS.find(([key]) => key === tab)?.[1] || 'Flow' });
  main.append(body);
  if (tab === 'edit') return editor(body, recipe);
  if (tab === 'versions') return versions(body, recipe);
  if (tab === 'test') return testRun(body, recipe);
  const checked = await api('POST', '/recipes/check', recipe.source);
  body.append(checked.flow ? flowDiagram(checked.flow) : message('error', 'This version no longer compiles.'), h('h2', null, 'Text'), h('pre', null, h('code', null, recipe.source)));
}

/** Where a recipe's webhook listens: the default workspace's under /hooks, others' under /w/{id}/hooks. */
function webhookUrl(path) {
  const prefix = session.workspace === 'default' ? '' : `/w/${encodeURIComponent(session.workspace)}`;
  return `${location.origin}${prefix}/hooks/${path.replace(/^\//, '')}`;
}

async function editorPage(main) {
  main.replaceChildren(heading('New recipe'));
  const body = h('section');
  main.append(body);
  editor(body, null);
}

/** The YAML editor: problems flagged at their lines as one types, the flow drawn when valid. */
function editor(body, recipe) {
  const text = h('textarea', { class: 'code', spellcheck: 'false', wrap: 'off', autocapitalize: 'off', rows: 24, 'aria-describedby': 'problems' });
  text.value = recipe ? recipe.source : STARTER;
  const gutter = h('ol', { class: 'gutter', 'aria-hidden': 'true' });
  const problems = h('ul', { id: 'problems', class: 'problems', 'aria-live': 'polite' });
  const state = h('p', { class: 'hint', 'aria-live': 'polite' });
  const preview = h('div');
  const status = h('div', { class: 'form-message' });
  let bad = new Map();
  let asked = 0;

  const drawGutter = () => {
    const lines = text.value.split('\n').length;
    gutter.replaceChildren(...Array.from({ length: lines }, (_, index) => {
      const problem = bad.get(index + 1);
      return h('li', { class: problem ? 'bad' : null, title: problem || null }, String(index + 1));
    }));
    gutter.scrollTop = text.scrollTop;
  };
  const showProblems = (found) => {
    bad = new Map();
    for (const problem of found) bad.set(problem.line, [bad.get(problem.line), problem.message].filter(Boolean).join('; '));
    text.setAttribute('aria-invalid', found.length ? 'true' : 'false');
    problems.replaceChildren(...found.map((problem) => h('li', null, button(`Line ${problem.line}, column ${problem.column}: ${problem.message}`, () => goTo(text, problem.line, problem.column)))));
    drawGutter();
  };
  const check = async () => {
    const mine = ++asked;
    try {
      const result = await api('POST', '/recipes/check', text.value);
      if (mine !== asked) return;
      showProblems(result.problems);
      state.textContent = result.valid ? 'The recipe is valid.' : `${result.problems.length} problem(s).`;
      if (result.flow) preview.replaceChildren(h('h2', null, 'Flow'), flowDiagram(result.flow));
      else if (preview.firstChild) preview.firstChild.textContent = 'Flow (of the text before its problems)';
    } catch (error) {
      if (mine === asked) state.textContent = explain(error);
    }
  };
  let timer = null;
  text.addEventListener('input', () => {
    drawGutter();
    clearTimeout(timer);
    timer = setTimeout(check, 300);
  });
  text.addEventListener('scroll', () => { gutter.scrollTop = text.scrollTop; });

  const save = button(recipe ? 'Save a new version' : 'Save', async () => {
    try {
      const saved = recipe
        ? await api('PUT', `/recipes/${encodeURIComponent(recipe.id)}`, text.value)
        : await api('POST', '/recipes', text.value);
      announce('Recipe saved');
      go(`/recipes/${encodeURIComponent(saved.id)}?tab=flow`);
    } catch (error) {
      if (error.problems?.length) showProblems(error.problems);
      say(status, 'error', explain(error));
    }
  });
  body.append(
    h('label', { for: 'recipe-text' }, h('strong', null, 'Recipe (YAML)')),
    h('div', { class: 'editor' }, gutter, Object.assign(text, { id: 'recipe-text' })),
    state, problems, status,
    can('builder') ? h('div', { class: 'actions' }, save) : message('info', 'Only builders may save recipes.'),
    preview);
  drawGutter();
  check();
}

/** Puts the caret at a line and column of the text. */
function goTo(text, line, column) {
  const lines = text.value.split('\n');
  let offset = 0;
  for (let index = 0; index < line - 1 && index < lines.length; index++) offset += lines[index].length + 1;
  offset += Math.max(0, column - 1);
  text.focus();
  text.setSelectionRange(offset, offset);
  const lineHeight = parseFloat(getComputedStyle(text).lineHeight) || 20;
  text.scrollTop = Math.max(0, (line - 3) * lineHeight);
}

/** A recipe's flow: the trigger, then each step; branches and loop bodies nested beside. */
export function flowDiagram(flow) {
  const trigger = h('li', null, h('div', { class: 'node trigger' },
    h('span', { class: 'kind' }, `trigger · ${flow.trigger.kind}`), flow.trigger.summary));
  return h('ol', { class: 'flow', 'aria-label': `Flow of ${flow.name}` }, trigger, steps(flow.steps));
}

function steps(list) {
  return list.map((step) => h('li', null,
      h('div', { class: 'node' },
        h('span', { class: 'kind' }, `${step.kind} · line ${step.line}`),
        h('strong', null, step.id), ' ', step.summary),
      step.branches.length ? h('div', { class: 'branches' }, step.branches.map((branch) =>
        h('div', { class: `branch${branch.loop ? ' loop' : ''}` },
          h('span', { class: 'branch-label' }, branch.loop ? `↻ ${branch.label}` : branch.label),
          branch.steps.length ? h('ol', null, steps(branch.steps)) : h('p', { class: 'empty' }, 'no steps')))) : null));
}

async function versions(body, recipe) {
  const { versions: all } = await api('GET', `/recipes/${encodeURIComponent(recipe.id)}/versions`);
  if (all.length < 2) {
    body.append(h('p', null, 'This recipe has one version so far.'), h('pre', null, h('code', null, recipe.source)));
    return;
  }
  const choose = (selected) => h('select', null, all.map((version) =>
    h('option', { value: version.version, selected: version.version === selected }, `Version ${version.version} (${new Date(version.created_at).toLocaleString()})`)));
  const older = choose(all[all.length - 2].version);
  const newer = choose(all[all.length - 1].version);
  const output = h('div', { 'aria-live': 'polite' });
  const draw = () => {
    const from = all.find((version) => String(version.version) === older.value);
    const to = all.find((version) => String(version.version) === newer.value);
    output.replaceChildren(h('h3', null, `Changes from version ${from.version} to ${to.version}`), diffView(from.source, to.source));
  };
  older.addEventListener('change', draw);
  newer.addEventListener('change', draw);
  body.append(
    h('div', { class: 'actions' }, field('From', older), field('To', newer)),
    output,
    table('Every version', ['Version', 'Saved'], all.slice().reverse().map((version) => [String(version.version), time(version.created_at)])));
  draw();
}

/** A line diff of two texts (longest common subsequence): removed, added and kept lines. */
export function diffLines(before, after) {
  const a = before.split('\n');
  const b = after.split('\n');
  const lengths = Array.from({ length: a.length + 1 }, () => new Uint32Array(b.length + 1));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lengths[i][j] = a[i] === b[j] ? lengths[i + 1][j + 1] + 1 : Math.max(lengths[i + 1][j], lengths[i][j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) { out.push([' ', a[i]]); i++; j++; }
    // Removals before additions, as diffs are read.
    else if (i < a.length && (j === b.length || lengths[i + 1][j] >= lengths[i][j + 1])) { out.push(['-', a[i]]); i++; }
    else { out.push(['+', b[j]]); j++; }
  }
  return out;
}

function diffView(before, after) {
  const lines = diffLines(before, after);
  const removed = lines.filter(([kind]) => kind === '-').length;
  const added = lines.filter(([kind]) => kind === '+').length;
  return h('div', null,
    h('p', null, removed + added ? `${removed} line(s) removed, ${added} added.` : 'The two versions are the same.'),
    h('div', { class: 'diff', role: 'region', 'aria-label': 'Difference' }, lines.map(([kind, line]) =>
      kind === '+' ? h('ins', null, `+ ${line}`) : kind === '-' ? h('del', null, `- ${line}`) : h('span', null, `  ${line}`))));
}

async function testRun(body, recipe) {
  const sample = h('textarea', { class: 'code', rows: 8, spellcheck: 'false' });
  sample.value = '{\n  "body": { "name": "Ada" }\n}';
  const status = h('div', { class: 'form-message' });
  const result = h('div');
  const run = button('Run with this event', async () => {
    let event;
    try { event = JSON.parse(sample.value || '{}'); } catch (error) {
      say(status, 'error', `The event is not JSON: ${error.message}`);
      return;
    }
    try {
      const { job_id: jobId } = await api('POST', `/recipes/${encodeURIComponent(recipe.id)}/run`, event);
      status.replaceChildren(message('info', 'The job is accepted; its record follows as it runs.'), link(`/jobs/${encodeURIComponent(jobId)}`, 'Open the job'));
      await watchJob(result, jobId);
    } catch (error) { say(status, 'error', explain(error)); }
  });
  body.append(
    field('Sample event (JSON)', sample, 'The event the trigger would give: for a webhook, its body under "body". The recipe runs for real: its actions reach their systems.'),
    can('operator') ? h('div', { class: 'actions' }, run) : message('info', 'Only operators may run recipes.'),
    status, result);
}
