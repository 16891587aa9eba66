// The recipe library: recipes the workspaces of this platform published in their shared form
// (connections, secrets and personal data replaced by placeholders), to read and to import.

import { h, api, can, session, field, button, table, message, say, explain, heading, link, time, go, ApiFailure, form } from '../lib.js';

export async function render(main, { path, id }) {
  return id ? entryPage(main, path, id) : listPage(main, path);
}

/** What an importer is asked to give for each kind of placeholder. */
const KINDS = {
  connection: ['Connection', 'text'],
  secret: ['Secret', 'text'],
  url: ['URL', 'url'],
  email: ['Email', 'email'],
  phone: ['Phone number', 'tel'],
  name: ['Person’s name', 'text'],
};

/** A form whose submit runs `action`; its problems, a recipe's too, are shown under its button. */

/** A recipe's shared text with line numbers (the check names lines) and its placeholders marked. */
function sharedText(source, label) {
  const lines = source.replace(/\n$/, '').split('\n');
  const width = String(lines.length).length;
  return h('pre', { class: 'shared-text', tabindex: 0, 'aria-label': label }, h('code', null, lines.map((line, index) => [
    h('span', { class: 'line-number', 'aria-hidden': 'true' }, `${String(index + 1).padStart(width)}  `),
    line.split(/(__share_[a-z]+_\d+__)/).map((part, at) => (at % 2 ? h('mark', null, part) : part)),
    '\n',
  ])));
}

function publisher(workspace) {
  return workspace === session.workspace ? `${workspace} (this workspace)` : workspace;
}

async function listPage(main, path) {
  const [library, ours] = await Promise.all([
    api('GET', '/library'),
    can('builder') ? api('GET', '/recipes') : { recipes: [] },
  ]);
  // Whoever moved on to another page while this one loaded is not to find it drawn there.
  if (location.pathname !== path) return;
  const listed = h('div');
  const draw = (recipes) => listed.replaceChildren(recipes.length
    ? table('Published recipes, newest first', ['Recipe', 'What it does', 'Published by', 'Published', 'To fill in'], recipes.map((entry) => [
      link(`/library/${encodeURIComponent(entry.id)}`, entry.name),
      entry.description || '—',
      publisher(entry.workspace),
      time(entry.published_at),
      entry.placeholders.length ? `${entry.placeholders.length} value${entry.placeholders.length === 1 ? '' : 's'}` : 'nothing',
    ]))
    : h('p', null, 'Nothing is published yet.'));
  draw(library.recipes);
  const refresh = async () => draw((await api('GET', '/library')).recipes);
  main.replaceChildren(...[
    heading('Library'),
    h('p', null, 'Recipes published by the workspaces of this platform. Each is shared without its connections, secrets or personal data: whoever imports one gives their own values for what was taken out.'),
    listed,
    can('builder') ? publishSection(ours.recipes, refresh) : null,
  ].filter(Boolean));
}

function publishSection(recipes, refresh) {
  const result = h('div');
  const section = h('section', { id: 'publish', 'aria-labelledby': 'publish-title' },
    h('h2', { id: 'publish-title' }, 'Publish a recipe'),
    h('p', null, 'Every workspace of this platform will see it. The check replaces connection names, secrets, emails, phone numbers, URLs that carry a token and people’s names with placeholders, and shows you what it would take out before anything is published. What it cannot know, such as a customer id or a name in free text, is for you to find in the shared text it shows you; unpublish it if need be.'));
  if (recipes.length === 0) {
    section.append(h('p', null, 'This workspace has no recipe to publish yet.'));
    return section;
  }
  section.append(
    form([
      field('Recipe', h('select', { name: 'recipe', required: true },
        h('option', { value: '' }, 'Choose a recipe'),
        recipes.map((recipe) => h('option', { value: recipe.id }, recipe.name)))),
      field('Description', h('textarea', { name: 'description', rows: 3, maxlength: 2000 }),
        'What it does and what it needs. It is published as you write it: the check does not read it, so leave out names, addresses and ids.'),
    ], 'Check what would be shared', async (values, slot, node) => {
      const recipe = values.get('recipe');
      const checked = await api('POST', '/library/check', { recipe });
      drawChecked(result, checked, async () => {
        // The description as it is when publishing: it may have been edited since the check.
        const description = String(node.querySelector('[name="description"]').value).trim();
        const published = await api('POST', '/library', { recipe, description });
        await refresh();
        drawPublished(result, published, refresh);
        result.querySelector('h3')?.focus();
      });
      result.querySelector('h3')?.focus();
    }),
    result);
  return section;
}

/** What the check took out, as a table: the values are shown to the publisher alone. */
function removedTable(removed) {
  return removed.length
    ? table('Values replaced by placeholders, shown to you alone', ['Placeholder', 'Kind', 'Value taken out', 'On lines'], removed.map((finding) => [
      h('code', null, finding.placeholder), finding.kind, h('code', null, finding.value), finding.lines.join(', '),
    ]))
    : h('p', null, 'The check found nothing to take out.');
}

