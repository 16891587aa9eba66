// The audit log, for admins: who changed what and when, newest first, filtered and paged.
// The filters are kept in the address, so that a filtered log can be reloaded and shared.

import { h, api, can, field, button, table, message, say, explain, heading, time, jsonTree, link, announce } from '../lib.js';


const FILTERS = ['action', 'actor', 'target', 'since', 'until'];

/** Where an event's target can be opened, by the first part of its action. */
const TARGET_PAGES = { recipe: '/recipes', connection: '/connections', job: '/jobs', library: '/library' };

export async function render(main, { path, params }) {
  if (!can('admin')) {
    main.replaceChildren(heading('Audit log'), message('info', 'Only admins and owners of this workspace read its audit log.'));
    return;
  }
  // Members' emails are suggestions for the actor field; the log reads well without them.
  let members = [];
  try { members = (await api('GET', '/members')).members; } catch { members = []; }
  // The actions this log holds, from the server: a list kept here would fall behind.
  let actions = [];
  try { actions = (await api('GET', '/audit/actions')).actions; } catch { actions = []; }
  if (location.pathname !== path) return;

  const values = Object.fromEntries(FILTERS.map((name) => [name, params.get(name) || '']));
  const results = h('div');
  const slot = h('div');
  const filters = h('form', { role: 'search', 'aria-label': 'Filter the audit log' },
    h('div', { class: 'grid-2' },
      field('Action', h('input', { name: 'action', value: values.action, list: 'audit-actions', autocomplete: 'off', spellcheck: 'false' }), 'Such as recipe.update.'),
      field('Actor', h('input', { name: 'actor', value: values.actor, list: 'audit-actors', autocomplete: 'off', spellcheck: 'false' }), 'An email as written in the log, or weft admin.')),
    h('div', { class: 'grid-2' },
      field('From', h('input', { name: 'since', type: 'datetime-local', value: values.since }), 'Events at or after this time.'),
      field('Until', h('input', { name: 'until', type: 'datetime-local', value: values.until }), 'Events before this time.')),
    field('Target id', h('input', { name: 'target', value: values.target, autocomplete: 'off', spellcheck: 'false' }), 'The id of what the event is about (a lookup table’s name).'),
    h('datalist', { id: 'audit-actions' }, actions.map((action) => h('option', { value: action }))),
    h('datalist', { id: 'audit-actors' }, [...members.map((member) => member.email), 'weft admin'].map((actor) => h('option', { value: actor }))),
    h('div', { class: 'actions' },
      h('button', { type: 'submit' }, 'Show events'),
      h('button', { type: 'reset', class: 'secondary' }, 'Clear the filters')),
    slot);

  const show = async () => {
    const chosen = Object.fromEntries(FILTERS.map((name) => [name, String(new FormData(filters).get(name) || '').trim()]));
    const shown = new URLSearchParams(Object.entries(chosen).filter(([, value]) => value));
    history.replaceState(null, '', `/audit${shown.size ? `?${shown}` : ''}`);
    announce(await drawEvents(results, chosen));
  };
  filters.addEventListener('submit', async (event) => {
    event.preventDefault();
    const submit = filters.querySelector('button[type="submit"]');
    submit.disabled = true;
    slot.replaceChildren();
    try { await show(); } catch (error) { say(slot, 'error', explain(error)); } finally { submit.disabled = false; }
  });
  filters.addEventListener('reset', () => {
    // A reset puts back the values the page was drawn with: empty the fields instead.
    setTimeout(() => {
      for (const name of FILTERS) filters.elements[name].value = '';
      filters.requestSubmit();
    });
  });

  main.replaceChildren(
    heading('Audit log'),
    h('p', null, 'Every change made in this workspace, and who made it, newest first. Reads are not written here.'),
    filters,
    results);
  try { await drawEvents(results, values); } catch (error) { say(slot, 'error', explain(error)); }
}

/** The API's query for the chosen filters; times typed in local time are sent in UTC. */
function query(chosen, before) {
  const query = new URLSearchParams({ limit: '50' });
  for (const [name, value] of Object.entries(chosen)) {
    if (!value) continue;
    if (name === 'since' || name === 'until') {
      const when = new Date(value);
      if (!Number.isNaN(when.getTime())) query.set(name, when.toISOString());
    } else {
      query.set(name, value);
    }
  }
  if (before) query.set('before', before);
  return query;
}

function row(event) {
  const [kind] = event.action.split('.');
  const page = TARGET_PAGES[kind];
  const gone = /delete|unpublish/.test(event.action);
  const target = !event.target ? '—'
    : page && !gone ? link(`${page}/${encodeURIComponent(event.target)}`, h('code', null, event.target))
      : h('code', null, event.target);
  return h('tr', null, [
    time(event.at),
    event.actor || '—',
    h('code', null, event.action),
    target,
    event.details === null || event.details === undefined ? '—' : jsonTree(event.details, { label: 'details', open: false }),
    // The browser's name is long and seldom wanted: it is one keystroke away.
    event.user_agent ? h('details', null, h('summary', null, event.ip || 'unknown address'), h('small', null, event.user_agent)) : event.ip || '—',
  ].map((cell) => h('td', null, cell)));
}

async function drawEvents(results, chosen) {
  const first = await api('GET', `/audit?${query(chosen)}`);
  if (first.events.length === 0) {
    results.replaceChildren(h('p', null, 'No event matches these filters.'));
    return 'No event matches these filters.';
  }
  const wrap = table('Audit events, newest first', ['When', 'Actor', 'Action', 'Target', 'Details', 'From'], []);
  const body = wrap.querySelector('tbody');
  const count = h('p');
  const more = h('div', { class: 'actions' });
  const slot = h('div');
  let shown = 0;
  const add = (page) => {
    const rows = page.events.map(row);
    body.append(...rows);
    shown += rows.length;
    count.textContent = `${shown} event${shown === 1 ? '' : 's'} shown${page.next ? '; there are more' : ''}.`;
    return rows;
  };
  add(first);
  let next = first.next;
  const loadMore = button('Load more', async () => {
    try {
      const page = await api('GET', `/audit?${query(chosen, next)}`);
      const rows = add(page);
      next = page.next;
      announce(`${rows.length} more event${rows.length === 1 ? '' : 's'} shown.`);
      if (!next) {
        more.replaceChildren();
        // The button is gone: focus goes to the first new event instead of the page's top.
        if (rows[0]) { rows[0].tabIndex = -1; rows[0].focus(); }
      }
    } catch (error) {
      say(slot, 'error', explain(error));
    }
  }, { class: 'secondary' });
  if (next) more.append(loadMore);
  results.replaceChildren(count, wrap, more, slot);
  return count.textContent;
}
