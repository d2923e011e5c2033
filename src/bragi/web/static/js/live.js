// Live: the microphone through Bragi's realtime endpoint (OpenAI's Realtime API in
// transcription mode), partial text as it is heard and final text per turn.
//
// The socket never sees the API key: the page asks POST /v1/realtime/client_secrets for
// a short-lived key and offers it as the `openai-insecure-api-key.<key>` subprotocol,
// as OpenAI's browser clients do (browsers cannot set headers on a WebSocket).

import { apiUrl, getJSON } from './api.js';
import { modelLabel, ofKind, servedModels } from './service.js';
import { $, el, say, sayError } from './ui.js';

const RATE = 24000;
const SECRET_SECONDS = 600;
const FINISH_MS = 20000;  // after Stop, the longest the last turns' text may take
const HINTS = {
  stream: 'Text appears while you speak; each turn ends at a pause.',
  redecode: 'Text appears while you speak (heard again about every half second); each turn ends at a pause.',
  none: 'This model gives no text while you speak: each turn’s text comes after the pause that ends it.',
};
let me = null;
let models = [];
let session = null;
const status = () => $('#live-status');
// connecting, listening, finishing, stopped: for styles and tests
const setState = (state) => { $('#live').dataset.state = state; };

export async function init(who) {
  me = who;
  if (!me.features?.realtime) {
    $('#live-absent').hidden = false;
    $('#live-form').querySelectorAll('select, input, button').forEach((node) => { node.disabled = true; });
    return;
  }
  $('#live-form').addEventListener('submit', (event) => { event.preventDefault(); start(); });
  $('#live-stop').addEventListener('click', () => session?.stop());
  $('#live-model').addEventListener('change', hint);
  try {
    models = ofKind(await servedModels(), 'stt');
    $('#live-model').replaceChildren(...models.map((m) => el('option', { value: m.id }, modelLabel(m))));
    hint();
  } catch (error) {
    sayError(status(), error);
  }
}

export function leave() {
  session?.stop();
}

function hint() {
  const model = models.find((m) => m.id === $('#live-model').value);
  $('#live-hint').textContent = HINTS[model?.realtime_partials] || '';
}

function transcriptionSession() {
  const language = $('#live-language').value.trim();
  return {
    type: 'transcription',
    audio: {
      input: {
        format: { type: 'audio/pcm', rate: RATE },
        transcription: { model: $('#live-model').value, ...(language ? { language } : {}) },
        turn_detection: { type: 'server_vad', threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: Number($('#live-pause').value) },
      },
    },
  };
}