/** The check's findings and shared text, read before anything is published. */
function drawChecked(result, checked, publish) {
  const slot = h('div');
  result.replaceChildren(
    h('h3', { tabindex: -1 }, `What the check would take out of “${checked.name}”`),
    removedTable(checked.removed || []),
    h('h3', null, 'The shared text, as every workspace would see it'),
    sharedText(checked.source, 'The shared text'),
    h('div', { class: 'actions' }, button('Publish it', async () => {
      try { await publish(); } catch (error) { say(slot, 'error', explain(error)); }
    })),
    slot);
}

function drawPublished(result, published, refresh) {
  const removed = published.removed || [];
  const slot = h('div');
  result.replaceChildren(...[
    message('ok', `Published “${published.name}”.`),
    h('h3', { tabindex: -1 }, 'What the check took out'),
    removedTable(removed),
    h('h3', null, 'The shared text, as every workspace sees it'),
    sharedText(published.source, 'The shared text'),
    h('div', { class: 'actions' },
      link(`/library/${encodeURIComponent(published.id)}`, 'Open it in the library'),
      can('admin') ? button('Unpublish it', async () => {
        try {
          await api('DELETE', `/library/${encodeURIComponent(published.id)}`);
          await refresh();
          const done = message('ok', `“${published.name}” is out of the library.`);
          result.replaceChildren(done);
          // The button is gone: focus stays near, on what it did.
          done.tabIndex = -1;
          done.focus();
        } catch (error) {
          say(slot, 'error', explain(error));
        }
      }, { class: 'danger' }) : null),
    slot,
  ].filter(Boolean));
}

async function entryPage(main, path, id) {
  let entry;
  let connections;
  try {
    [entry, connections] = await Promise.all([
      api('GET', `/library/${encodeURIComponent(id)}`),
      // The connections' names are suggestions for connection placeholders, nothing more.
      can('builder') ? api('GET', '/connections').catch(() => ({ connections: [] })) : { connections: [] },
    ]);
  } catch (error) {
    if (!(error instanceof ApiFailure && error.status === 404)) throw error;
    main.replaceChildren(heading('Not in the library'),
      h('p', null, 'No published recipe has this id: it may have been unpublished. ', link('/library', 'See what is published')));
    return;
  }
  if (location.pathname !== path) return;
  const ours = entry.workspace === session.workspace;
  main.replaceChildren(...[
    h('p', null, link('/library', 'All published recipes')),
    heading(entry.name),
    entry.description ? h('p', null, entry.description) : null,
    h('p', null, `Published by ${publisher(entry.workspace)} on `, time(entry.published_at), '.'),
    can('builder') ? importSection(entry, connections.connections) : null,
    h('h2', null, 'Shared text'),
    sharedText(entry.source, `The shared text of ${entry.name}`),
    can('admin') && ours ? unpublishSection(entry) : null,
  ].filter(Boolean));
}

function importSection(entry, connections) {
  const result = h('div');
  const fields = entry.placeholders.map((placeholder) => {
    const [word, type] = KINDS[placeholder.kind] || ['Value', 'text'];
    const number = placeholder.name.match(/_(\d+)__$/)?.[1] || '';
    const input = h('input', {
      name: placeholder.name, type, required: true, autocomplete: 'off', spellcheck: 'false',
      list: placeholder.kind === 'connection' && connections.length ? 'library-connections' : null,
    });
    const hint = placeholder.hint.charAt(0).toUpperCase() + placeholder.hint.slice(1);
    return field(`${word} ${number}`.trim(), input, `${hint}; it stands for ${placeholder.name} in the text.`);
  });
  return h('section', { id: 'import', 'aria-labelledby': 'import-title' },
    h('h2', { id: 'import-title' }, 'Import it'),
    h('p', null, 'This makes a recipe of this workspace from it, enabled as every new recipe is: read the text below first. ',
      fields.length ? 'Give a value for each placeholder.' : 'It has no placeholder to fill in.'),
    h('datalist', { id: 'library-connections' }, connections.map((one) => h('option', { value: one.name }, `${one.name} (${one.connector})`))),
    form(fields, 'Import as a new recipe', async (values) => {
      const filled = Object.fromEntries(entry.placeholders.map((placeholder) => [placeholder.name, String(values.get(placeholder.name)).trim()]));
      const recipe = await api('POST', `/library/${encodeURIComponent(entry.id)}/import`, { values: filled });
      result.replaceChildren(
        message('ok', `Made the recipe “${recipe.name}” in this workspace${recipe.enabled ? '; it is enabled' : ''}.`),
        h('p', null, link(`/recipes/${encodeURIComponent(recipe.id)}`, `Open “${recipe.name}”`)));
    }),
    result);
}

function unpublishSection(entry) {
  const slot = h('div');
  return h('section', { id: 'unpublish', 'aria-labelledby': 'unpublish-title' },
    h('h2', { id: 'unpublish-title' }, 'Unpublish'),
    h('p', null, 'This workspace published it. Taking it out of the library leaves the recipes already imported from it as they are.'),
    h('div', { class: 'actions' }, button('Take it out of the library', async () => {
      if (!window.confirm(`Take “${entry.name}” out of the library?`)) return;
      try {
        await api('DELETE', `/library/${encodeURIComponent(entry.id)}`);
        go('/library');
      } catch (error) {
        say(slot, 'error', explain(error));
      }
    }, { class: 'danger' })),
    slot);
}
