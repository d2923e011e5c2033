// Transcript downloads, written as Bragi's server writes them (bragi/transcripts.py).

const pad = (value, width = 2) => String(value).padStart(width, '0');

function stamp(seconds, separator) {
  let millis = Math.max(0, Math.round(seconds * 1000));
  const hours = Math.floor(millis / 3_600_000);
  millis -= hours * 3_600_000;
  const minutes = Math.floor(millis / 60_000);
  millis -= minutes * 60_000;
  const secs = Math.floor(millis / 1000);
  millis -= secs * 1000;
  return `${pad(hours)}:${pad(minutes)}:${pad(secs)}${separator}${pad(millis, 3)}`;
}

// A blank line ends a cue and "-->" starts a timing line, so neither may be in the text.
function cueText(text) {
  return text.trim().split(/\r\n|\r|\n/).map((line) => line.trim()).filter(Boolean).join('\n').replaceAll('-->', '->');
}

function cues(segments, separator) {
  const found = [];
  for (const segment of segments) {
    const text = cueText(segment.text);
    if (!text) continue;
    const end = Math.max(segment.end, segment.start);
    found.push(`${stamp(segment.start, separator)} --> ${stamp(end, separator)}\n${text}\n`);
  }
  return found;
}

export const toSrt = (segments) => cues(segments, ',').map((cue, i) => `${i + 1}\n${cue}`).join('\n');
export const toVtt = (segments) => ['WEBVTT\n', ...cues(segments, '.')].join('\n');
export const toText = (transcript) => `${transcript.text}\n`;
