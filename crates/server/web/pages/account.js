// One's own account: profile, password, the mail one agrees to, a copy of everything held
// about oneself, signing out everywhere, and deleting the account (or keeping it after all).

import { h, api, session, field, button, message, say, explain, heading, fmtTime, download, form } from '../lib.js';

const COMPANY_SIZES = ['1-10', '11-50', '51-200', '201-1000', '1001+'];

export async function render(main, { path }) {
  const [me, consent] = await Promise.all([api('GET', '/me'), api('GET', '/me/consent')]);
  // Whoever moved on to another page while this one loaded is not to find it drawn there.
  if (location.pathname !== path) return;
  const deletion = h('div');
  showDeletion(deletion, me.deletion_due_at);
  main.replaceChildren(
    heading('Your account'),
    deletion,
    profileSection(me),
    passwordSection(),
    consentSection(consent),
    exportSection(),
    sessionsSection(),
    deleteSection(deletion));
}


function section(id, title, ...children) {
  return h('section', { id, 'aria-labelledby': `${id}-title` }, h('h2', { id: `${id}-title` }, title), children);
}

/** The pending deletion, if any, with the button that keeps the account. */
function showDeletion(slot, due) {
  if (!due) {
    slot.replaceChildren();
    return;
  }
  const result = h('div');
  slot.replaceChildren(
    message('warn', `Your account will be deleted on ${fmtTime(due)}, with everything Weft holds about you.`),
    h('div', { class: 'actions' }, button('Keep my account', async () => {
      try {
        await api('POST', '/me/deletion/cancel');
        slot.replaceChildren(message('ok', 'Your account is kept. API tokens revoked when you asked stay revoked: make new ones on the Tokens page.'));
      } catch (error) {
        say(result, 'error', explain(error));
      }
    })),
    result);
}

function profileSection(me) {
  const profile = me.profile || {};
  const text = (label, name, attrs = {}, hint = null) => field(label, h('input', { name, value: profile[name] || '', ...attrs }), hint);
  return section('profile', 'Profile',
    h('p', null, 'Signed in as ', h('strong', null, me.email),
      me.email_verified_at ? ` (confirmed on ${fmtTime(me.email_verified_at)})` : ' (not confirmed yet)',
      '. An admin of your workspace changes your email.'),
    me.photo ? h('img', { src: me.photo, alt: 'Your photo', width: 96, height: 96 }) : null,
    form([
      field('Name', h('input', { name: 'name', value: me.name, required: true, maxlength: 100, autocomplete: 'name' })),
      text('Username', 'username', { minlength: 3, maxlength: 32, pattern: '[a-z0-9_.\\-]+', autocomplete: 'nickname', spellcheck: 'false' }, '3 to 32 of a-z, 0-9, _ . and -. Optional.'),
      text('Job title', 'title', { maxlength: 100, autocomplete: 'organization-title' }),
      text('Company', 'company', { maxlength: 100, autocomplete: 'organization' }),
      field('Company size', h('select', { name: 'company_size' },
        h('option', { value: '' }, 'Not given'),
        COMPANY_SIZES.map((size) => h('option', { value: size, selected: profile.company_size === size }, `${size} people`)))),
      text('Phone', 'phone', { type: 'tel', maxlength: 32, autocomplete: 'tel' }, 'Digits, spaces and + - ( ) . only.'),
      field('Addresses for failure notices', h('textarea', { name: 'notification_emails', rows: 3, spellcheck: 'false' }, (profile.notification_emails || []).join('\n')),
        'Up to 5 addresses, one a line. Empty: notices go to your email.'),
    ], 'Save the profile', async (values, slot) => {
      const optional = (name) => String(values.get(name)).trim() || null;
      const saved = await api('PATCH', '/me', {
        name: String(values.get('name')).trim(),
        username: optional('username'),
        title: optional('title'),
        company: optional('company'),
        company_size: optional('company_size'),
        phone: optional('phone'),
        notification_emails: String(values.get('notification_emails')).split(/[\n,]/).map((one) => one.trim()).filter(Boolean),
      });
      // The header shows the name: it follows the change without a reload.
      session.user.name = saved.name;
      const who = document.querySelector('#top a[href="/account"]');
      if (who) who.textContent = saved.name || session.user.email;
      say(slot, 'ok', 'Your profile is saved.');
    }));
}

