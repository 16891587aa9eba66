// The app's frame: which page a path shows, the header with the workspace switcher and the
// navigation, and moving between pages without reloading.

import { h, api, session, go, can, explain, message, ApiFailure } from './lib.js';

/** Pages that need no session: signing in and the links Weft mails. */
const PUBLIC = ['/sign-in', '/setup', '/join', '/reset-password', '/confirm-email', '/sign-up'];

/** Path patterns, the module that draws them and the navigation entry they belong to. */
const ROUTES = [
  [/^\/$/, () => import('./pages/dashboard.js'), 'Dashboard'],
  [/^\/recipes(?:\/(?<id>[^/]+))?$/, () => import('./pages/recipes.js'), 'Recipes'],
  [/^\/jobs(?:\/(?<id>[^/]+))?$/, () => import('./pages/jobs.js'), 'Jobs'],
  [/^\/connections(?:\/(?<id>[^/]+))?$/, () => import('./pages/connections.js'), 'Connections'],
  [/^\/library(?:\/(?<id>[^/]+))?$/, () => import('./pages/library.js'), 'Library'],
  [/^\/members$/, () => import('./pages/members.js'), 'Members'],
  [/^\/tokens$/, () => import('./pages/tokens.js'), 'Tokens'],
  [/^\/audit$/, () => import('./pages/audit.js'), 'Audit log'],
  [/^\/privacy$/, () => import('./pages/privacy.js'), 'Privacy'],
  [/^\/usage$/, () => import('./pages/usage.js'), 'Usage'],
  [/^\/account$/, () => import('./pages/account.js'), 'Account'],
];

const NAV = [
  ['/', 'Dashboard', 'viewer'],
  ['/recipes', 'Recipes', 'viewer'],
  ['/jobs', 'Jobs', 'viewer'],
  ['/connections', 'Connections', 'viewer'],
  ['/library', 'Library', 'viewer'],
  ['/members', 'Members', 'viewer'],
  ['/tokens', 'Tokens', 'viewer'],
  ['/audit', 'Audit log', 'admin'],
  ['/privacy', 'Privacy', 'admin'],
  ['/usage', 'Usage', 'viewer'],
];

const main = document.getElementById('main');
const top = document.getElementById('top');
let workspaces = null;
/** The workspace's usage warnings, read at most once a minute: the banner over every page. */
let warnings = { at: 0, workspace: null, list: [] };
/** Counts visits: a visit whose user has moved on stops drawing. */
let visit = 0;

function forgetSession() {
  Object.assign(session, { user: null, workspace: null, role: null, csrf: null });
  workspaces = null;
}

async function loadSession() {
  try {
    const current = await api('GET', '/session');
    Object.assign(session, { user: current.user, workspace: current.workspace, role: current.role, csrf: current.csrf_token });
    return true;
  } catch (error) {
    if (error instanceof ApiFailure && error.status === 401) return false;
    throw error;
  }
}

async function drawHeader(section) {
  if (!session.user) {
    top.replaceChildren(h('a', { class: 'brand', href: '/sign-in' }, 'Weft'));
    return;
  }
  if (!workspaces) {
    try { workspaces = (await api('GET', '/workspaces')).workspaces; } catch { workspaces = []; }
  }
  const switcher = h('select', { id: 'workspace-switcher' },
    workspaces.map((one) => h('option', { value: one.id, selected: one.id === session.workspace }, `${one.name} (${one.role})`)));
  // Switched by a button, not on change: arrow keys move through a closed list one choice at
  // a time, and must not switch at each.
  const switchForm = h('form', { class: 'switcher' },
    h('label', { for: 'workspace-switcher' }, 'Workspace'), switcher,
    h('button', { type: 'submit', class: 'secondary' }, 'Switch'));
  switchForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (switcher.value === session.workspace) return;
    try {
      await api('PUT', '/session/workspace', { workspace: switcher.value });
      workspaces = null;
      await loadSession();
      go('/');
    } catch (error) {
      switcher.value = session.workspace;
      main.prepend(message('error', explain(error)));
    }
  });
  const menu = h('nav', { id: 'menu', 'aria-label': 'Main' }, h('ul', null,
    NAV.filter(([, , role]) => can(role)).map(([path, label]) => h('li', null,
      h('a', { href: path, 'aria-current': label === section ? 'page' : null }, label)))));
  const toggle = h('button', { type: 'button', class: 'menu-toggle', 'aria-expanded': 'false', 'aria-controls': 'menu' }, 'Menu');
  toggle.addEventListener('click', () => {
    const open = toggle.getAttribute('aria-expanded') !== 'true';
    toggle.setAttribute('aria-expanded', String(open));
    menu.classList.toggle('open', open);
  });
  const signOut = h('button', { type: 'button', class: 'link-button' }, 'Sign out');
  signOut.addEventListener('click', async () => {
    try { await api('DELETE', '/session'); } catch { /* signed out already */ }
    forgetSession();
    go('/sign-in');
  });
  top.replaceChildren(
    h('a', { class: 'brand', href: '/' }, 'Weft'),
    toggle,
    menu,
    h('div', { class: 'who' },
      switchForm,
      h('a', { href: '/account', 'aria-current': section === 'Account' ? 'page' : null }, session.user.name || session.user.email),
      signOut));
}

