// Transcribe: a file or a recording through any speech-to-text model; the text, segments
// and words with their times; the word being spoken lights up as the audio plays. With
// "Who spoke" (a diarization model on the server), the turns of each speaker instead.

import { audioSource, showClip } from './audio.js';
import { diarizer, modelLabel, ofKind, servedModels, transcribe } from './service.js';
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
    const served = await servedModels();
    const models = ofKind(served, 'stt');
    fillSelect($('#tr-model'), models.map((m) => [m.id, modelLabel(m)]));
    if (!models.length) say(status(), 'This server has no speech-to-text model.', 'error');
    $('#tr-speakers-label').hidden = !diarizer(served);
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
  const speakers = !$('#tr-speakers-label').hidden && $('#tr-speakers').checked;
  const button = $('#tr-run');
  button.disabled = true;
  say(status(), speakers ? `Transcribing with ${model}, and finding who spoke…` : `Transcribing with ${model}…`);
  const began = performance.now();
  try {
    // Words only from models that time them (/v1/models says; null: not known before it loads).
    const described = (await servedModels()).find((m) => m.id === model);
    const words = described?.word_timestamps === true;
    const format = speakers ? 'diarized_json' : 'verbose_json';
    const body = await transcribe(clip, model, { language, words, format });
    if (described && described.word_timestamps === null) servedModels(true);  // loaded now: it says
    show(body, model, performance.now() - began);
    say(status(), `Done in ${milliseconds(performance.now() - began)}.`, 'ok');
  } catch (error) {
    sayError(status(), error);
  } finally {
    button.disabled = false;
  }
}

const timedSpan = (item, index, text) => el('span', {
  class: 'w',
  tabindex: 0,
  title: `${seconds(item.start)} – ${seconds(item.end)}`,
  dataset: { start: item.start, end: item.end, index },
}, text);

// Each speaker's turns, the speaker marked by a letter (or a known name) and a colour.
function turns(segments) {
  const order = [...new Set(segments.map((s) => s.speaker))];
  spans = segments.map((s, index) => timedSpan(s, index, s.text.trim()));
  return segments.map((s, index) => el('p', { class: 'turn', dataset: { speaker: s.speaker, hue: order.indexOf(s.speaker) % 6 } },
    el('span', { class: 'speaker' }, s.speaker), ' ', spans[index]));
}

function show(body, model, took) {
  transcript = body;
  const diarized = (body.segments || []).some((s) => 'speaker' in s);
  const timed = body.words?.length ? body.words : body.segments || [];
  const text = $('#tr-text');
  if (diarized) {
    text.replaceChildren(...turns(body.segments));
  } else {
    spans = timed.map((item, index) => timedSpan(item, index, (item.word ?? item.text).trim()));
    text.replaceChildren(...spans.flatMap((span, i) => (i ? [' ', span] : [span])));
  }
  starts = timed.map((item) => item.start);
  lit = -1;
  if (!spans.length) text.textContent = body.text || '(no speech found)';
  const speakers = [...new Set((body.segments || []).map((s) => s.speaker))];
  $('#tr-meta').textContent = [
    model,
    body.language,
    `${seconds(body.duration)} of audio`,
    `transcribed in ${milliseconds(took)}`,
    diarized ? `${speakers.length} ${speakers.length === 1 ? 'speaker' : 'speakers'}` : null,
    diarized || body.words ? null : 'no word times from this model',
    body.words ? `${body.words.length} words` : null,
  ].filter(Boolean).join(' · ');
  const cell = (value) => el('td', {}, value);
  $('#tr-speaker-col').hidden = !diarized;
  $('#tr-segments').replaceChildren(...(body.segments || []).map((s) => el('tr', {},
    cell(seconds(s.start)), cell(seconds(s.end)), diarized ? cell(s.speaker) : null, cell(s.text.trim()))));
  $('#tr-words').replaceChildren(...(body.words || []).map((w) => el('tr', {},
    cell(seconds(w.start)), cell(seconds(w.end)), cell(w.word.trim()))));
  $('#tr-words-table').hidden = !body.words?.length;
  $('#tr-result').hidden = false;
}

// Light the last word (or turn) that has started by `time`.
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

// Cues as the server writes them when it labels speakers: "A: text" in srt, <v A> in vtt.
const labelled = (segments, label) => segments.map((s) => ('speaker' in s ? { ...s, text: label(s.speaker, s.text.trim()) } : s));

function save(format) {
  if (!transcript) return;
  const base = (clip?.name || 'transcript').replace(/\.[^.]+$/, '') || 'transcript';
  const segments = transcript.segments || [];
  const files = {
    txt: () => [toText(transcript), 'text/plain'],
    srt: () => [toSrt(labelled(segments, (who, text) => `${who}: ${text}`)), 'application/x-subrip'],
    vtt: () => [toVtt(labelled(segments, (who, text) => `<v ${who}>${text}`)), 'text/vtt'],
    json: () => [`${JSON.stringify(transcript, null, 2)}\n`, 'application/json'],
  };
  const [content, type] = files[format]();
  download(new Blob([content], { type }), `${base}.${format}`);
}
