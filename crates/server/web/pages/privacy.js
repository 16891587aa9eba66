// Privacy, for admins: how long job history is kept and what of it, the masking rules, a
// person's data found and erased in the history, and (owners) closing the workspace.

import {
  h, api, can, session, field, button, table, message, say, explain, heading, link, time, fmtTime, progress, badge, announce, form, jobLink,
} from '../lib.js';

export async function render(main, { path }) {
  if (!can('admin')) {
    main.replaceChildren(heading('Privacy'), message('info', 'Only admins and owners of this workspace manage its privacy.'));
    return;
  }
  const [retention, masking] = await Promise.all([api('GET', '/privacy/retention'), api('GET', '/privacy/masking')]);
  // Whoever moved on to another page while this one loaded is not to find it drawn there.
  if (location.pathname !== path) return;
  main.replaceChildren(...[
    heading('Privacy'),
    h('nav', { 'aria-label': 'On this page' }, h('ul', null,
      h('li', null, h('a', { href: '#retention' }, 'Job history kept')),
      h('li', null, h('a', { href: '#masking' }, 'Masking rules')),
      h('li', null, h('a', { href: '#subjects' }, 'A person’s data')),
      can('owner') ? h('li', null, h('a', { href: '#closing' }, 'Close this workspace')) : null)),
    retentionSection(retention),
    maskingSection(masking),
    subjectSection(),
    can('owner') ? closeSection() : null,
  ].filter(Boolean));
}


function checkbox(label, attrs, hint) {
  const input = h('input', { type: 'checkbox', ...attrs });
  const node = field(label, input, hint);
  node.classList.add('inline');
  node.prepend(input);
  return node;
}

const UNITS = [['d', 86400, 'day'], ['h', 3600, 'hour'], ['m', 60, 'minute'], ['s', 1, 'second']];

/** Seconds as the API takes a duration back: `90d`, `1d12h`. */
function durationText(seconds) {
  if (!seconds) return '';
  let rest = seconds;
  return UNITS.map(([unit, size]) => {
    const count = Math.floor(rest / size);
    rest -= count * size;
    return count ? `${count}${unit}` : '';
  }).join('');
}

function durationWords(seconds) {
  let rest = seconds;
  const parts = UNITS.map(([, size, word]) => {
    const count = Math.floor(rest / size);
    rest -= count * size;
    return count ? `${count} ${word}${count === 1 ? '' : 's'}` : '';
  }).filter(Boolean);
  return parts.slice(0, 2).join(' ') || '0 seconds';
}

