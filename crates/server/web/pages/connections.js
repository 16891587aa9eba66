// Connections: what a connector needs to reach one account. The forms are drawn from each
// connector's own list of fields, so a new connector needs nothing here. Secrets are
// write-only: the API shows them as "********", and a replace that leaves one out keeps it.

import { h, api, fill, go, can, field, button, table, message, say, explain, heading, link, time, announce, form } from '../lib.js';

const HIDDEN = '********';
/** A message for the next page drawn, such as "created" after moving to the new connection. */
let flash = null;

export async function render(main, { id }) {
  const { connectors } = await api('GET', '/connectors');
  const usable = connectors.filter((one) => one.connection_fields?.length);
  if (id) await detail(main, id, usable);
  else await list(main, usable);
}

function takeFlash() {
  const note = flash;
  flash = null;
  if (note) announce(note);
  return note ? message('ok', note) : null;
}

const path = (id) => `/connections/${encodeURIComponent(id)}`;

async function list(main, connectors) {
  const { connections } = await api('GET', '/connections');
  fill(main,
    heading('Connections'),
    takeFlash(),
    h('p', null, 'A connection holds what a connector needs to reach one account. A step names it with ', h('code', null, 'connection:'), '.'),
    connections.length
      ? table('Connections of this workspace', ['Name', 'Connector', 'Changed'], connections.map((one) =>
        [link(path(one.id), one.name), h('code', null, one.connector), time(one.updated_at)]))
      : message('info', 'This workspace has no connection yet.'),
    can('builder') ? newConnection(connectors) : null);
}

function newConnection(connectors) {
  // http first: most connections are to some web API.
  const picker = h('select', { name: 'connector' }, connectors.map((one) => h('option', { value: one.name, selected: one.name === 'http' }, one.name)));
  const pickerField = field('Connector', picker, ' ');
  const about = pickerField.querySelector('.hint');
  const name = nameInput('');
  const fieldsSlot = h('div');
  let fields;
  const draw = () => {
    const chosen = connectors.find((one) => one.name === picker.value);
    about.textContent = chosen.description;
    fields = fieldInputs(chosen.connection_fields, {});
    fieldsSlot.replaceChildren(fields.node);
  };
  picker.addEventListener('change', draw);
  draw();
  const limits = limitInputs(null);
  return h('section', { 'aria-labelledby': 'new-connection' },
    h('h2', { id: 'new-connection' }, 'New connection'),
    form([pickerField, field('Name', name, 'Steps give this name in connection:.'), fieldsSlot, limits.node], 'Create', async () => {
      const created = await api('POST', '/connections', {
        name: name.value.trim(), connector: picker.value, fields: fields.read(), limits: limits.read(),
      });
      flash = `The connection ${created.name} is created.`;
      go(path(created.id));
    }));
}

async function detail(main, id, connectors) {
  let connection;
  try {
    connection = await api('GET', path(id));
  } catch (error) {
    fill(main, heading('Connection'), message('error', explain(error)), h('p', null, link('/connections', 'All connections')));
    return;
  }
  // A connector the server no longer loads still lets its connections be edited, by their keys.
  const schema = connectors.find((one) => one.name === connection.connector)?.connection_fields
    || Object.keys(connection.fields).map((key) => ({ name: key, description: '', required: false, secret: connection.fields[key] === HIDDEN }));
  const set = schema.filter((spec) => connection.fields[spec.name] !== undefined && connection.fields[spec.name] !== null);
  const oauth = connection.fields.auth === 'oauth2_code';
  fill(main,
    h('p', null, link('/connections', 'All connections')),
    heading(connection.name),
    takeFlash(),
    h('dl', null,
      h('dt', null, 'Connector'), h('dd', null, h('code', null, connection.connector)),
      h('dt', null, 'Limits'), h('dd', null, describeLimits(connection.limits)),
      oauth ? [h('dt', null, 'Account'), h('dd', null, connection.fields.access_token === HIDDEN
        ? ['Connected; the access token expires ', time(connection.fields.expires_at), '.']
        : 'Not connected yet.')] : null,
      h('dt', null, 'Created'), h('dd', null, time(connection.created_at)),
      h('dt', null, 'Changed'), h('dd', null, time(connection.updated_at))),
    set.length
      ? table('Fields that are set', ['Field', 'Value'], set.map((spec) => [
        h('code', null, spec.name),
        spec.secret ? h('em', null, 'stored, hidden') : String(connection.fields[spec.name])]))
      : message('info', 'No field is set.'),
    can('builder') ? [controls(connection, oauth), editForm(main, connection, schema, connectors)] : null);
}

