// Signing in, and the pages of the links Weft mails: first-run setup, joining a workspace,
// resetting a password, confirming an email. Also signing up, when the server allows it.

import { h, api, go, field, say, explain, heading, message, form } from '../lib.js';

export async function render(main, { path, params, signedIn }) {
  const token = params.get('token') || '';
  const pages = {
    '/sign-in': signIn,
    '/setup': setup,
    '/join': join,
    '/reset-password': token ? resetPassword : requestReset,
    '/confirm-email': confirmEmail,
    '/sign-up': signUp,
  };
  await pages[path](main, { token, params, signedIn });
}


function input(name, type, attrs = {}) {
  return h('input', { name, type, required: true, ...attrs });
}

async function afterSignIn(signedIn, params) {
  await signedIn();
  const next = params.get('next');
  go(next && next.startsWith('/') && !next.startsWith('//') ? next : '/');
}

async function signIn(main, { params, signedIn }) {
  let options = { needs_setup: false, sign_up: false, default_sso: false };
  try { options = await api('GET', '/sign-in/options'); } catch { /* the form still works */ }
  const sso = h('form', { class: 'sso' },
    h('h2', null, 'Single sign-on'),
    field('Workspace', h('input', { name: 'workspace', value: 'default', autocomplete: 'organization' }), 'The id of the workspace whose identity provider you sign in with.'),
    h('button', { type: 'submit', class: 'secondary' }, 'Sign in with single sign-on'));
  // A navigation, not a form's submission: the provider's address is another site, which the
  // page's form-action policy would refuse as a form's target.
  sso.addEventListener('submit', (event) => {
    event.preventDefault();
    const workspace = new FormData(sso).get('workspace') || 'default';
    location.assign(`/api/v1/sso/start?workspace=${encodeURIComponent(workspace)}`);
  });
  main.replaceChildren(
    heading('Sign in'),
    options.needs_setup ? message('info', 'Nobody can sign in yet: open the setup link that `weft serve` printed when it started.') : null,
    form([
      field('Email', input('email', 'email', { autocomplete: 'username' })),
      field('Password', input('password', 'password', { autocomplete: 'current-password' })),
    ], 'Sign in', async (data) => {
      const values = Object.fromEntries(data);
      await api('POST', '/session', { email: values.email, password: values.password });
      await afterSignIn(signedIn, params);
    }),
    h('p', null, h('a', { href: '/reset-password' }, 'Forgot your password?')),
    options.sign_up ? h('p', null, 'New here? ', h('a', { href: '/sign-up' }, 'Sign up')) : null,
    options.default_sso ? sso : h('details', null, h('summary', null, 'Sign in with your organisation'), sso));
}

async function setup(main, { token, params, signedIn }) {
  main.replaceChildren(
    heading('Set up Weft'),
    h('p', null, 'Make the first account: its owner. This link works once.'),
    token ? form([
      field('Your name', input('name', 'text', { autocomplete: 'name' })),
      field('Email', input('email', 'email', { autocomplete: 'username' })),
      field('Password', input('password', 'password', { autocomplete: 'new-password', minlength: 8 }), 'At least 8 characters.'),
    ], 'Create the owner account', async (data) => {
      const values = Object.fromEntries(data);
      await api('POST', '/setup', { token, ...values });
      await api('POST', '/session', { email: values.email, password: values.password });
      await afterSignIn(signedIn, params);
    }) : message('error', 'This page needs the setup link that `weft serve` printed, with its token.'));
}

async function join(main, { token, params, signedIn }) {
  main.replaceChildren(
    heading('Join a workspace'),
    h('p', null, 'New to this server? Give your name and choose a password. Have an account? Give its password.'),
    form([
      field('Your name', h('input', { name: 'name', type: 'text', autocomplete: 'name' }), 'Leave empty if you have an account here.'),
      field('Password', input('password', 'password', { autocomplete: 'new-password' })),
    ], 'Join', async (data) => {
      const values = Object.fromEntries(data);
      const joined = await api('POST', '/invitations/accept', { token, name: values.name || null, password: values.password });
      // Signed in to the workspace just joined, as the account the invitation was for.
      await api('POST', '/session', { email: joined.user.email, password: values.password, workspace: joined.workspace });
      await afterSignIn(signedIn, params);
    }));
}

async function requestReset(main) {
  main.replaceChildren(
    heading('Reset your password'),
    form([field('Email', input('email', 'email', { autocomplete: 'username' }))], 'Mail me a link', async (data, slot) => {
      const values = Object.fromEntries(data);
      await api('POST', '/password-reset', { email: values.email });
      say(slot, 'ok', 'If an account has this address, a link to reset its password is on its way.');
    }));
}

async function resetPassword(main, { token }) {
  main.replaceChildren(
    heading('Choose a new password'),
    form([field('New password', input('new_password', 'password', { autocomplete: 'new-password', minlength: 8 }))], 'Set the password', async (data, slot) => {
      const values = Object.fromEntries(data);
      await api('POST', '/password-reset/confirm', { token, new_password: values.new_password });
      slot.replaceChildren(message('ok', 'Your password is changed; every session of yours has ended.'), h('a', { href: '/sign-in' }, 'Sign in'));
    }));
}

async function confirmEmail(main, { token }) {
  main.replaceChildren(heading('Confirm your email'));
  try {
    await api('POST', '/email/confirm', { token });
    main.append(message('ok', 'Your email is confirmed.'), h('a', { href: '/' }, 'Go to Weft'));
  } catch (error) {
    main.append(message('error', explain(error)));
  }
}

async function signUp(main, { params, signedIn }) {
  main.replaceChildren(
    heading('Sign up'),
    form([
      field('Your name', input('name', 'text', { autocomplete: 'name' })),
      field('Email', input('email', 'email', { autocomplete: 'username' })),
      field('Password', input('password', 'password', { autocomplete: 'new-password', minlength: 8 })),
      field('Workspace name', input('workspace_name', 'text')),
      field('Workspace id', input('workspace_id', 'text', { pattern: '[a-z0-9][a-z0-9-]*' }), 'Lower-case letters, digits and dashes.'),
    ], 'Sign up', async (data) => {
      const values = Object.fromEntries(data);
      await api('POST', '/sign-up', {
        email: values.email, name: values.name, password: values.password,
        workspace: { id: values.workspace_id, name: values.workspace_name },
      });
      await api('POST', '/session', { email: values.email, password: values.password });
      await afterSignIn(signedIn, params);
    }));
}
