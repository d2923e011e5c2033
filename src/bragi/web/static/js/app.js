// The page's start: the API key, what it may do (GET /v1/me), the tabs, the theme.
//
// The key is kept in localStorage ("Remember on this browser") or, unticked, in
// sessionStorage (gone when the tab closes). Only this server's own scripts can read
// it: the page loads nothing from elsewhere and its Content-Security-Policy forbids it.

import { getJSON, onUnauthorized, setKey } from './api.js';
import { $, say } from './ui.js';
import * as clone from './clone.js';
import * as compare from './compare.js';
import * as live from './live.js';
import * as manage from './manage.js';
import * as speak from './speak.js';
import * as transcribe from './transcribe.js';

const KEY = 'bragi.key';
const THEME = 'bragi.theme';
const TABS = { transcribe, live, speak, clone, compare, models: manage };
const started = new Set();
let me = null;

const storedKey = () => localStorage.getItem(KEY) || sessionStorage.getItem(KEY);

function forgetKey() {
  localStorage.removeItem(KEY);
  sessionStorage.removeItem(KEY);
}

function storeKey(key, remember) {
  forgetKey();
  (remember ? localStorage : sessionStorage).setItem(KEY, key);
}

function askForKey(message) {
  $('#tabs').hidden = true;
  document.querySelectorAll('[role=tabpanel]').forEach((panel) => { panel.hidden = true; });
  $('#boot').hidden = true;
  $('#forget-key').hidden = true;
  $('#who').textContent = '';
  $('#key-panel').hidden = false;
  $('#key-error').textContent = message || '';
  $('#key-input').focus();
}

async function submitKey(event) {
  event.preventDefault();
  const key = $('#key-input').value.trim();
  if (!key) return;
  $('#key-error').textContent = 'Checking the key…';
  try {
    const answer = await getJSON('v1/me', { key });
    storeKey(key, $('#key-remember').checked);
    $('#key-input').value = '';
    if (me) { window.location.reload(); return; }  // another key: start afresh
    setKey(key);
    begin(answer);
  } catch (error) {
    $('#key-error').textContent = error.status === 401
      ? `The server refused this key: ${error.message}`
      : error.message;
  }
}

function describe(answer) {
  if (!answer.auth) return 'Authentication is off on this server: anyone who can reach it may use it.';
  const role = answer.admin ? 'an admin key' : 'a user key (no model administration)';
  return `Signed in with “${answer.key.name}”, ${role}.`;
}

function begin(answer) {
  me = answer;
  $('#key-panel').hidden = true;
  $('#boot').hidden = true;
  $('#tabs').hidden = false;
  $('#tab-models').hidden = !me.admin;
  $('#forget-key').hidden = !me.auth;
  $('#who').textContent = describe(me);
  const wanted = window.location.hash.slice(1);
  select(wanted in TABS && (wanted !== 'models' || me.admin) ? wanted : 'transcribe', false);
}

function tabs() {
  return [...document.querySelectorAll('[role=tab]')].filter((tab) => !tab.hidden);
}

async function select(name, focus = true) {
  for (const tab of document.querySelectorAll('[role=tab]')) {
    const chosen = tab.getAttribute('aria-controls') === name;
    tab.setAttribute('aria-selected', String(chosen));
    tab.tabIndex = chosen ? 0 : -1;
    $(`#${tab.getAttribute('aria-controls')}`).hidden = !chosen;
    if (chosen && focus) tab.focus();
  }
  if (window.location.hash.slice(1) !== name) history.replaceState(null, '', `#${name}`);
  const module = TABS[name];
  try {
    if (!started.has(name)) {
      started.add(name);
      await module.init(me);
    } else {
      await module.shown?.();
    }
  } finally {
    // The tab is usable: the tests wait for this, the benchmark times the first one.
    if (!document.body.dataset.ready) performance.mark('bragi-interactive');
    document.body.dataset.ready = name;
  }
  Object.entries(TABS).forEach(([other, tab]) => { if (other !== name) tab.leave?.(); });
}

function keyboard(event) {
  const list = tabs();
  const index = list.indexOf(event.target);
  const moves = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: list.length - 1 };
  if (!(event.key in moves)) return;
  event.preventDefault();
  const next = list[(moves[event.key] + list.length) % list.length];
  select(next.getAttribute('aria-controls'));
}

function applyTheme(theme) {
  if (theme === 'auto') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  const button = $('#theme');
  button.textContent = `Theme: ${theme}`;
  button.setAttribute('aria-label', `Colour theme: ${theme === 'auto' ? 'automatic' : theme}. Change it`);
}

function themes() {
  const order = ['auto', 'light', 'dark'];
  let theme = localStorage.getItem(THEME) || 'auto';
  applyTheme(theme);
  $('#theme').addEventListener('click', () => {
    theme = order[(order.indexOf(theme) + 1) % order.length];
    localStorage.setItem(THEME, theme);
    applyTheme(theme);
  });
}

async function boot() {
  themes();
  $('#key-form').addEventListener('submit', submitKey);
  $('#forget-key').addEventListener('click', () => { forgetKey(); askForKey(''); });
  $('#tabs').addEventListener('click', (event) => {
    const tab = event.target.closest('[role=tab]');
    if (tab) select(tab.getAttribute('aria-controls'));
  });
  $('#tabs').addEventListener('keydown', keyboard);
  onUnauthorized((error) => askForKey(`The server no longer accepts this key: ${error.message}`));
  const key = storedKey();
  // The page says whether this server asks for keys, so no refused request is needed to find out.
  if (!key && $('meta[name=bragi-auth]').content === 'enabled') {
    askForKey('');
    return;
  }
  try {
    const answer = await getJSON('v1/me', { key });
    setKey(key);
    begin(answer);
  } catch (error) {
    if (error.status === 401) {
      if (key) forgetKey();
      askForKey(key ? `The saved key was refused: ${error.message}` : '');
    } else {
      say($('#boot'), `The page could not start: ${error.message}`, 'error');
    }
  }
}

boot();
