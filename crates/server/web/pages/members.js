// Members: who is in the workspace, with which role. Admins change roles, remove people and
// invite; anyone may leave. The server decides (no role above one's own, the last owner
// stays): the page offers only what it would allow, and shows its refusals.

import { h, api, fill, focusOn, ROLES, grantable, can, session, field, button, table, message, say, explain, heading, time, fmtTime, announce } from '../lib.js';

const mine = () => ROLES.indexOf(session.role);
const who = (member) => member.name || member.email;

export async function render(main) {
  const slot = h('div');
  const list = h('div');
  fill(main, heading('Members'), slot, list, can('admin') ? invite() : null);
  await drawList(list, slot);
}

async function drawList(list, slot) {
  const { members } = await api('GET', '/members');
  const redraw = () => drawList(list, slot);
  list.replaceChildren(table('Members of this workspace', ['Member', 'Role', 'Since', 'Actions'],
    members.map((member) => [
      [h('strong', null, who(member)), member.name ? [h('br'), member.email] : null],
      role(member, slot, redraw), time(member.since), actions(member, slot, redraw)])));
}

/** The member's role, as a form to change it for an admin who may. */
function role(member, slot, redraw) {
  const me = member.user_id === session.user.id;
  if (!can('admin') || ROLES.indexOf(member.role) > mine()) return member.role;
  const select = h('select', { name: 'role' }, grantable().map((one) => h('option', { value: one, selected: one === member.role }, one)));
  const node = h('form', { class: 'actions' }, field(`Role of ${who(member)}`, select), h('button', { type: 'submit', class: 'secondary' }, 'Change'));
  node.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (select.value === member.role) return;
    if (me && !confirm(`Make yourself ${select.value}? You may not be able to undo it.`)) return;
    try {
      await api('PUT', `/members/${encodeURIComponent(member.user_id)}`, { role: select.value });
      // One's own role shows in the menu and every page: start again with the new one.
      if (me) { location.reload(); return; }
      say(slot, 'ok', `${who(member)} is now ${select.value}.`);
      await redraw();
      focusOn(slot);
    } catch (error) {
      say(slot, 'error', explain(error));
      select.value = member.role;
    }
  });
  return node;
}

function actions(member, slot, redraw) {
  const me = member.user_id === session.user.id;
  if (!me && (!can('admin') || ROLES.indexOf(member.role) > mine())) return null;
  const question = me
    ? 'Leave this workspace? Coming back needs a new invitation.'
    : `Remove ${who(member)} from this workspace? Their sessions end and their tokens stop working.`;
  return button(me ? 'Leave' : 'Remove', async () => {
    if (!confirm(question)) return;
    try {
      await api('DELETE', `/members/${encodeURIComponent(member.user_id)}`);
      // Out of the workspace, nothing of it is one's own to see: start from the top.
      if (me) { location.assign('/'); return; }
      say(slot, 'ok', `${who(member)} is no longer a member.`);
      await redraw();
      focusOn(slot);
    } catch (error) {
      say(slot, 'error', explain(error));
    }
  }, { class: 'danger' });
}

function invite() {
  const email = h('input', { name: 'email', type: 'email', required: true, autocomplete: 'off' });
  const choice = h('select', { name: 'role' }, grantable().map((one) => h('option', { value: one }, one)));
  const slot = h('div');
  const result = h('div');
  const submit = h('button', { type: 'submit' }, 'Invite');
  const node = h('form', null,
    field('Email', email),
    field('Role', choice, 'What they may do here. No higher than your own role.'),
    slot,
    h('div', { class: 'actions' }, submit));
  node.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    slot.replaceChildren();
    try {
      const sent = await api('POST', '/invitations', { email: email.value.trim(), role: choice.value });
      result.replaceChildren(...(sent.mailed
        ? [message('ok', `An invitation is on its way to ${sent.email}. Its link works once, until ${fmtTime(sent.expires_at)}.`)]
        : linkToPass(sent)));
      node.reset();
    } catch (error) {
      say(slot, 'error', explain(error));
    } finally {
      submit.disabled = false;
    }
  });
  return h('section', { 'aria-labelledby': 'invite' }, h('h2', { id: 'invite' }, 'Invite someone'), node, result);
}

/** Without mail, the link is given to the admin to pass on. */
function linkToPass(sent) {
  const input = h('textarea', { readonly: true, rows: 3, class: 'code' }, sent.link);
  const copy = button('Copy the link', async () => {
    try {
      await navigator.clipboard.writeText(sent.link);
      announce('The link is copied.');
    } catch {
      input.select();
      announce('The link is selected: copy it with your keyboard.');
    }
  }, { class: 'secondary' });
  setTimeout(() => input.focus(), 0);
  return [
    message('info', `No mail is set up on this server: pass this link on to ${sent.email} yourself. It works once, until ${fmtTime(sent.expires_at)}, and lets its holder in as ${sent.role}.`),
    field('Invitation link', input),
    h('div', { class: 'actions' }, copy),
  ];
}
