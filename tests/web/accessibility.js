// Accessibility checks the browser tests run inside the page (an object of functions).
({
  // Every visible text with its contrast ratio against the first opaque background
  // behind it (WCAG 2 relative luminance). Disabled controls are exempt, as in WCAG.
  contrast() {
    const channel = (c) => {
      const v = c / 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    };
    const parse = (color) => color.match(/[\d.]+/g).map(Number);
    const luminance = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
    const behind = (node) => {
      for (let n = node; n; n = n.parentElement) {
        const rgba = parse(getComputedStyle(n).backgroundColor);
        if (rgba.length < 4 || rgba[3] > 0.5) return rgba;
      }
      return parse(getComputedStyle(document.documentElement).backgroundColor);
    };
    const found = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let text = walker.nextNode(); text; text = walker.nextNode()) {
      const node = text.parentElement;
      if (!text.textContent.trim() || !node.checkVisibility()) continue;
      if (node.closest(':disabled, .sr-only')) continue;
      const a = luminance(parse(getComputedStyle(node).color));
      const b = luminance(behind(node));
      const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      found.push([`${node.tagName}.${node.className} ${text.textContent.trim().slice(0, 20)}`, ratio]);
    }
    return found;
  },

  // Visible controls that nothing names (no label, no aria-label, no text).
  unlabelled() {
    return [...document.querySelectorAll('input, select, textarea, button')]
      .filter((c) => c.checkVisibility())
      .filter((c) => !(c.labels?.length || c.getAttribute('aria-label') || c.textContent.trim()))
      .map((c) => c.id || c.outerHTML.slice(0, 60));
  },

  // What results look like (a lit word, differences, messages), added to the Transcribe
  // tab so that their colours are checked too.
  addSamples() {
    const sample = document.createElement('p');
    sample.className = 'transcript';
    const pieces = [['span', 'w now', 'now'], ['span', 'w', 'word'], ['ins', '', 'added'], ['del', '', 'lost'],
      ['span', 'status error', 'refused'], ['span', 'status ok', 'done'], ['span', 'meta', '1 s']];
    for (const [tag, className, text] of pieces) {
      const node = document.createElement(tag);
      node.className = className;
      node.textContent = text;
      sample.append(node, ' ');
    }
    document.querySelector('#tr-form').append(sample);
  },
})
