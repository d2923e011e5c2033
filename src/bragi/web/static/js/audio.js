// Audio in and out: the microphone, a file chosen or dropped, and speech played while it
// is still being made.

import { chunks } from './api.js';
import { setObjectUrl } from './ui.js';

const RECORDING_TYPES = ['audio/webm;codecs=opus', 'audio/ogg;codecs=opus', 'audio/mp4'];

// One microphone recording at a time, as a compressed Blob (MediaRecorder).
export class Recorder {
  async start() {
    this.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const mimeType = RECORDING_TYPES.find((type) => MediaRecorder.isTypeSupported(type));
    this.recorder = new MediaRecorder(this.stream, mimeType ? { mimeType } : {});
    this.parts = [];
    this.recorder.addEventListener('dataavailable', (event) => this.parts.push(event.data));
    this.stopped = new Promise((resolve) => this.recorder.addEventListener('stop', resolve));
    this.recorder.start(250);
    this.startedAt = performance.now();
  }

  get seconds() { return this.startedAt ? (performance.now() - this.startedAt) / 1000 : 0; }

  async stop() {
    this.recorder.stop();
    await this.stopped;
    this.stream.getTracks().forEach((track) => track.stop());
    const type = this.recorder.mimeType || 'audio/webm';
    return new Blob(this.parts, { type });
  }
}

function extensionOf(type) {
  if (type.includes('ogg')) return 'ogg';
  if (type.includes('mp4')) return 'm4a';
  return 'webm';
}

function microphoneError(error) {
  if (error?.name === 'NotAllowedError') return 'The browser was not allowed to use the microphone.';
  if (error?.name === 'NotFoundError') return 'No microphone was found.';
  if (!navigator.mediaDevices) return 'Recording needs a secure page (https or localhost).';
  return `The microphone could not be used: ${error?.message || error}`;
}

// Wire a `.source` block (a file input inside a drop zone, a Record button, a clock) to
// `onClip({blob, name})`; `onError(message)` reports what went wrong.
export function audioSource(container, { onClip, onError }) {
  const input = container.querySelector('[data-role=file]');
  const drop = input.closest('.drop');
  const button = container.querySelector('[data-role=record]');
  const clock = container.querySelector('[data-role=clock]');
  let recorder = null;
  let timer = null;

  input.addEventListener('change', () => {
    const file = input.files[0];
    if (file) onClip({ blob: file, name: file.name });
  });
  drop.addEventListener('dragover', (event) => { event.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    drop.classList.remove('over');
    const file = event.dataTransfer.files[0];
    if (file) onClip({ blob: file, name: file.name });
  });

  button.addEventListener('click', async () => {
    if (recorder) {
      const done = recorder;
      recorder = null;
      clearInterval(timer);
      button.textContent = 'Record';
      button.setAttribute('aria-pressed', 'false');
      const blob = await done.stop();
      clock.textContent = `${done.seconds.toFixed(1)} s recorded`;
      onClip({ blob, name: `recording.${extensionOf(blob.type)}` });
      return;
    }
    const starting = new Recorder();
    try {
      await starting.start();
    } catch (error) {
      onError(microphoneError(error));
      return;
    }
    recorder = starting;
    button.textContent = 'Stop recording';
    button.setAttribute('aria-pressed', 'true');
    clock.textContent = '0.0 s';
    timer = setInterval(() => { clock.textContent = `${starting.seconds.toFixed(1)} s`; }, 100);
  });
}

// Show a clip in a player. MediaRecorder's WebM carries no duration, which Chrome learns
// only by seeking to the end; until then the player's bar is wrong.
export function showClip(audio, blob) {
  setObjectUrl(audio, 'src', blob);
  audio.hidden = false;
  audio.addEventListener('loadedmetadata', () => {
    if (audio.duration !== Infinity) return;
    audio.addEventListener('durationchange', () => { audio.currentTime = 0; }, { once: true });
    audio.currentTime = 1e101;
  }, { once: true });
}

export const CONTENT_TYPES = {
  mp3: 'audio/mpeg', opus: 'audio/ogg', aac: 'audio/aac', flac: 'audio/flac', wav: 'audio/wav', pcm: 'audio/pcm',
};
// Formats Media Source Extensions can play while they download (where the browser has them).
const STREAM_TYPES = { mp3: 'audio/mpeg', aac: 'audio/aac' };

export function streams(format) {
  return 'MediaSource' in window && format in STREAM_TYPES && MediaSource.isTypeSupported(STREAM_TYPES[format]);
}

function once(target, type) {
  return new Promise((resolve, reject) => {
    target.addEventListener(type, resolve, { once: true });
    target.addEventListener('error', () => reject(new Error('The browser could not play this audio.')), { once: true });
  });
}

// 16-bit little-endian mono PCM (Bragi's `pcm`) with a WAV header, so <audio> plays it.
export function pcmToWav(pcm, rate = 24000) {
  const header = new DataView(new ArrayBuffer(44));
  const text = (offset, value) => [...value].forEach((c, i) => header.setUint8(offset + i, c.charCodeAt(0)));
  text(0, 'RIFF'); header.setUint32(4, 36 + pcm.size, true); text(8, 'WAVE');
  text(12, 'fmt '); header.setUint32(16, 16, true); header.setUint16(20, 1, true); header.setUint16(22, 1, true);
  header.setUint32(24, rate, true); header.setUint32(28, rate * 2, true); header.setUint16(32, 2, true);
  header.setUint16(34, 16, true); text(36, 'data'); header.setUint32(40, pcm.size, true);
  return new Blob([header.buffer, pcm], { type: 'audio/wav' });
}

// Play a speech response in `audio`: through a MediaSource as the bytes arrive where the
// format allows, otherwise once it is complete. Calls `onFirstAudio()` when the first
// bytes arrive; resolves with the whole file as a Blob.
export async function playSpeech(response, format, audio, { onFirstAudio } = {}) {
  const parts = [];
  let first = true;
  const received = (chunk) => {
    parts.push(chunk);
    if (first) { first = false; onFirstAudio?.(); }
  };
  audio.dataset.streamed = String(streams(format));
  if (streams(format)) {
    const source = new MediaSource();
    setObjectUrl(audio, 'src', source);
    await once(source, 'sourceopen');
    const buffer = source.addSourceBuffer(STREAM_TYPES[format]);
    for await (const chunk of chunks(response)) {
      const starting = first;
      received(chunk);
      buffer.appendBuffer(chunk);
      await once(buffer, 'updateend');
      if (starting) audio.play().catch(() => {});  // a Stop before playback starts
    }
    if (source.readyState === 'open') source.endOfStream();
    return new Blob(parts, { type: CONTENT_TYPES[format] });
  }
  for await (const chunk of chunks(response)) received(chunk);
  const blob = new Blob(parts, { type: CONTENT_TYPES[format] });
  setObjectUrl(audio, 'src', format === 'pcm' ? pcmToWav(blob) : blob);
  audio.play().catch(() => {});
  return blob;
}
