// Usage: this month against the workspace's plan, its warnings and held jobs, tasks month by
// month as a chart, and every month as CSV.

import { h, api, heading, barChart, table, link, message, explain } from '../lib.js';

const MEASURES = [
  ['tasks', 'Tasks this month'],
  ['active_recipes', 'Active recipes'],
  ['connections', 'Connections'],
  ['members', 'Members'],
];

export async function render(main) {
  let usage;
  try {
    usage = await api('GET', '/usage');
  } catch (error) {
    main.replaceChildren(heading('Usage'), message('error', explain(error)));
    return;
  }
  const months = [...usage.months].reverse();
  main.replaceChildren(
    heading('Usage'),
    h('p', null, `Plan `, h('strong', null, usage.plan.name), ` · ${monthName(usage.period)} (UTC)`),
    ...usage.warnings.map((warning) => message(warning.level >= 100 ? 'error' : 'warn', warning.message)),
    usage.held_jobs
      ? message('warn', h('span', null, `${usage.held_jobs.toLocaleString()} job(s) are held until the month turns, the plan is raised or an operator releases them. `,
        link('/jobs?status=held', 'See the held jobs')))
      : null,
    h('div', { class: 'cards' },
      MEASURES.map(([key, label]) => meter(label, usage.limits[key])),
      card('Jobs this month', usage.usage.jobs.toLocaleString()),
      card('Job history stored', bytes(usage.usage.history_bytes))),
    barChart({
      title: 'Tasks per month',
      bars: months.map((month) => ({ label: monthName(month.period), tasks: month.tasks })),
      series: [{ key: 'tasks', name: 'tasks', class: 'ok' }],
    }),
    h('h2', null, 'Month by month'),
    table('Usage per month', ['Month', 'Tasks', 'Jobs', 'History', 'Active recipes', 'Connections', 'Members'],
      usage.months.map((month) => [monthName(month.period), month.tasks.toLocaleString(), month.jobs.toLocaleString(),
        bytes(month.history_bytes), String(month.active_recipes), String(month.connections), String(month.members)])),
    h('p', null, h('a', { href: '/api/v1/usage/csv', download: `weft-usage-${usage.workspace_id}.csv` }, 'Download as CSV')));
}

/** A measure against its limit: a bar when there is one. */
function meter(label, { used, limit, percent }) {
  if (limit === null || limit === undefined) {
    return card(label, used.toLocaleString(), 'no limit');
  }
  const bar = h('meter', { min: 0, max: limit || 1, low: limit * 0.8, high: limit * 0.999, optimum: 0, value: Math.min(used, limit), 'aria-label': `${label}: ${used} of ${limit}` });
  return card(label, `${used.toLocaleString()} / ${limit.toLocaleString()}`, h('span', null, bar, ` ${percent} %`));
}

function card(label, figure, note) {
  return h('div', { class: 'card' }, h('span', { class: 'figure' }, figure), label, note ? h('small', { class: 'hint' }, h('br'), note) : null);
}

function monthName(period) {
  const [year, month] = period.split('-').map(Number);
  return new Date(Date.UTC(year, month - 1, 1)).toLocaleString([], { month: 'short', year: 'numeric', timeZone: 'UTC' });
}

function bytes(count) {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = count;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}