function base64(buffer) {
  const bytes = new Uint8Array(buffer);
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

async function start() {
  if (session) return;
  $('#live-start').disabled = true;
  $('#live-stop').disabled = false;
  say(status(), 'Connecting…');
  setState('connecting');
  session = new LiveSession();
  try {
    await session.open();
  } catch (error) {
    sayError(status(), error);
    session?.close();
  }
}

class LiveSession {
  constructor() {
    this.items = new Map();  // item_id ─▶ its paragraph
    this.pending = new Set();  // turns handed in whose final text has not come yet
    this.speaking = null;  // the turn the server hears now (it said speech_started)
    this.manual = false;  // no turn detection on the server: Stop hands everything in
    this.closed = false;
  }

  async open() {
    const config = transcriptionSession();
    const protocols = ['realtime'];
    if (me.auth) {
      const secret = await getJSON('v1/realtime/client_secrets', {
        method: 'POST',
        json: { expires_after: { anchor: 'created_at', seconds: SECRET_SECONDS }, session: config },
      });
      protocols.push(`openai-insecure-api-key.${secret.value}`);
    }
    if (this.closed) return;  // stopped while asking for the key
    const url = apiUrl('v1/realtime?intent=transcription');
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    this.socket = new WebSocket(url, protocols);
    this.socket.addEventListener('message', (event) => this.receive(JSON.parse(event.data)));
    this.socket.addEventListener('close', (event) => this.ended(event));
    await new Promise((resolve, reject) => {
      this.socket.addEventListener('open', resolve, { once: true });
      this.socket.addEventListener('error', () => reject(new Error('The realtime connection was refused.')), { once: true });
    });
    if (this.closed) { this.socket.close(1000); return; }
    this.socket.send(JSON.stringify({ type: 'session.update', session: config }));
    await this.listen();
    if (!this.closed && !this.finishing) {
      say(status(), this.listening());
      setState('listening');
    }
  }

  listening() {
    return this.manual ? 'Listening: press Stop for the text (this server does not detect pauses).' : 'Listening: speak now.';
  }

  async listen() {
    this.stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true } });
    if (this.finishing) { this.release(); return; }  // stopped while the browser asked
    this.context = new AudioContext({ sampleRate: RATE });
    await this.context.audioWorklet.addModule(new URL('./pcm-worklet.js', import.meta.url));
    if (this.finishing) { this.release(); return; }
    this.node = new AudioWorkletNode(this.context, 'pcm16', { numberOfOutputs: 0 });
    this.node.port.onmessage = (event) => {
      if (this.socket.readyState === WebSocket.OPEN) {
        this.socket.send(JSON.stringify({ type: 'input_audio_buffer.append', audio: base64(event.data) }));
      }
    };
    this.context.createMediaStreamSource(this.stream).connect(this.node);
  }

  paragraph(itemId) {
    if (!this.items.has(itemId)) {
      const node = el('p', { class: 'partial', dataset: { item: itemId } });
      this.items.set(itemId, node);
      $('#live-text').append(node);
    }
    return this.items.get(itemId);
  }

  receive(event) {
    switch (event.type) {
      case 'input_audio_buffer.speech_started':
        this.speaking = event.item_id;
        if (!this.finishing) say(status(), 'Hearing speech…');
        break;
      case 'input_audio_buffer.committed':
        this.pending.add(event.item_id);
        if (this.speaking === event.item_id) this.speaking = null;
        break;
      case 'conversation.item.input_audio_transcription.delta':
        this.paragraph(event.item_id).textContent += event.delta;
        break;
      case 'conversation.item.input_audio_transcription.completed': {
        this.pending.delete(event.item_id);
        const text = event.transcript.trim();
        if (text) {
          const node = this.paragraph(event.item_id);
          node.textContent = text;
          node.className = 'final';
        } else {
          this.items.get(event.item_id)?.remove();  // a turn of noise, no words
        }
        if (!this.finishing) say(status(), this.listening());
        this.settle();
        break;
      }
      case 'conversation.item.input_audio_transcription.failed':
        this.pending.delete(event.item_id);
        say(status(), event.error?.message || 'A turn could not be transcribed.', 'error');
        this.settle();
        break;
      case 'error':
        if (event.error?.param?.includes('turn_detection')) {
          this.manual = true;  // the server has no VAD: the session goes on without it
          say(status(), this.listening());
        } else if (this.finishing) {
          this.speaking = null;  // the last turn was refused (e.g. too short): no text comes
          this.settle();
        } else {
          say(status(), event.error?.message || 'The realtime endpoint reported an error.', 'error');
        }
        break;
      default:
        break;
    }
  }

  // Once stopping, close when every turn handed in has its text.
  settle() {
    if (this.finishing && !this.pending.size && !this.speaking) this.close();
  }

  // Stop the microphone, hand in the turn still being spoken, close once its text is in.
  stop() {
    if (this.finishing || this.closed) return;
    this.finishing = true;
    setState('finishing');
    this.release();
    if (this.socket?.readyState !== WebSocket.OPEN) {
      this.close();
      return;
    }
    say(status(), 'Finishing the last words…');
    this.timer = setTimeout(() => this.close(), FINISH_MS);
    if (this.speaking || this.manual) {
      this.socket.send(JSON.stringify({ type: 'input_audio_buffer.commit' }));
    } else {
      this.settle();
    }
  }

  // The microphone off; nothing more is sent.
  release() {
    if (this.node) this.node.port.onmessage = null;
    this.stream?.getTracks().forEach((track) => track.stop());
    this.context?.close().catch(() => {});
    this.context = null;
  }

  // An error already on the status line stays there.
  close(message = 'Stopped.', kind = '') {
    if (this.closed) return;
    this.closed = true;
    this.finishing = true;
    clearTimeout(this.timer);
    this.release();
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) this.socket.close(1000);
    if (session === this) session = null;
    $('#live-start').disabled = false;
    $('#live-stop').disabled = true;
    setState('stopped');
    if (status().className !== 'status error') say(status(), message, kind);
  }

  ended(event) {
    const reason = event.reason ? `: ${event.reason}` : '';
    this.close(`The realtime connection closed${reason}.`, event.code === 1000 ? '' : 'error');
  }
}
