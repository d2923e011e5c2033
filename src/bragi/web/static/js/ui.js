// Small DOM helpers. Text from the server only ever goes in as text, never as HTML.

export const $ = (selector, root = document) => root.querySelector(selector);

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name === 'dataset') Object.assign(node.dataset, value);
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, '');
    else node.setAttribute(name, String(value));
  }
  node.append(...children.flat().filter((child) => child !== null && child !== undefined));
  return node;
}

// A status line: kind is '', 'ok' or 'error'.
export function say(node, text, kind = '') {
  node.textContent = text;
  node.className = `status ${kind}`.trim();
  if (kind === 'error') node.setAttribute('role', 'alert');
  else node.setAttribute('role', 'status');
}

export function sayError(node, error) {
  if (error?.name === 'AbortError') return say(node, 'Stopped.');
  say(node, error?.message || String(error), 'error');
}

export function seconds(value) {
  if (value === null || value === undefined) return '–';
  const minutes = Math.floor(value / 60);
  const rest = (value - minutes * 60).toFixed(2).padStart(5, '0');
  return minutes ? `${minutes}:${rest}` : `${Number(value).toFixed(2)} s`;
}

// A span of time as people say it: "45 s", "5 min", "1 h 30 min".
export function duration(value) {
  const total = Math.round(value);
  if (total < 60) return `${total} s`;
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = total % 60;
  if (hours) return minutes ? `${hours} h ${minutes} min` : `${hours} h`;
  return secs ? `${minutes} min ${secs} s` : `${minutes} min`;
}

export function milliseconds(value) {
  return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${Math.round(value)} ms`;
}

export function megabytes(bytes) {
  if (bytes === null || bytes === undefined) return '–';
  return `${(bytes / 1048576).toFixed(bytes < 10485760 ? 1 : 0)} MB`;
}

// Fill a <select> with [value, label] pairs, keeping the chosen value when it is still there.
export function fillSelect(select, options, preferred) {
  const keep = preferred ?? select.value;
  select.replaceChildren(...options.map(([value, label, group]) => {
    const option = el('option', { value }, label ?? value);
    if (group) option.dataset.group = group;
    return option;
  }));
  if (options.some(([value]) => value === keep)) select.value = keep;
}

// Offer a Blob as a file download.
export function download(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = el('a', { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

// Replace an element's object URL, releasing the previous one.
export function setObjectUrl(node, attribute, blobOrSource) {
  const previous = node.dataset.objectUrl;
  if (previous) URL.revokeObjectURL(previous);
  const url = URL.createObjectURL(blobOrSource);
  node.dataset.objectUrl = url;
  node.setAttribute(attribute, url);
  return url;
}

export function elapsed(since) { return performance.now() - since; }
