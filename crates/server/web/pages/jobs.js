// Jobs: the history with its filters, reruns of what a filter selects with their progress,
// and a job's page: each step's status, timing, input and output, updated live until the
// job ends, with rerun and cancel.

import { h, api, jobLink, heading, table, link, badge, time, message, say, explain, button, field, can, go, jsonTree, fmtDuration, between, UNFINISHED, progress, announce } from '../lib.js';

const STATUSES = ['queued', 'held', 'running', 'waiting', 'succeeded', 'failed'];
/** Reruns asked for in one call: small enough that the progress bar moves. */
const RERUN_BATCH = 25;
/** Most jobs a bulk rerun takes on, as the API's own limit. */
const RERUN_MAX = 1000;

export async function render(main, { id, params }) {
  if (id) return jobPage(main, id);
  return list(main, params);
}

/** The filter as the API takes it, from the page's query. */
function filterOf(params) {
  const filter = {};
  for (const key of ['recipe', 'status', 'since', 'until']) if (params.get(key)) filter[key] = params.get(key);
  return filter;
}

async function list(main, params) {
  const filter = filterOf(params);
  const { recipes } = await api('GET', '/recipes');
  const form = filterForm(filter, recipes);
  const rows = h('tbody');
  const more = h('div', { class: 'actions' });
  const bulk = h('div');
  main.replaceChildren(heading('Jobs'), form,
    h('div', { class: 'table-wrap' }, h('table', null,
      h('caption', null, Object.keys(filter).length ? 'Jobs the filter selects, newest first' : 'Jobs, newest first'),
      h('thead', null, h('tr', null, ['Job', 'Recipe', 'Status', 'Created', 'Took'].map((text) => h('th', { scope: 'col' }, text)))),
      rows)),
    more, bulk);
  const failure = h('div');
  more.after(failure);
  const load = async (before) => {
    const query = new URLSearchParams({ ...filter, limit: '50' });
    if (before) query.set('before', before);
    let page;
    try {
      page = await api('GET', `/jobs?${query}`);
    } catch (error) {
      say(failure, 'error', explain(error));
      return;
    }
    for (const job of page.jobs) {
      rows.append(h('tr', null,
        h('td', null, jobLink(job.id)),
        h('td', null, link(`/recipes/${encodeURIComponent(job.recipe_id)}`, job.recipe), ` v${job.recipe_version}`),
        h('td', null, badge(job.status), job.rerun_of ? ' rerun' : null),
        h('td', null, time(job.created_at)),
        h('td', null, fmtDuration(job.finished_at ? between(job.created_at, job.finished_at) : null))));
    }
    if (!rows.children.length) rows.append(h('tr', null, h('td', { colspan: 5 }, 'No jobs match.')));
    more.replaceChildren(page.next ? button('Load more', async () => {
      const before = rows.children.length;
      await load(page.next);
      // The button is replaced: focus goes on to the first of the rows it brought.
      const cell = rows.children[before]?.querySelector('td');
      if (cell) { cell.tabIndex = -1; cell.focus(); }
    }, { class: 'secondary' }) : null);
  };
  await load(null);
  if (can('operator') && Object.keys(filter).length) bulk.append(bulkRerun(filter));
}

function filterForm(filter, recipes) {
  const recipe = h('select', { name: 'recipe' }, h('option', { value: '' }, 'Any recipe'),
    recipes.map((one) => h('option', { value: one.id, selected: one.id === filter.recipe }, one.name)));
  const status = h('select', { name: 'status' }, h('option', { value: '' }, 'Any status'),
    STATUSES.map((one) => h('option', { value: one, selected: one === filter.status }, one)));
  const since = h('input', { type: 'datetime-local', name: 'since', value: localInput(filter.since) });
  const until = h('input', { type: 'datetime-local', name: 'until', value: localInput(filter.until) });
  const form = h('form', { class: 'actions', role: 'search', 'aria-label': 'Filter jobs' },
    field('Recipe', recipe), field('Status', status), field('Created since', since), field('Created before', until),
    h('button', { type: 'submit' }, 'Filter'), h('a', { href: '/jobs' }, 'Clear'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    if (recipe.value) query.set('recipe', recipe.value);
    if (status.value) query.set('status', status.value);
    if (since.value) query.set('since', new Date(since.value).toISOString());
    if (until.value) query.set('until', new Date(until.value).toISOString());
    go(`/jobs${query.toString() ? `?${query}` : ''}`);
  });
  return form;
}