function controls(connection, oauth) {
  const slot = h('div');
  const run = (action) => async () => {
    try { await action(); } catch (error) { say(slot, 'error', explain(error)); }
  };
  return h('section', { 'aria-label': 'Test and delete' },
    h('div', { class: 'actions' },
      button('Test', run(async () => {
        say(slot, 'info', 'Testing…');
        const result = await api('POST', `${path(connection.id)}/test`);
        say(slot, result.ok ? 'ok' : 'error', result.ok ? 'The test passed.' : `The test failed: ${result.message}`);
      })),
      oauth ? button('Connect account', run(async () => {
        const { authorize_url: url } = await api('POST', `${path(connection.id)}/oauth/start`);
        // Only a web address: the URL is built from a field a builder typed.
        if (['https:', 'http:'].includes(new URL(url).protocol)) location.assign(url);
        else say(slot, 'error', `The provider's address is not a web address: ${url}`);
      }), { class: 'secondary' }) : null,
      button('Delete', run(async () => {
        if (!confirm(`Delete the connection ${connection.name} and its secrets? Steps that name it will fail.`)) return;
        await api('DELETE', path(connection.id));
        flash = `The connection ${connection.name} is deleted.`;
        go('/connections');
      }), { class: 'danger' })),
    slot);
}

function editForm(main, connection, schema, connectors) {
  const name = nameInput(connection.name);
  const fields = fieldInputs(schema, connection.fields);
  const limits = limitInputs(connection.limits);
  return h('section', { 'aria-labelledby': 'edit-connection' },
    h('h2', { id: 'edit-connection' }, 'Edit'),
    form([field('Name', name, 'Steps give this name in connection:.'), fields.node, limits.node], 'Save', async () => {
      const saved = await api('PUT', path(connection.id), {
        name: name.value.trim(), connector: connection.connector, fields: fields.read(), limits: limits.read(),
      });
      flash = 'The connection is saved.';
      // The name may have changed, and with it a path that held it.
      history.replaceState(null, '', path(saved.id));
      await detail(main, saved.id, connectors);
      main.focus();
    }));
}

/** A form whose submit runs `action`; what goes wrong is shown above its button. */

function nameInput(value) {
  return h('input', { name: 'name', required: true, maxlength: 200, autocomplete: 'off', value });
}

/** An input per connector field; `read()` gives the `fields` of the API's body. */
function fieldInputs(schema, stored) {
  const inputs = schema.map((spec) => fieldInput(spec, stored[spec.name]));
  return {
    node: h('fieldset', null, h('legend', null, 'Fields'), inputs.map((one) => one.node)),
    read: () => Object.fromEntries(inputs.flatMap((one) => one.read())),
  };
}

function fieldInput(spec, stored) {
  const kept = spec.secret && stored === HIDDEN;
  const input = h('input', {
    name: spec.name,
    type: spec.secret ? 'password' : 'text',
    required: spec.required && !kept,
    // Keeps the browser from filling in the person's own sign-in.
    autocomplete: spec.secret ? 'new-password' : 'off',
    value: spec.secret || stored === undefined || stored === null ? null : String(stored),
  });
  const hint = [spec.description, kept ? 'A value is stored: leave this empty to keep it.' : null].filter(Boolean).join(' ');
  const clear = kept ? h('input', { type: 'checkbox', id: `clear-${spec.name}` }) : null;
  return {
    node: h('div', null,
      field(spec.required ? `${spec.name} (required)` : spec.name, input, hint || null),
      clear ? h('div', { class: 'field inline' }, clear, h('label', { for: clear.id }, `Remove the stored ${spec.name}`)) : null),
    read() {
      if (clear?.checked) return [[spec.name, null]];
      const text = spec.secret ? input.value : input.value.trim();
      // Left out: a secret keeps its stored value, a plain field is removed.
      if (text === '') return [];
      return [[spec.name, typed(text, stored)]];
    },
  };
}

/** Text as the stored value's type, so that a number or a yes/no set elsewhere stays one. */
function typed(text, stored) {
  if (typeof stored === 'number' && text !== '' && Number.isFinite(Number(text))) return Number(text);
  if (typeof stored === 'boolean' && (text === 'true' || text === 'false')) return text === 'true';
  return text;
}

/** The limits, sent on every save: a replace without them removes them. */
function limitInputs(limits) {
  const number = (value) => h('input', { type: 'number', min: 1, step: 1, inputmode: 'numeric', value });
  const requests = number(limits?.requests);
  const per = h('input', { type: 'text', autocomplete: 'off', value: limits?.per });
  const concurrent = number(limits?.concurrent);
  return {
    node: h('details', { open: Boolean(limits) },
      h('summary', null, 'Limits (optional)'),
      h('fieldset', null, h('legend', null, 'A budget of calls to the account'),
        field('Calls', requests, 'Calls started in any span of the period.'),
        field('Period', per, 'A duration such as 1s or 1m; 1s when empty.'),
        field('Calls at once', concurrent, 'Calls in flight at the same time.'))),
    read() {
      const out = {};
      if (requests.value) out.requests = Number(requests.value);
      if (per.value.trim()) out.per = per.value.trim();
      if (concurrent.value) out.concurrent = Number(concurrent.value);
      return Object.keys(out).length ? out : null;
    },
  };
}

function describeLimits(limits) {
  if (!limits) return 'None.';
  return [
    limits.requests ? `${limits.requests} calls per ${limits.per}` : null,
    limits.concurrent ? `${limits.concurrent} at once` : null,
  ].filter(Boolean).join(', ') || 'None.';
}
