// The dashboard: how the workspace's jobs went over the last day or week, the recipes
// failing most, and what waits in the queue. It refreshes itself every half minute.

import { h, api, heading, barChart, table, link, message, explain, every } from '../lib.js';

export async function render(main, { params }) {
  const days = params.get('days') === '7' ? 7 : 1;
  main.replaceChildren(
    heading('Dashboard'),
    h('nav', { class: 'tabs', 'aria-label': 'Period' },
      h('a', { href: '/?days=1', 'aria-current': days === 1 ? 'page' : null }, 'Last 24 hours'),
      h('a', { href: '/?days=7', 'aria-current': days === 7 ? 'page' : null }, 'Last 7 days')));
  const body = h('div');
  main.append(body);
  const draw = async () => {
    try {
      body.replaceChildren(...figures(await api('GET', `/dashboard?days=${days}`), days));
    } catch (error) {
      body.replaceChildren(message('error', explain(error)));
    }
  };
  await draw();
  every(30000, body, draw);
}

function figures(data, days) {
  const rate = data.totals.jobs ? (100 * data.totals.failed) / data.totals.jobs : 0;
  const oldest = data.queue.oldest_queued ? Math.round((Date.now() - new Date(data.queue.oldest_queued)) / 1000) : 0;
  return [
    h('div', { class: 'cards' },
      card('Jobs', data.totals.jobs.toLocaleString()),
      card('Failed', data.totals.failed.toLocaleString()),
      card('Failure rate', `${rate.toFixed(1)} %`),
      card('Queued now', data.queue.queued.toLocaleString(), oldest ? `oldest waits ${oldest} s` : null),
      card('Running now', data.queue.running.toLocaleString()),
      card('Waiting (asleep)', data.queue.waiting.toLocaleString())),
    barChart({
      title: `Jobs per hour, last ${days === 1 ? '24 hours' : '7 days'}`,
      bars: hourly(data),
      series: [
        { key: 'succeeded', name: 'succeeded', class: 'ok' },
        { key: 'failed', name: 'failed', class: 'bad' },
        { key: 'unfinished', name: 'not ended', class: 'pending' },
      ],
    }),
    failureRateChart(data, days),
    h('h2', null, 'Recipes failing most'),
    data.failing.length
      ? table('Recipes with failed jobs in the period', ['Recipe', 'Failed', 'Of jobs', 'Failure rate', ''],
        data.failing.map((one) => [
          link(`/recipes/${encodeURIComponent(one.recipe_id)}`, one.recipe_name),
          String(one.failed),
          String(one.total),
          `${((100 * one.failed) / one.total).toFixed(1)} %`,
          link(`/jobs?recipe=${encodeURIComponent(one.recipe_id)}&status=failed&since=${encodeURIComponent(data.since)}`, 'failed jobs'),
        ]))
      : h('p', null, 'No job failed in this period.'),
  ];
}

function card(label, figure, note) {
  return h('div', { class: 'card' }, h('span', { class: 'figure' }, figure), label, note ? h('small', { class: 'hint' }, h('br'), note) : null);
}

/** Every hour of the period, empty ones included, so that time reads evenly left to right. */
function hourly(data) {
  const byHour = new Map(data.hours.map((hour) => [new Date(hour.hour).getTime(), hour]));
  const bars = [];
  for (let at = new Date(data.since).getTime(); at <= new Date(data.until).getTime(); at += 3600000) {
    const hour = byHour.get(at) || { succeeded: 0, failed: 0, unfinished: 0 };
    const date = new Date(at);
    bars.push({ ...hour, label: date.toLocaleString([], { weekday: 'short', hour: '2-digit', minute: '2-digit' }) });
  }
  return bars;
}

/** The failure rate per hour (or per day over a week, where hours are too thin to read). */
function failureRateChart(data, days) {
  const bars = hourly(data);
  const size = days === 7 ? 24 : 1;
  const groups = [];
  for (let index = 0; index < bars.length; index += size) {
    const slice = bars.slice(index, index + size);
    const ended = slice.reduce((sum, bar) => sum + bar.succeeded + bar.failed, 0);
    const failed = slice.reduce((sum, bar) => sum + bar.failed, 0);
    groups.push({ label: slice[0].label, rate: ended ? Math.round((1000 * failed) / ended) / 10 : 0 });
  }
  return barChart({
    title: `Failure rate (% of ended jobs) per ${days === 7 ? 'day' : 'hour'}`,
    bars: groups,
    series: [{ key: 'rate', name: '% failed', class: 'bad' }],
    max: 100,
  });
}
