// Bragi's calls that several tabs share: the served models, transcribing, speaking.

import { getJSON, request } from './api.js';

let modelList = null;

// GET /v1/models, fetched once and again when `fresh` (a model's state or abilities changed).
export async function servedModels(fresh = false) {
  if (!modelList || fresh) {
    const pending = getJSON('v1/models').then((body) => body.data);
    modelList = pending;
    pending.catch(() => { if (modelList === pending) modelList = null; });
  }
  return modelList;
}

// The served models of a kind. Aliases (OpenAI's names such as gpt-4o-transcribe) are left
// out: each is a model already listed under its own name.
export const ofKind = (models, kind) => models.filter((model) => model.kind === kind && !model.alias_of);

// The diarization model the server labels speakers with (the first one), if it can be used.
export function diarizer(models) {
  const found = ofKind(models, 'diarization')[0];
  return found && found.state !== 'failed' ? found : null;
}

export function modelLabel(model) {
  const notes = [model.backend, model.state === 'failed' ? 'failed' : null].filter(Boolean);
  return notes.length ? `${model.id} (${notes.join(', ')})` : model.id;
}

// POST /v1/audio/transcriptions with a recorded or chosen clip.
export async function transcribe(clip, model, { language, words = false, format = 'verbose_json', signal } = {}) {
  const form = new FormData();
  form.append('file', clip.blob, clip.name);
  form.append('model', model);
  form.append('response_format', format);
  if (format === 'verbose_json') {
    form.append('timestamp_granularities[]', 'segment');
    if (words) form.append('timestamp_granularities[]', 'word');
  }
  if (language) form.append('language', language);
  const response = await request('v1/audio/transcriptions', { method: 'POST', form, signal });
  return response.json();
}

// POST /v1/audio/speech; resolves with the streaming response.
export function speak({ model, voice, input, format = 'mp3', speed, instructions, signal }) {
  const json = { model, voice, input, response_format: format };
  if (speed !== undefined && speed !== 1) json.speed = speed;
  if (instructions) json.instructions = instructions;
  return request('v1/audio/speech', { method: 'POST', json, signal });
}

// GET /v1/audio/voices[?model=]: built-in voices and cloned ones.
export async function voices(model) {
  const query = model ? `?model=${encodeURIComponent(model)}` : '';
  return (await getJSON(`v1/audio/voices${query}`)).data;
}