function bytesWords(bytes) {
  const units = ['bytes', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let index = 0;
  while (value >= 1000 && index < units.length - 1) { value /= 1000; index += 1; }
  return `${index ? value.toFixed(value < 10 ? 1 : 0) : value} ${units[index]}`;
}

function retentionSection(report) {
  const held = h('div');
  const draw = (fresh) => {
    const rows = fresh.recipes.map((one) => [
      one.deleted_recipe ? `${one.recipe} (deleted recipe)` : link(`/recipes/${encodeURIComponent(one.recipe_id)}`, one.recipe),
      String(one.jobs),
      time(one.oldest_job_at),
      durationWords(one.keep_seconds),
      one.record || 'unknown (the recipe does not compile)',
      time(one.oldest_goes_at),
    ]);
    held.replaceChildren(
      h('p', null, `This workspace holds ${bytesWords(fresh.history_bytes)} of job history (as of ${fmtTime(fresh.as_of)}).`),
      rows.length
        ? table('Job history held, per recipe', ['Recipe', 'Jobs', 'Oldest job', 'Kept for', 'What is stored', 'Oldest goes'], rows)
        : h('p', null, 'No job history is held.'));
  };
  draw(report);
  const cap = report.settings.max_history_bytes;
  return h('section', { id: 'retention', 'aria-labelledby': 'retention-title' },
    h('h2', { id: 'retention-title' }, 'Job history kept'),
    h('p', null, 'Only ended jobs are deleted, oldest first. A recipe’s own ', h('code', null, 'retention.keep'),
      ' wins for its jobs; “what is stored” is its ', h('code', null, 'retention.record'), ': full, masked or metadata only.'),
    held,
    h('h3', null, 'This workspace’s rules'),
    form([
      field('Keep job history for', h('input', { name: 'keep', value: durationText(report.settings.keep_seconds), autocomplete: 'off', spellcheck: 'false' }),
        `A duration such as 90d, 12h or 1d12h. Empty: the server’s default, ${durationWords(report.server_keep_seconds)}.`),
      field('Most job history to hold, in MB', h('input', { name: 'cap', type: 'number', min: '0.000001', step: 'any', inputmode: 'decimal', value: cap ? String(cap / 1e6) : '' }),
        'Past it, the oldest ended jobs go first. Empty: no cap.'),
    ], 'Save the rules', async (values, slot) => {
      const keep = String(values.get('keep')).trim();
      const megabytes = String(values.get('cap')).trim();
      const saved = await api('PUT', '/privacy/retention', {
        keep: keep || null,
        max_history_bytes: megabytes ? Math.max(1, Math.round(Number(megabytes) * 1e6)) : null,
      });
      draw(await api('GET', '/privacy/retention'));
      say(slot, 'ok', `Saved: history is kept ${saved.keep_seconds ? `for ${durationWords(saved.keep_seconds)}` : 'as long as the server’s default'}, ${saved.max_history_bytes ? `up to ${bytesWords(saved.max_history_bytes)}` : 'with no cap'}.`);
    }));
}

function maskingSection(rules) {
  const names = h('textarea', { name: 'fields', rows: 8, class: 'code', spellcheck: 'false', disabled: rules.default_fields }, rules.fields.join('\n'));
  const builtInField = checkbox('Use the built-in list of field names', { name: 'default', checked: rules.default_fields });
  const builtIn = builtInField.querySelector('input');
  builtIn.addEventListener('change', () => { names.disabled = builtIn.checked; });
  return h('section', { id: 'masking', 'aria-labelledby': 'masking-title' },
    h('h2', { id: 'masking-title' }, 'Masking rules'),
    h('p', null, 'Masked values are replaced by ', h('code', null, '[masked]'),
      ' before a job’s record is written. New rules apply to records written from now on; records already written keep the rules they were written with.'),
    form([
      builtInField,
      field('Field names masked wherever they appear', names,
        'One a line. Names match whatever their case, _, -, spaces or dots: card_number covers cardNumber. An empty list masks no field by name.'),
      checkbox('Find and mask card numbers, tokens, keys and passwords in any field', { name: 'detect', checked: rules.detect }),
    ], 'Save the masking rules', async (values, slot) => {
      const fields = builtIn.checked ? null
        : names.value.split('\n').map((name) => name.trim()).filter(Boolean);
      const saved = await api('PUT', '/privacy/masking', { fields, detect: values.get('detect') === 'on' });
      names.value = saved.fields.join('\n');
      say(slot, 'ok', `Saved: ${saved.fields.length} field names are masked${saved.detect ? ', and card numbers and credentials are found in any field' : ''}.`);
    }));
}

function subjectSection() {
  const results = h('div');
  const search = async (identifier) => {
    const found = await api('POST', '/privacy/subjects/search', { identifier });
    drawFound(results, identifier, found, search);
  };
  return h('section', { id: 'subjects', 'aria-labelledby': 'subjects-title' },
    h('h2', { id: 'subjects-title' }, 'A person’s data in the job history'),
    h('p', null, 'To answer a person who asks what this workspace holds about them, or asks for it to be erased, search the job history for an identifier of theirs. It is found inside longer text, whatever the case of its letters, but as written: search each form their data may have taken (+14155550100 and +1 415 555 0100 are two searches).'),
    form([
      field('Email, phone number or other identifier', h('input', { name: 'identifier', required: true, minlength: 3, maxlength: 1000, autocomplete: 'off', spellcheck: 'false' }), '3 to 1,000 characters. The audit log notes its kind and length, never it.'),
    ], 'Search the job history', async (values) => {
      results.replaceChildren(h('p', { class: 'loading' }, 'Searching…'));
      try {
        await search(String(values.get('identifier')).trim());
      } catch (error) {
        results.replaceChildren();
        throw error;
      }
    }),
    results);
}

function drawFound(results, identifier, found, search) {
  if (found.jobs_found === 0) {
    results.replaceChildren(message('ok', `No job of this workspace holds “${identifier}” (searched in ${found.took_ms} ms).`));
    return;
  }
  const ended = found.jobs_found - found.unfinished;
  const rows = found.jobs.map((job) => [
    jobLink(job.id, job.id),
    job.recipe || '—',
    badge(job.status),
    time(job.created_at),
    job.places.flatMap((place, index) => [index ? ', ' : '', h('code', null, place)]),
  ]);
  const outcome = h('div');
  const eraseButton = button('Erase from every ended job', async () => {
    if (!window.confirm(`Replace “${identifier}” with [erased] in ${ended} ended job${ended === 1 ? '' : 's'}? This cannot be undone.`)) return;
    eraseButton.remove();
    await erase(identifier, ended, outcome, search);
  }, { class: 'danger' });
  results.replaceChildren(...[
    message('info', `${found.jobs_found} job${found.jobs_found === 1 ? ' holds' : 's hold'} “${identifier}”${found.listed < found.jobs_found ? `; the first ${found.listed} are listed` : ''}. Open each to read what it holds.`),
    table(`Jobs that hold “${identifier}”, and where`, ['Job', 'Recipe', 'Status', 'Started', 'Where'], rows),
    found.unfinished ? message('warn', `${found.unfinished} of them have not ended: erasing leaves them as they are. Erase again once they end, or cancel them first.`) : null,
    ended > 0 ? h('div', { class: 'actions' }, eraseButton) : null,
    outcome,
  ].filter(Boolean));
}

/** Erases in calls of at most 200 jobs, so that the bar moves and no call runs for minutes. */
async function erase(identifier, expected, outcome, search) {
  const bar = progress('Erasure');
  let total = expected;
  let erased = 0;
  let values = 0;
  let still = null;
  const unfinished = new Set();
  bar.set(0, total, `0 of ${total} jobs erased`);
  const failure = h('div');
  const again = button('Search again', async () => {
    try { await search(identifier); } catch (error) { say(failure, 'error', explain(error)); }
  }, { class: 'secondary' });
  outcome.replaceChildren(bar.node, failure);
  // The erase button is gone: keyboard focus moves to the bar that replaces it.
  bar.node.tabIndex = -1;
  bar.node.focus();
  for (;;) {
    let answer;
    try {
      answer = await api('POST', '/privacy/subjects/erase', { identifier, max_jobs: 200 });
    } catch (error) {
      say(failure, 'error', `${explain(error)} ${erased} of ${total} jobs were erased before it stopped.`);
      outcome.append(h('div', { class: 'actions' }, again));
      return;
    }
    erased += answer.jobs_erased;
    values += answer.values_erased;
    answer.unfinished.forEach((id) => unfinished.add(id));
    total = Math.max(total, erased);
    bar.set(erased, total, `${erased} of ${total} jobs erased`);
    // The last call (nothing more to erase) searches again, and says what is left.
    if (!answer.more) {
      still = answer.ended_jobs_still_holding;
      break;
    }
  }
  const summary = `Erased ${values} value${values === 1 ? '' : 's'} in ${erased} job${erased === 1 ? '' : 's'}.`;
  announce(summary);
  outcome.append(...[
    still === 0
      ? message('ok', `${summary} Searched again: no ended job holds it any more.`)
      : message('warn', `${summary} ${still} ended job${still === 1 ? ' still holds' : 's still hold'} it: search again, then erase.`),
    unfinished.size ? h('div', null,
      h('p', null, 'Left as they are, since they had not ended:'),
      h('ul', null, [...unfinished].map((id) => h('li', null, jobLink(id, id))))) : null,
    h('div', { class: 'actions' }, again),
  ].filter(Boolean));
  again.focus();
}

function closeSection() {
  const id = session.workspace;
  const section = h('section', { id: 'closing', 'aria-labelledby': 'closing-title' },
    h('h2', { id: 'closing-title' }, 'Close this workspace'),
    h('p', null, 'Closing disables every recipe of this workspace at once, so no trigger makes a job, and no recipe can be made or enabled. Everything stays readable during the grace period, so that its people can export what they need; then all of it is deleted: job history, recipes, connections, lookup tables, tokens, invitations and audit log. Its people keep their accounts.'));
  if (id === 'default') {
    section.append(message('info', 'The default workspace cannot be closed: webhooks without /w/{workspace} in their address arrive there.'));
    return section;
  }
  const reopened = h('div');
  section.append(
    form([
      field(`Type this workspace’s id, ${id}, to confirm`, h('input', { name: 'confirm', required: true, autocomplete: 'off', spellcheck: 'false' })),
    ], 'Close the workspace', async (values, slot) => {
      if (values.get('confirm') !== id) {
        say(slot, 'error', `Type ${id} exactly to close this workspace.`);
        return;
      }
      const closed = await api('POST', '/workspace/close', { confirm: id });
      say(slot, 'warn', `This workspace is closing: ${closed.recipes_disabled} recipe${closed.recipes_disabled === 1 ? ' was' : 's were'} disabled, and all of it will be deleted on ${fmtTime(closed.close_due_at)} unless an owner reopens it.`);
    }, { class: 'danger' }),
    h('h3', null, 'Reopen it'),
    h('p', null, 'While it is closing, an owner can keep it. Its recipes stay disabled until someone enables them.'),
    h('div', { class: 'actions' }, button('Reopen this workspace', async () => {
      try {
        await api('POST', '/workspace/reopen');
        say(reopened, 'ok', 'This workspace is open and will not be deleted. Enable its recipes again on the Recipes page.');
      } catch (error) {
        say(reopened, 'error', explain(error));
      }
    }, { class: 'secondary' })),
    reopened);
  return section;
}
