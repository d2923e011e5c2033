// Talking to Bragi's API. The key travels only in the Authorization header; every error
// arrives in OpenAI's shape ({"error": {message, type, param, code}}) and becomes ApiError.
// Paths are relative to the page, so the page also works behind a proxy's sub-path.

export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `The server answered ${status}.`);
    this.name = 'ApiError';
    this.status = status;
    this.code = error?.code ?? null;
    this.param = error?.param ?? null;
  }
}

let apiKey = null;
const unauthorizedListeners = new Set();

export function setKey(key) { apiKey = key || null; }

// Called with the ApiError whenever any request is refused with 401 (a revoked key).
export function onUnauthorized(listener) { unauthorizedListeners.add(listener); }

export function apiUrl(path) { return new URL(path, document.baseURI); }

export async function request(path, { method = 'GET', json, form, signal, key } = {}) {
  const headers = {};
  const useKey = key === undefined ? apiKey : key;
  if (useKey) headers.Authorization = `Bearer ${useKey}`;
  let body;
  if (json !== undefined) {
    body = JSON.stringify(json);
    headers['Content-Type'] = 'application/json';
  } else if (form) {
    body = form;
  }
  let response;
  try {
    response = await fetch(apiUrl(path), { method, headers, body, signal, cache: 'no-store' });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, { message: 'The server cannot be reached. Is bragi serve running?' });
  }
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401 && key === undefined) unauthorizedListeners.forEach((f) => f(error));
    throw error;
  }
  return response;
}

async function errorOf(response) {
  let body = null;
  try { body = await response.json(); } catch { /* not JSON: keep the status */ }
  return new ApiError(response.status, body?.error);
}

export async function getJSON(path, options) {
  return (await request(path, options)).json();
}

// The chunks of a response body as they arrive.
export async function* chunks(response) {
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

async function* textLines(response) {
  const decoder = new TextDecoder();
  let pending = '';
  for await (const chunk of chunks(response)) {
    pending += decoder.decode(chunk, { stream: true });
    const lines = pending.split(/\r\n|\r|\n/);
    pending = lines.pop();
    yield* lines;
  }
  pending += decoder.decode();
  if (pending) yield pending;
}

// Newline-delimited JSON (the admin pull's progress).
export async function* jsonLines(response) {
  for await (const line of textLines(response)) {
    if (line.trim()) yield JSON.parse(line);
  }
}

// Server-sent events whose data lines are JSON; an event with "error" throws.
export async function* serverEvents(response) {
  let data = [];
  for await (const line of textLines(response)) {
    if (line === '') {
      if (data.length) {
        const event = JSON.parse(data.join('\n'));
        data = [];
        if (event.error) throw new ApiError(response.status, event.error);
        yield event;
      }
    } else if (line.startsWith('data:')) {
      data.push(line.slice(5).trimStart());
    }
  }
}