async function render() {
  const path = location.pathname;
  const params = new URLSearchParams(location.search);
  const mine = ++visit;
  const current = () => mine === visit;
  try {
    if (PUBLIC.includes(path)) {
      forgetSession();
      await drawHeader(null);
      const page = await import('./pages/sign-in.js');
      if (!current()) return;
      const view = h('div');
      main.replaceChildren(view);
      await page.render(view, { path, params, signedIn: loadSession });
      return;
    }
    if (!session.user && !(await loadSession())) {
      if (current()) go(`/sign-in?next=${encodeURIComponent(path + location.search)}`);
      return;
    }
    const route = ROUTES.find(([pattern]) => pattern.test(path));
    await drawHeader(route ? route[2] : null);
    if (!current()) return;
    if (!route) {
      document.title = 'Not found · Weft';
      main.replaceChildren(h('h1', null, 'Not found'), h('p', null, 'There is no page here. ', h('a', { href: '/' }, 'Back to the dashboard')));
      return;
    }
    const page = await route[1]();
    const banner = await usageBanner(route[2]);
    if (!current()) return;
    // Each visit draws into an element of its own: a page still loading when its user moves
    // on draws into a detached element, never into the next page.
    const view = h('div', null, h('p', { class: 'loading' }, 'Loading…'));
    main.replaceChildren(...banner, view);
    const id = path.match(route[0]).groups?.id;
    await page.render(view, { path, params, id: id ? decodeURIComponent(id) : null });
  } catch (error) {
    if (!current()) return;
    main.replaceChildren(h('h1', null, 'Something went wrong'), message('error', explain(error)));
  }
}

/** A plan's limit near or reached, said above every page but Usage (which says it itself). */
async function usageBanner(section) {
  if (section === 'Usage') return [];
  if (warnings.workspace !== session.workspace || Date.now() - warnings.at > 60000) {
    try {
      warnings = { at: Date.now(), workspace: session.workspace, list: (await api('GET', '/usage/warnings')).warnings };
    } catch {
      warnings = { at: Date.now(), workspace: session.workspace, list: [] };
    }
  }
  return warnings.list.map((warning) => h('div', { class: `message ${warning.level >= 100 ? 'error' : 'warn'} banner`, role: 'status' },
    warning.message, ' ', h('a', { href: '/usage' }, 'Usage')));
}

/** Follows links within the app without reloading; new tabs and downloads behave as usual. */
document.addEventListener('click', (event) => {
  const anchor = event.target.closest?.('a[href]');
  if (!anchor || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(anchor.href, location.href);
  if (url.origin !== location.origin || anchor.target || anchor.hasAttribute('download') || url.pathname.startsWith('/api/')) return;
  if (url.pathname === location.pathname && url.search === location.search && url.hash) return;
  event.preventDefault();
  go(url.pathname + url.search);
});

window.addEventListener('popstate', navigated);
window.addEventListener('weft:navigate', navigated);

async function navigated() {
  await render();
  // Moving focus to the new page tells keyboard and screen reader users it changed.
  main.focus({ preventScroll: false });
  window.scrollTo(0, 0);
}

render();
