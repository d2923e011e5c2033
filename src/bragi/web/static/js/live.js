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
const FINISH_MS = 5000;  // after Stop, how long the last turn's text may take
let me = null;
let session = null;
const status = () => $('#live-status');

export async function init(who) {
  me = who;
  if (!me.features?.realtime) {
    $('#live-absent').hidden = false;
    $('#live-form').querySelectorAll('select, input, button').forEach((node) => { node.disabled = true; });
    return;
  }
  $('#live-form').addEventListener('submit', (event) => { event.preventDefault(); start(); });
  $('#live-stop').addEventListener('click', () => session?.stop());
  try {
    const models = ofKind(await servedModels(), 'stt');
    $('#live-model').replaceChildren(...models.map((m) => el('option', { value: m.id }, modelLabel(m))));
  } catch (error) {
    sayError(status(), error);
  }
}

export function leave() {
  session?.stop();
}

function transcriptionSession() {
  const language = $('#live-language').value.trim();
  return {
    type: 'transcription',
    audio: {
      input: {
        format: { type: 'audio/pcm', rate: RATE },
        transcription: { model: $('#live-model').value, ...(language ? { language } : {}) },
        turn_detection: { type: 'server_vad', threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 500 },
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
  session = new LiveSession();
  try {
    await session.open();
  } catch (error) {
    sayError(status(), error);
    session?.stop();
  }
}

class LiveSession {
  constructor() {
    this.items = new Map();  // item_id ─▶ its paragraph
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
    const url = apiUrl('v1/realtime?intent=transcription');
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    this.socket = new WebSocket(url, protocols);
    this.socket.addEventListener('message', (event) => this.receive(JSON.parse(event.data)));
    this.socket.addEventListener('close', (event) => this.ended(event));
    await new Promise((resolve, reject) => {
      this.socket.addEventListener('open', resolve, { once: true });
      this.socket.addEventListener('error', () => reject(new Error('The realtime connection was refused.')), { once: true });
    });
    this.socket.send(JSON.stringify({ type: 'session.update', session: config }));
    await this.listen();
    say(status(), 'Listening: speak now.');
  }

  async listen() {
    this.stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true } });
    this.context = new AudioContext({ sampleRate: RATE });
    await this.context.audioWorklet.addModule(new URL('./pcm-worklet.js', import.meta.url));
    const node = new AudioWorkletNode(this.context, 'pcm16', { numberOfOutputs: 0 });
    node.port.onmessage = (event) => {
      if (this.socket.readyState === WebSocket.OPEN) {
        this.socket.send(JSON.stringify({ type: 'input_audio_buffer.append', audio: base64(event.data) }));
      }
    };
    this.context.createMediaStreamSource(this.stream).connect(node);
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
        say(status(), 'Hearing speech…');
        break;
      case 'conversation.item.input_audio_transcription.delta':
        this.paragraph(event.item_id).textContent += event.delta;
        break;
      case 'conversation.item.input_audio_transcription.completed': {
        const node = this.paragraph(event.item_id);
        node.textContent = event.transcript;
        node.className = 'final';
        if (this.finishing) this.close();
        else say(status(), 'Listening: speak now.');
        break;
      }
      case 'conversation.item.input_audio_transcription.failed':
      case 'error':
        if (this.finishing) { this.close(); break; }  // e.g. nothing left to commit
        say(status(), event.error?.message || 'The realtime endpoint reported an error.', 'error');
        break;
      default:
        break;
    }
  }

  // Stop the microphone, hand in what was said last, and close once its text is in.
  stop() {
    if (this.finishing || this.closed) return;
    this.finishing = true;
    this.stream?.getTracks().forEach((track) => track.stop());
    this.context?.close();
    if (this.socket?.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({ type: 'input_audio_buffer.commit' }));
      say(status(), 'Finishing the last words…');
      setTimeout(() => this.close(), FINISH_MS);
    } else {
      this.close();
    }
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) this.socket.close(1000);
    if (session === this) session = null;
    $('#live-start').disabled = false;
    $('#live-stop').disabled = true;
  }

  ended(event) {
    if (!this.finishing && !this.closed) {
      say(status(), `The realtime connection closed${event.reason ? `: ${event.reason}` : ''}.`, event.code === 1000 ? '' : 'error');
    } else if (this.closed) {
      say(status(), 'Stopped.');
    }
    this.stop();
    this.close();
  }
}
