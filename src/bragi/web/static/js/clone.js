// Clone: record or upload a voice, name it, hear it spoken by a model that can clone;
// list and delete cloned voices.

import { request } from './api.js';
import { audioSource, playSpeech, showClip } from './audio.js';
import { ofKind, servedModels, speak, voices } from './service.js';
import { $, el, say, sayError, seconds } from './ui.js';

let clip = null;
const status = () => $('#cl-status');
const listStatus = () => $('#cl-list-status');

export async function init() {
  audioSource($('#clone .source'), { onClip: useClip, onError: (message) => say(status(), message, 'error') });
  for (const id of ['#cl-name', '#cl-consent']) $(id).addEventListener('input', ready);
  $('#cl-form').addEventListener('submit', create);
  $('#cl-list').addEventListener('click', act);
  await Promise.all([fillModels(), list()]);
}

export async function shown() {
  await Promise.all([fillModels(), list()]);
}

function ready() {
  $('#cl-create').disabled = !(clip && $('#cl-name').checkValidity() && $('#cl-consent').checked);
}

function useClip(chosen) {
  clip = chosen;
  showClip($('#cl-audio'), chosen.blob);
  say(status(), `${chosen.name} is ready: listen to it, name the voice and create it.`);
  ready();
}

// Models that can clone first; those that cannot are left out once that is known.
async function fillModels() {
  try {
    const models = ofKind(await servedModels(true), 'tts').filter((m) => m.cloning !== false);
    models.sort((a, b) => Number(b.cloning === true) - Number(a.cloning === true));
    const select = $('#cl-model');
    const keep = select.value;
    select.replaceChildren(...models.map((m) => el('option', { value: m.id }, m.cloning ? `${m.id} (clones)` : m.id)));
    if (models.some((m) => m.id === keep)) select.value = keep;
  } catch (error) {
    sayError(listStatus(), error);
  }
}

async function create(event) {
  event.preventDefault();
  if (!clip) return;
  const name = $('#cl-name').value.trim();
  const form = new FormData();
  form.append('name', name);
  form.append('audio_sample', clip.blob, clip.name);
  const transcript = $('#cl-transcript').value.trim();
  if (transcript) form.append('transcript', transcript);
  $('#cl-create').disabled = true;
  say(status(), `Creating “${name}”…`);
  try {
    const voice = await (await request('v1/audio/voices', { method: 'POST', form })).json();
    say(status(), `Voice “${voice.name}” created from ${seconds(voice.duration)} of speech.`, 'ok');
    $('#cl-name').value = '';
    await list();
  } catch (error) {
    sayError(status(), error);
  } finally {
    ready();
  }
}

async function list() {
  try {
    const cloned = (await voices()).filter((v) => v.type === 'audio_sample');
    $('#cl-list').replaceChildren(...cloned.map((voice) => el('tr', { dataset: { id: voice.id, name: voice.name } },
      el('td', {}, voice.name),
      el('td', {}, seconds(voice.duration)),
      el('td', {}, new Date(voice.created_at * 1000).toLocaleString()),
      el('td', {}, el('div', { class: 'row' },
        el('button', { type: 'button', class: 'quiet', dataset: { act: 'hear' }, 'aria-label': `Hear ${voice.name}` }, 'Hear'),
        el('button', { type: 'button', class: 'quiet', dataset: { act: 'delete' }, 'aria-label': `Delete ${voice.name}` }, 'Delete'))))));
    say(listStatus(), cloned.length ? '' : 'No cloned voices yet.');
  } catch (error) {
    sayError(listStatus(), error);
  }
}

async function act(event) {
  const button = event.target.closest('button[data-act]');
  if (!button) return;
  const row = button.closest('tr');
  const { id, name } = row.dataset;
  if (button.dataset.act === 'hear') return hear(id, name);
  // Deleting asks once more on the same button, for four seconds.
  if (button.dataset.confirm !== 'yes') {
    button.dataset.confirm = 'yes';
    button.textContent = 'Really delete?';
    setTimeout(() => { button.dataset.confirm = ''; button.textContent = 'Delete'; }, 4000);
    return;
  }
  try {
    await request(`v1/audio/voices/${encodeURIComponent(id)}`, { method: 'DELETE' });
    await list();
    say(listStatus(), `Voice “${name}” deleted.`, 'ok');
  } catch (error) {
    sayError(listStatus(), error);
  }
}

async function hear(id, name) {
  const model = $('#cl-model').value;
  if (!model) return say(listStatus(), 'No model here can speak in a cloned voice.', 'error');
  say(listStatus(), `${model} is speaking as “${name}”…`);
  const audio = $('#cl-hear');
  try {
    const response = await speak({ model, voice: { id }, input: $('#cl-sample').value || 'Hello.' });
    audio.hidden = false;
    await playSpeech(response, 'mp3', audio);
    say(listStatus(), `${model} spoke as “${name}”.`, 'ok');
  } catch (error) {
    sayError(listStatus(), error);
  }
}