/** An ISO time as a datetime-local input shows it, in local time. */
function localInput(iso) {
  if (!iso) return null;
  const date = new Date(iso);
  return new Date(date.getTime() - date.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

/** Reruns every ended job the filter selects, a batch at a time, showing how far it is. */
function bulkRerun(filter) {
  const from = h('select', null, h('option', { value: '' }, 'the failed step (or the start)'), h('option', { value: 'start' }, 'the start'));
  const status = h('div');
  const section = h('section', { 'aria-labelledby': 'bulk-heading' },
    h('h2', { id: 'bulk-heading' }, 'Rerun these jobs'),
    h('p', null, 'Reruns every ended job this filter selects (up to 1,000), each as a new job.'),
    h('div', { class: 'actions' }, field('Start from', from), button('Rerun them', async () => {
      // Bounded in time: jobs that arrive while this runs (reruns included) are not taken.
      const bounded = { ...filter, until: filter.until || new Date().toISOString() };
      let ids;
      try {
        ids = await selectedIds(bounded);
      } catch (error) {
        say(status, 'error', explain(error));
        return;
      }
      if (!ids.length) { say(status, 'info', 'The filter selects no jobs.'); return; }
      if (!confirm(`Rerun ${ids.length} job(s)?`)) return;
      const bar = progress('Rerun progress');
      status.replaceChildren(bar.node);
      let started = 0;
      const skipped = [];
      for (let index = 0; index < ids.length; index += RERUN_BATCH) {
        const request = { ...bounded, limit: RERUN_BATCH };
        if (index > 0) request.before = ids[index - 1];
        if (from.value) request.from = from.value;
        try {
          const answer = await api('POST', '/jobs/rerun', request);
          started += answer.started.length;
          skipped.push(...answer.skipped);
        } catch (error) {
          status.append(message('error', explain(error)));
          break;
        }
        const done = Math.min(ids.length, index + RERUN_BATCH);
        bar.set(done, ids.length, `${done} of ${ids.length} jobs: ${started} rerun, ${skipped.length} skipped`);
      }
      announce(`${started} jobs rerun`);
      status.append(message(skipped.length ? 'warn' : 'ok', `${started} rerun, ${skipped.length} skipped.`),
        skipped.length ? h('ul', null, skipped.slice(0, 20).map((one) => h('li', null, jobLink(one.job_id), `: ${one.reason}`))) : null);
    }, { class: 'secondary' })),
    status);
  return section;
}

/** The ids of the jobs a filter selects, newest first, as the bulk rerun will page them. */
async function selectedIds(filter) {
  const ids = [];
  let before = null;
  while (ids.length < RERUN_MAX) {
    const query = new URLSearchParams({ ...filter, limit: '500' });
    if (before) query.set('before', before);
    const page = await api('GET', `/jobs?${query}`);
    ids.push(...page.jobs.map((job) => job.id));
    if (!page.next) break;
    before = page.next;
  }
  return ids.slice(0, RERUN_MAX);
}

async function jobPage(main, id) {
  main.replaceChildren(heading(`Job ${id.slice(0, 13)}`));
  const body = h('div');
  main.append(body);
  await watchJob(body, id, { withActions: true });
}

/**
 * Draws a job's record into `node` and keeps it up to date, once a second, until the job
 * ends. Returns when it has ended (or the page changed).
 */
export async function watchJob(node, id, { withActions = false } = {}) {
  let last = null;
  for (;;) {
    let record;
    try {
      record = await api('GET', `/jobs/${encodeURIComponent(id)}`);
    } catch (error) {
      node.replaceChildren(message('error', explain(error)));
      return null;
    }
    const key = JSON.stringify(record);
    if (key !== last) {
      redraw(node, jobView(record, withActions).filter(Boolean));
      if (last !== null && !UNFINISHED.includes(record.status)) announce(`The job ${record.status}`);
      last = key;
    }
    if (!UNFINISHED.includes(record.status) || !node.isConnected) return record;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

/**
 * Replaces a live job's view, keeping what its reader had open and where their focus was:
 * parts are matched by their `data-key`.
 */
function redraw(node, parts) {
  const open = new Set([...node.querySelectorAll('details[data-key]')].filter((one) => one.open).map((one) => one.dataset.key));
  const focused = node.contains(document.activeElement) ? document.activeElement.closest('[data-key]')?.dataset.key : null;
  node.replaceChildren(...parts);
  for (const details of node.querySelectorAll('details[data-key]')) if (open.has(details.dataset.key)) details.open = true;
  if (focused) node.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
}

function jobView(record, withActions) {
  const running = UNFINISHED.includes(record.status);
  const status = h('div', { class: 'form-message' });
  const actions = withActions ? h('div', { class: 'actions' },
    can('operator') && record.status === 'failed' ? button('Rerun from the failed step', () => rerun(record, {}, status), { 'data-key': 'rerun-failed' }) : null,
    can('operator') && !running ? button(record.status === 'failed' ? 'Rerun from the start' : 'Rerun', () => rerun(record, { from: 'start' }, status), { class: 'secondary', 'data-key': 'rerun' }) : null,
    can('operator') && running ? button('Cancel', async () => {
      if (!confirm('Cancel this job? Steps that ran stay done.')) return;
      try { await api('POST', `/jobs/${encodeURIComponent(record.id)}/cancel`); announce('Cancel asked'); } catch (error) { say(status, 'error', explain(error)); }
    }, { class: 'danger', 'data-key': 'cancel' }) : null) : null;
  return [
    h('p', { 'aria-live': 'polite' }, badge(record.status), running ? ' updating live…' : null),
    h('dl', { class: 'facts' },
      fact('Recipe', [record.recipe, record.recipe_version ? ` (version ${record.recipe_version})` : '']),
      fact('Started', time(record.started_at)),
      fact('Finished', record.finished_at ? time(record.finished_at) : 'not yet'),
      fact('Took', fmtDuration(between(record.started_at, record.finished_at))),
      record.rerun_of ? fact('Rerun of', link(`/jobs/${encodeURIComponent(record.rerun_of)}`, record.rerun_of.slice(0, 13))) : null,
      record.called_by ? fact('Called by', link(`/jobs/${encodeURIComponent(record.called_by)}`, record.called_by.slice(0, 13))) : null),
    actions, status,
    record.error ? h('div', { class: 'message error' }, h('strong', null, `Failed${record.error.step ? ` at step ${record.error.step}` : ''} (${record.error.kind}): `), h('span', { class: 'error-text' }, record.error.message)) : null,
    h('h2', null, `Steps (${record.steps.length})`),
    record.steps.length ? h('ol', { class: 'steps' }, record.steps.map(stepView)) : h('p', null, running ? 'No step has finished yet.' : 'No steps ran.'),
    h('h2', null, 'Event'),
    jsonTree(record.trigger, { label: 'trigger', open: false }),
    h('h2', null, 'Output'),
    jsonTree(record.output, { label: 'output' }),
  ];
}

function fact(term, value) {
  return [h('dt', null, term), h('dd', null, value)];
}

function stepView(step) {
  const failed = step.status === 'failed' || step.error;
  return h('li', { class: failed ? 'failed' : null },
    h('div', { class: 'step-head' },
      h('strong', null, step.path || step.id),
      badge(step.status),
      step.attempts > 1 ? h('span', null, `${step.attempts} attempts`) : null,
      h('span', { class: 'hint' }, fmtDuration(between(step.started_at, step.finished_at)))),
    step.error ? h('p', { class: 'error-text' }, `${step.error.kind}: ${step.error.message}`) : null,
    h('details', { 'data-key': `${step.path || step.id}/input` }, h('summary', null, 'Input'), jsonTree(step.input, { label: 'input' })),
    h('details', { 'data-key': `${step.path || step.id}/output`, open: failed ? true : null }, h('summary', null, 'Output'), jsonTree(step.output, { label: 'output' })));
}

async function rerun(record, request, status) {
  try {
    const answer = await api('POST', `/jobs/${encodeURIComponent(record.id)}/rerun`, request);
    announce('Rerun started');
    go(`/jobs/${encodeURIComponent(answer.job_id)}`);
  } catch (error) {
    say(status, 'error', explain(error));
  }
}
