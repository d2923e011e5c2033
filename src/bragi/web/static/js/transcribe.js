// Transcribe: a file or a recording through any speech-to-text model; the text, segments
// and words with their times; the word being spoken lights up as the audio plays.

import { audioSource, showClip } from './audio.js';
import { modelLabel, ofKind, servedModels, transcribe } from './service.js';
import { toSrt, toText, toVtt } from './subtitles.js';
import { $, download, el, fillSelect, milliseconds, say, sayError, seconds } from './ui.js';

let clip = null;
let transcript = null;
let spans = [];  // the words (or segments) on the page, in time order
let starts = [];
let lit = -1;

const status = () => $('#tr-status');

export async function init() {
  const audio = $('#tr-audio');
  audioSource($('#transcribe .source'), { onClip: useClip, onError: (message) => say(status(), message, 'error') });
  $('#tr-form').addEventListener('submit', run);
  $('#tr-result').addEventListener('click', (event) => {
    const format = event.target.dataset?.download;
    if (format) save(format);
  });
  $('#tr-text').addEventListener('click', (event) => {
    const span = event.target.closest('.w');
    if (!span) return;
    audio.currentTime = Number(span.dataset.start);
    audio.play().catch(() => {});
  });
  $('#tr-text').addEventListener('keydown', (event) => {
    if ((event.key === 'Enter' || event.key === ' ') && event.target.classList.contains('w')) {
      event.preventDefault();
      event.target.click();
    }
  });
  let frame = 0;
  const follow = () => {
    highlight(audio.currentTime);
    frame = audio.paused ? 0 : requestAnimationFrame(follow);
  };
  audio.addEventListener('play', () => { if (!frame) frame = requestAnimationFrame(follow); });
  audio.addEventListener('seeked', () => highlight(audio.currentTime));
  audio.addEventListener('timeupdate', () => { if (audio.paused) highlight(audio.currentTime); });
  await fillModels();
}

async function fillModels() {
  try {
    const models = ofKind(await servedModels(), 'stt');
    fillSelect($('#tr-model'), models.map((m) => [m.id, modelLabel(m)]));
    if (!models.length) say(status(), 'This server has no speech-to-text model.', 'error');
  } catch (error) {
    sayError(status(), error);
  }
}

function useClip(chosen) {
  clip = chosen;
  showClip($('#tr-audio'), chosen.blob);
  $('#tr-run').disabled = false;
  say(status(), `${chosen.name} is ready: pick a model and transcribe it.`);
}

async function run(event) {
  event.preventDefault();
  if (!clip) return;
  const model = $('#tr-model').value;
  const language = $('#tr-language').value.trim();
  const button = $('#tr-run');
  button.disabled = true;
  say(status(), `Transcribing with ${model}…`);
  const began = performance.now();
  try {
    let body;
    try {
      body = await transcribe(clip, model, { language, words: true });
    } catch (error) {
      // An engine without word times: segments are still worth showing.
      if (error.status !== 400 || error.param !== 'timestamp_granularities') throw error;
      body = await transcribe(clip, model, { language, words: false });
    }
    show(body, model, performance.now() - began);
    say(status(), `Done in ${milliseconds(performance.now() - began)}.`, 'ok');
  } catch (error) {
    sayError(status(), error);
  } finally {
    button.disabled = false;
  }
}

function show(body, model, took) {
  transcript = body;
  const timed = body.words?.length ? body.words : body.segments || [];
  const text = $('#tr-text');
  spans = timed.map((item, index) => el('span', {
    class: 'w',
    tabindex: 0,
    title: `${seconds(item.start)} – ${seconds(item.end)}`,
    dataset: { start: item.start, end: item.end, index },
  }, (item.word ?? item.text).trim()));
  starts = timed.map((item) => item.start);
  lit = -1;
  text.replaceChildren(...spans.flatMap((span, i) => (i ? [' ', span] : [span])));
  if (!spans.length) text.textContent = body.text || '(no speech found)';
  $('#tr-meta').textContent = [
    model,
    body.language,
    `${seconds(body.duration)} of audio`,
    `transcribed in ${milliseconds(took)}`,
    body.words ? `${body.words.length} words` : 'no word times from this model',
  ].filter(Boolean).join(' · ');
  const row = (start, end, words) => el('tr', {}, el('td', {}, seconds(start)), el('td', {}, seconds(end)), el('td', {}, words));
  $('#tr-segments').replaceChildren(...(body.segments || []).map((s) => row(s.start, s.end, s.text.trim())));
  $('#tr-words').replaceChildren(...(body.words || []).map((w) => row(w.start, w.end, w.word.trim())));
  $('#tr-result').hidden = false;
}

// Light the last word that has started by `time`.
function highlight(time) {
  let low = 0;
  let high = starts.length - 1;
  let found = -1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    if (starts[middle] <= time) { found = middle; low = middle + 1; } else { high = middle - 1; }
  }
  if (found === lit) return;
  spans[lit]?.classList.remove('now');
  spans[lit]?.removeAttribute('aria-current');
  lit = found;
  spans[lit]?.classList.add('now');
  spans[lit]?.setAttribute('aria-current', 'true');
}

function save(format) {
  if (!transcript) return;
  const base = (clip?.name || 'transcript').replace(/\.[^.]+$/, '') || 'transcript';
  const segments = transcript.segments || [];
  const files = {
    txt: () => [toText(transcript), 'text/plain'],
    srt: () => [toSrt(segments), 'application/x-subrip'],
    vtt: () => [toVtt(segments), 'text/vtt'],
    json: () => [`${JSON.stringify(transcript, null, 2)}\n`, 'application/json'],
  };
  const [content, type] = files[format]();
  download(new Blob([content], { type }), `${base}.${format}`);
}
