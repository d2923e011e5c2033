// Compare: one recording through several speech-to-text models at once (time taken, the
// words where each differs from the first); one sentence in several voices, one after
// another so that each time to first audio is its own.

import { chunks } from './api.js';
import { CONTENT_TYPES, audioSource } from './audio.js';
import { wordDiff } from './diff.js';
import { ofKind, servedModels, speak, transcribe, voices } from './service.js';
import { $, el, milliseconds, say, sayError, seconds, setObjectUrl } from './ui.js';

let clip = null;

export async function init() {
  audioSource($('#compare .source'), {
    onClip: (chosen) => {
      clip = chosen;
      $('#cmp-stt-run').disabled = false;
      say($('#cmp-stt-status'), `${chosen.name} is ready.`);
    },
    onError: (message) => say($('#cmp-stt-status'), message, 'error'),
  });
  $('#cmp-stt-form').addEventListener('submit', compareModels);
  $('#cmp-tts-form').addEventListener('submit', compareVoices);
  await Promise.all([fillModels(), fillVoices()]);
}

const checkbox = (name, value, label, checked) => el('label', { class: 'check' },
  el('input', { type: 'checkbox', name, value, checked }), label);

async function fillModels() {
  try {
    const models = ofKind(await servedModels(), 'stt');
    $('#cmp-stt-models').replaceChildren(...models.map((m) => checkbox('stt', m.id, m.id, true)));
  } catch (error) {
    sayError($('#cmp-stt-status'), error);
  }
}

async function fillVoices() {
  try {
    const listed = (await voices()).filter((v) => v.type === 'builtin');
    const seen = new Set();
    $('#cmp-tts-voices').replaceChildren(...listed.map((v) => {
      const first = !seen.has(v.model);
      seen.add(v.model);
      return checkbox('voice', `${v.model}\n${v.id}`, `${v.model} · ${v.id}`, first);
    }));
  } catch (error) {
    sayError($('#cmp-tts-status'), error);
  }
}

const chosen = (form, name) => [...form.querySelectorAll(`input[name=${name}]:checked`)].map((box) => box.value);

function card(title) {
  const time = el('p', { class: 'meta' }, 'working…');
  const body = el('p', {});
  const node = el('article', { class: 'result', dataset: { name: title } }, el('h3', {}, title), time, body);
  return { node, time, body };
}

async function compareModels(event) {
  event.preventDefault();
  const models = chosen(event.target, 'stt');
  const status = $('#cmp-stt-status');
  if (!clip || !models.length) return say(status, 'Choose a recording and at least one model.', 'error');
  const cards = models.map((model) => card(model));
  $('#cmp-stt-results').replaceChildren(...cards.map((c) => c.node));
  say(status, `Transcribing with ${models.length} models at once…`);
  const runs = models.map(async (model, index) => {
    const began = performance.now();
    const { time, body } = cards[index];
    try {
      const result = await transcribe(clip, model, { format: 'json' });
      time.textContent = `${milliseconds(performance.now() - began)}`;
      body.textContent = result.text;
      return result.text;
    } catch (error) {
      time.textContent = 'failed';
      body.textContent = error.message;
      body.className = 'error';
      return null;
    }
  });
  const texts = await Promise.all(runs);
  markDifferences(models, texts, cards);
  say(status, `${texts.filter((t) => t !== null).length} of ${models.length} models answered.`, 'ok');
}

function markDifferences(models, texts, cards) {
  const reference = texts[0];
  if (reference === null) return;
  texts.forEach((text, index) => {
    if (index === 0 || text === null) return;
    const { ops, wer } = wordDiff(reference, text);
    const pieces = ops.map(({ op, word }) => (op === 'same' ? word : el(op, { title: op === 'ins' ? `not in ${models[0]}` : `only in ${models[0]}` }, word)));
    cards[index].body.replaceChildren(...pieces.flatMap((piece, i) => (i ? [' ', piece] : [piece])));
    cards[index].time.append(` · ${(100 * wer).toFixed(0)} % of words differ from ${models[0]}`);
  });
  cards[0].time.append(' · reference');
}

async function compareVoices(event) {
  event.preventDefault();
  const picks = chosen(event.target, 'voice').map((value) => value.split('\n'));
  const status = $('#cmp-tts-status');
  const input = $('#cmp-tts-text').value;
  if (!picks.length) return say(status, 'Choose at least one voice.', 'error');
  const cards = picks.map(([model, voice]) => card(`${model} · ${voice}`));
  $('#cmp-tts-results').replaceChildren(...cards.map((c) => c.node));
  for (const [index, [model, voice]] of picks.entries()) {
    const { time, body } = cards[index];
    say(status, `Speaking with ${model} · ${voice} (${index + 1} of ${picks.length})…`);
    const began = performance.now();
    try {
      const response = await speak({ model, voice, input, format: 'mp3' });
      let first = null;
      const parts = [];
      for await (const chunk of chunks(response)) {
        first ??= performance.now() - began;
        parts.push(chunk);
      }
      const total = performance.now() - began;
      const audio = el('audio', { controls: true, preload: 'metadata' });
      setObjectUrl(audio, 'src', new Blob(parts, { type: CONTENT_TYPES.mp3 }));
      audio.addEventListener('loadedmetadata', () => time.append(` · ${seconds(audio.duration)} of speech`), { once: true });
      time.textContent = `first audio after ${milliseconds(first ?? total)}, all after ${milliseconds(total)}`;
      time.dataset.firstAudioMs = String(Math.round(first ?? total));
      body.replaceChildren(audio);
    } catch (error) {
      time.textContent = 'failed';
      body.textContent = error.message;
      body.className = 'error';
    }
  }
  say(status, `Spoke with ${picks.length} voices.`, 'ok');
}
