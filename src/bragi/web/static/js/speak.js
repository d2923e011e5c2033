// Speak: text through any text-to-speech model and voice (cloned ones included), heard
// while the rest is still being made; then downloaded.

import { playSpeech, streams } from './audio.js';
import { modelLabel, ofKind, servedModels, speak, voices } from './service.js';
import { $, el, milliseconds, say, sayError } from './ui.js';

let running = null;
const status = () => $('#sp-status');

export async function init() {
  $('#sp-model').addEventListener('change', modelChanged);
  $('#sp-speed').addEventListener('input', () => {
    $('#sp-speed-value').textContent = `${Number($('#sp-speed').value).toFixed(2)}×`;
  });
  $('#sp-form').addEventListener('submit', run);
  $('#sp-stop').addEventListener('click', stop);
  await fillModels();
}

export async function shown() {
  await fillVoices();  // cloned voices may have come or gone
}

export function leave() {
  stop();
}

async function fillModels(fresh = false) {
  try {
    const models = ofKind(await servedModels(fresh), 'tts');
    const select = $('#sp-model');
    const keep = select.value;
    select.replaceChildren(...models.map((m) => el('option', { value: m.id }, modelLabel(m))));
    if (models.some((m) => m.id === keep)) select.value = keep;
    if (!models.length) say(status(), 'This server has no text-to-speech model.', 'error');
    await modelChanged();
  } catch (error) {
    sayError(status(), error);
  }
}

async function chosenModel() {
  return (await servedModels()).find((m) => m.id === $('#sp-model').value);
}

async function modelChanged() {
  const model = await chosenModel();
  // Shown only where /v1/models says the model follows instructions (style or voice).
  $('#sp-instructions-label').hidden = !model?.instructions || model.instructions === 'none';
  await fillVoices();
}

async function fillVoices() {
  const model = await chosenModel();
  if (!model) return;
  const select = $('#sp-voice');
  const keep = select.value;
  try {
    const listed = await voices(model.id);
    const builtin = listed.filter((v) => v.type === 'builtin');
    const cloned = model.cloning === false ? [] : listed.filter((v) => v.type === 'audio_sample');
    const groups = [el('optgroup', { label: `Voices of ${model.id}` }, builtin.map((v) => el('option', { value: v.id },
      [v.id, v.language, v.gender].filter(Boolean).join(' · '))))];
    if (cloned.length) {
      groups.push(el('optgroup', { label: 'Cloned voices' }, cloned.map((v) => el('option', { value: v.id, dataset: { cloned: 'yes' } }, `${v.name} (cloned)`))));
    }
    select.replaceChildren(...groups);
    if ([...select.options].some((option) => option.value === keep)) select.value = keep;
  } catch (error) {
    sayError(status(), error);
  }
}

function stop() {
  running?.abort();
  running = null;
  $('#sp-audio').pause();
}

async function run(event) {
  event.preventDefault();
  const option = $('#sp-voice').selectedOptions[0];
  if (!option) return say(status(), 'Choose a voice first.', 'error');
  stop();
  const controller = new AbortController();
  running = controller;
  const format = $('#sp-format').value;
  const audio = $('#sp-audio');
  const link = $('#sp-download');
  link.hidden = true;
  $('#sp-run').disabled = true;
  $('#sp-stop').disabled = false;
  const model = $('#sp-model').value;
  say(status(), `Speaking with ${model}…`);
  const began = performance.now();
  let firstAudio = null;
  try {
    const response = await speak({
      model,
      voice: option.dataset.cloned ? { id: option.value } : option.value,
      input: $('#sp-text').value,
      format,
      speed: Number($('#sp-speed').value),
      instructions: $('#sp-instructions-label').hidden ? undefined : $('#sp-instructions').value.trim(),
      signal: controller.signal,
    });
    audio.hidden = false;
    const how = streams(format) ? 'playing while the rest is made' : `${format} plays once complete`;
    const blob = await playSpeech(response, format, audio, {
      onFirstAudio: () => {
        firstAudio = performance.now() - began;
        say(status(), `First audio after ${milliseconds(firstAudio)}; ${how}…`);
      },
    });
    const total = performance.now() - began;
    say(status(), `First audio after ${milliseconds(firstAudio)}, all of it after ${milliseconds(total)} (${(blob.size / 1024).toFixed(0)} KB).`, 'ok');
    const previous = link.dataset.objectUrl;
    if (previous) URL.revokeObjectURL(previous);
    link.dataset.objectUrl = URL.createObjectURL(blob);
    link.href = link.dataset.objectUrl;
    link.download = `speech.${format}`;
    link.textContent = `Download speech.${format}`;
    link.hidden = false;
    fillModels(true);  // the model is loaded now: what it can do is known
  } catch (error) {
    sayError(status(), error);
  } finally {
    if (running === controller) running = null;
    $('#sp-run').disabled = false;
    $('#sp-stop').disabled = true;
  }
}
