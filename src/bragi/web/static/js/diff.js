// Word differences between two transcripts, as a speech-recognition scorer counts them:
// the fewest substitutions, deletions and insertions (word error rate) on lower-cased
// words without punctuation; the words are shown as they were written.

const normal = (word) => word.toLowerCase().replace(/[^\p{L}\p{N}']+/gu, '');

export const words = (text) => text.split(/\s+/).filter((word) => normal(word));

// [{op: 'same'|'del'|'ins', word}] turning `reference` into `hypothesis`, and the WER.
export function wordDiff(reference, hypothesis) {
  const a = words(reference);
  const b = words(hypothesis);
  const na = a.map(normal);
  const nb = b.map(normal);
  const cost = Array.from({ length: a.length + 1 }, () => new Uint32Array(b.length + 1));
  for (let i = 0; i <= a.length; i++) cost[i][0] = i;
  for (let j = 0; j <= b.length; j++) cost[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const same = na[i - 1] === nb[j - 1] ? 0 : 1;
      cost[i][j] = Math.min(cost[i - 1][j - 1] + same, cost[i - 1][j] + 1, cost[i][j - 1] + 1);
    }
  }
  const ops = [];
  let i = a.length;
  let j = b.length;
  while (i > 0 || j > 0) {
    if (i > 0 && j > 0 && cost[i][j] === cost[i - 1][j - 1] + (na[i - 1] === nb[j - 1] ? 0 : 1)) {
      if (na[i - 1] === nb[j - 1]) ops.push({ op: 'same', word: b[j - 1] });
      else ops.push({ op: 'ins', word: b[j - 1] }, { op: 'del', word: a[i - 1] });
      i--; j--;
    } else if (i > 0 && cost[i][j] === cost[i - 1][j] + 1) {
      ops.push({ op: 'del', word: a[i - 1] });
      i--;
    } else {
      ops.push({ op: 'ins', word: b[j - 1] });
      j--;
    }
  }
  ops.reverse();
  const errors = cost[a.length][b.length];
  return { ops, errors, wer: a.length ? errors / a.length : (b.length ? 1 : 0) };
}