function passwordSection() {
  return section('password', 'Password',
    form([
      // Password managers fill a change form better when they see whose password it is.
      h('input', { type: 'text', name: 'username', value: session.user.email, autocomplete: 'username', hidden: true, readonly: true }),
      field('Current password', h('input', { name: 'current_password', type: 'password', required: true, autocomplete: 'current-password' })),
      field('New password', h('input', { name: 'new_password', type: 'password', required: true, minlength: 8, autocomplete: 'new-password' }), 'At least 8 characters, and not your email.'),
    ], 'Change the password', async (values, slot, node) => {
      await api('POST', '/me/password', { current_password: values.get('current_password'), new_password: values.get('new_password') });
      node.reset();
      say(slot, 'ok', 'Your password is changed. Your other sessions have ended; this one goes on.');
    }));
}

function consentSection(consent) {
  const since = {};
  const agreed = (given) => (given.given && given.since ? `Agreed on ${fmtTime(given.since)}.` : 'Not agreed.');
  const choice = (name, label) => {
    const input = h('input', { type: 'checkbox', name, checked: consent[name].given });
    const node = field(label, input, agreed(consent[name]));
    node.classList.add('inline');
    node.prepend(input);
    since[name] = node.querySelector('.hint');
    return node;
  };
  return section('consent', 'Mail you agree to',
    h('p', null, 'Service notices are sent whatever you choose here: password resets, security and deletion notices, and failure notices of your recipes.'),
    form([
      h('fieldset', null, h('legend', null, 'Besides service notices, mail me'),
        choice('marketing', 'Marketing'),
        choice('product_news', 'Product news')),
    ], 'Save my choices', async (values, slot) => {
      const saved = await api('PUT', '/me/consent', { marketing: values.get('marketing') === 'on', product_news: values.get('product_news') === 'on' });
      since.marketing.textContent = agreed(saved.marketing);
      since.product_news.textContent = agreed(saved.product_news);
      const said = [saved.marketing.given ? 'marketing' : null, saved.product_news.given ? 'product news' : null].filter(Boolean);
      say(slot, 'ok', said.length ? `Saved: you agree to ${said.join(' and ')}.` : 'Saved: you get service notices only.');
    }));
}

function exportSection() {
  const slot = h('div');
  return section('export', 'Your data',
    h('p', null, 'One JSON file with everything Weft holds about you: your account and profile, photo, consent, workspaces, API tokens and sessions (by their ids, never a secret), and the audit events you did or were the subject of.'),
    h('div', { class: 'actions' }, button('Download my data', async () => {
      try {
        const response = await api('GET', '/me/export', undefined, { raw: true });
        download('weft-account-export.json', await response.text());
        say(slot, 'ok', 'Downloaded weft-account-export.json.');
      } catch (error) {
        say(slot, 'error', explain(error));
      }
    }, { class: 'secondary' })),
    slot);
}

function sessionsSection() {
  const slot = h('div');
  return section('sessions', 'Sessions',
    h('p', null, 'Sign out of Weft in every browser, this one included. API tokens go on working: revoke them on the Tokens page.'),
    h('div', { class: 'actions' }, button('Sign out every session', async () => {
      if (!window.confirm('Sign out of Weft in every browser, this one included?')) return;
      try {
        await api('DELETE', '/sessions');
        // A full load: nothing of this session is left in the page.
        location.assign('/sign-in');
      } catch (error) {
        say(slot, 'error', explain(error));
      }
    }, { class: 'secondary' })),
    slot);
}

function deleteSection(deletion) {
  return section('delete', 'Delete your account',
    h('p', null, 'Your API tokens stop working and your other sessions end at once; you are mailed a notice. After the grace period your account, profile, photo, sessions and memberships are deleted, and the audit log names you by a pseudonym. Until then you can sign in and keep your account.'),
    h('p', null, 'What your recipes did stays in each workspace’s job history. The only owner of a workspace must first make another member an owner, or close it.'),
    form([
      field('Your password', h('input', { name: 'password', type: 'password', required: true, autocomplete: 'current-password' })),
    ], 'Delete my account', async (values, slot, node) => {
      if (!window.confirm('Delete your Weft account at the end of the grace period?')) return;
      const answer = await api('DELETE', '/me', { password: values.get('password') });
      node.reset();
      slot.replaceChildren();
      showDeletion(deletion, answer.deletion_due_at);
      deletion.scrollIntoView();
      deletion.querySelector('button')?.focus();
    }, { class: 'danger' }));
}
