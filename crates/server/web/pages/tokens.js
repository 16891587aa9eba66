// API tokens: a program calls the API with one, as the person who made it, in this workspace.
// The server keeps only a hash, so a token is shown once, when it is made. Admins and owners
// see and revoke every token of the workspace; others their own.

import { h, api, fill, focusOn, grantable, can, session, field, button, table, message, say, explain, heading, time, announce } from '../lib.js';

const LASTS = [['', 'Until revoked'], ['1d', '1 day'], ['7d', '7 days'], ['30d', '30 days'], ['90d', '90 days'], ['365d', '1 year']];

export async function render(main) {
  // Made afresh with the page: a new token shows until one leaves it, never again.
  const page = { slot: h('div'), list: h('div'), shown: h('div') };
  fill(main,
    heading('API tokens'),
    h('p', null, 'A program sends a token in the header ', h('code', null, 'Authorization: Bearer TOKEN'),
      '. It acts as you, in this workspace, with a role no higher than yours.'),
    makeForm(page),
    page.shown,
    page.slot,
    page.list);
  await drawList(page);
}

async function drawList(page) {
  const { list, slot, shown } = page;
  const { tokens } = await api('GET', '/tokens');
  const all = can('admin');
  if (!tokens.length) {
    list.replaceChildren(message('info', all ? 'This workspace has no token.' : 'You have no token in this workspace.'));
    return;
  }
  list.replaceChildren(table(all ? 'Every token of this workspace' : 'Your tokens',
    ['Name', all ? 'Person' : null, 'Role', 'Made', 'Expires', 'Last used', 'Actions'].filter(Boolean),
    tokens.map((token) => [
      token.name, all ? token.user : null, token.role, time(token.created_at),
      token.expires_at ? time(token.expires_at) : 'Never',
      token.last_used_at ? time(token.last_used_at) : 'Never',
      button('Revoke', async () => {
        if (!confirm(`Revoke the token ${token.name}? Programs that use it are refused at once.`)) return;
        try {
          await api('DELETE', `/tokens/${encodeURIComponent(token.id)}`);
          say(slot, 'ok', `The token ${token.name} is revoked.`);
          if (shown.firstChild?.dataset.id === token.id) shown.replaceChildren();
          await drawList(page);
          focusOn(slot);
        } catch (error) {
          say(slot, 'error', explain(error));
        }
      }, { class: 'danger' }),
    ].filter((cell, index) => all || index !== 1))));
}

function makeForm(page) {
  const name = h('input', { name: 'name', required: true, maxlength: 100, autocomplete: 'off' });
  const role = h('select', { name: 'role' }, grantable()
    .map((one) => h('option', { value: one, selected: one === session.role }, one)));
  const lasts = h('select', { name: 'expires_in' }, LASTS.map(([value, text]) => h('option', { value }, text)));
  const slot = h('div');
  const submit = h('button', { type: 'submit' }, 'Make the token');
  const node = h('form', null,
    field('Name', name, 'What it is for, such as deploys from CI.'),
    field('Role', role, 'What it may do. No higher than your own role.'),
    field('Lasts', lasts),
    slot,
    h('div', { class: 'actions' }, submit));
  node.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    try {
      const made = await api('POST', '/tokens', { name: name.value.trim(), role: role.value, expires_in: lasts.value || undefined });
      node.reset();
      slot.replaceChildren();
      page.shown.replaceChildren(shownOnce(made));
      page.shown.firstChild.focus();
      await drawList(page);
    } catch (error) {
      say(slot, 'error', explain(error));
    } finally {
      submit.disabled = false;
    }
  });
  return h('section', { 'aria-labelledby': 'new-token' }, h('h2', { id: 'new-token' }, 'New token'), node);
}

/** The token itself, the one time the server gives it. */
function shownOnce(made) {
  const copy = button('Copy the token', async () => {
    try {
      await navigator.clipboard.writeText(made.token);
      announce('The token is copied.');
    } catch {
      getSelection().selectAllChildren(secret);
      announce('The token is selected: copy it with your keyboard.');
    }
  }, { class: 'secondary' });
  const secret = h('code', null, made.token);
  return h('section', { 'aria-labelledby': 'made-token', tabindex: '-1', 'data-id': made.id },
    h('h2', { id: 'made-token' }, `Your new token ${made.name} (${made.role})`),
    message('warn', 'Copy it now: it will not be shown again.'),
    h('p', { class: 'secret-once' }, secret),
    h('div', { class: 'actions' }, copy));
}
