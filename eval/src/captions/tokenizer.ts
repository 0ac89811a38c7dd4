/**
 * A pure-TypeScript stand-in for pycocoevalcap's `PTBTokenizer`, which runs Stanford's
 * `PTBTokenizer -preserveLines -lowerCase` (Java) and then drops punctuation tokens.
 *
 * For the text COCO captions are made of (letters, spaces, `.`, `,`, `'s`, in-word hyphens) the rules
 * are exactly the ones the golden set documents: lower-case, split on whitespace, split trailing
 * `. , ! ? ; :` off words, split a trailing `'s` clitic, keep hyphenated words whole, drop the
 * punctuation tokens, join with single spaces. Beyond that alphabet it follows PTB conventions as far
 * as they are known without the jar: the other clitics (`n't 're 've 'll 'd 'm`), `cannot`,
 * `gonna`/`wanna`/`gotta`, quotes, brackets, ellipses and dashes split off (and then dropped), `%`
 * split off numbers and `$`/`#` split off what follows. Not reproduced: CoreNLP's abbreviation list
 * (it keeps `mr.` whole; here the period is split off and dropped) and `americanize`.
 */

/** Tokens pycocoevalcap removes after PTB tokenization (its `PUNCTUATIONS` list). */
export const PTB_PUNCTUATION: readonly string[] = [
  "''", "'", '``', '`', '-LRB-', '-RRB-', '-LCB-', '-RCB-', '.', '?', '!', ',', ':', '-', '--', '...', ';',
];
const DROP = new Set(PTB_PUNCTUATION);

// Characters PTB splits off the front of a word: quotes and opening brackets.
const LEADING = new Set(['"', '`', "'", '(', '[', '{']);
// Characters split off the end of a word (repeatedly): sentence punctuation, closing brackets, quotes.
const TRAILING = new Set(['.', ',', '!', '?', ';', ':', '"', ')', ']', '}']);
// Brackets become PTB's escaped forms. pycocoevalcap drops -LRB- -RRB- -LCB- -RCB- but not the
// square-bracket forms, which survive as (lower-cased) tokens.
const BRACKET: Record<string, string> = { '(': '-LRB-', ')': '-RRB-', '[': '-lsb-', ']': '-rsb-', '{': '-LCB-', '}': '-RCB-' };
// Clitics PTB separates at the end of a word (longest first so `'ll` wins over `'l`...).
const CLITICS = ["n't", "'ll", "'re", "'ve", "'s", "'d", "'m"];
// Whole words PTB splits in two.
const SPLIT_WORDS: Record<string, [string, string]> = {
  cannot: ['can', 'not'], gonna: ['gon', 'na'], wanna: ['wan', 'na'], gotta: ['got', 'ta'],
};

function quoteToken(c: string, opening: boolean): string {
  if (c === '"') return opening ? '``' : "''";
  return BRACKET[c] ?? c;
}

/** Split one whitespace-delimited chunk into PTB-style tokens (before punctuation removal). */
function splitChunk(chunk: string): string[] {
  const front: string[] = [];
  const back: string[] = [];
  let w = chunk;
  // Peel leading quotes/brackets. A leading apostrophe that starts a clitic (`'s`) stays.
  while (w.length > 0 && (LEADING.has(w[0]!) || (w.startsWith('...') && w.length > 3))) {
    if (w.startsWith('...')) { front.push('...'); w = w.slice(3); continue; }
    if (w[0] === "'" && CLITICS.includes(w)) break;
    if (w.startsWith('``')) { front.push('``'); w = w.slice(2); continue; }
    front.push(w[0] === "'" ? '`' : quoteToken(w[0]!, true));
    w = w.slice(1);
  }
  // Peel trailing punctuation, ellipses, dashes and closing quotes, innermost last.
  for (;;) {
    if (w.length === 0) break;
    if (w.endsWith('...')) { back.unshift('...'); w = w.slice(0, -3); continue; }
    if (w.endsWith('--') && w.length > 2) { back.unshift('--'); w = w.slice(0, -2); continue; }
    if (w.endsWith("''") && w.length > 2) { back.unshift("''"); w = w.slice(0, -2); continue; }
    const c = w[w.length - 1]!;
    if (TRAILING.has(c) && w.length > 1) { back.unshift(quoteToken(c, false)); w = w.slice(0, -1); continue; }
    // A closing apostrophe (`dogs'`) is a quote/possessive token, not part of the word.
    if (c === "'" && w.length > 1) { back.unshift("'"); w = w.slice(0, -1); continue; }
    break;
  }
  const mid: string[] = [];
  if (w.length > 0) {
    if (TRAILING.has(w) || w === "'") mid.push(quoteToken(w, false));
    else if (SPLIT_WORDS[w]) mid.push(...SPLIT_WORDS[w]!);
    else {
      // Currency / hash signs split off what follows; percent splits off a number.
      let pre: string | undefined;
      if ((w[0] === '$' || w[0] === '#') && w.length > 1) { pre = w[0]; w = w.slice(1); }
      let post: string | undefined;
      if (w.length > 1 && w.endsWith('%') && /\d%$/.test(w)) { post = '%'; w = w.slice(0, -1); }
      let clitic: string | undefined;
      for (const c of CLITICS) {
        if (w.length > c.length && w.endsWith(c)) { clitic = c; w = w.slice(0, -c.length); break; }
      }
      if (pre) mid.push(pre);
      mid.push(w);
      if (clitic) mid.push(clitic);
      if (post) mid.push(post);
    }
  }
  return [...front, ...mid, ...back];
}

/**
 * PTB-tokenize one caption the way pycocoevalcap prepares it for scoring: lower-cased tokens,
 * punctuation tokens removed. Returns the tokens.
 */
export function ptbTokens(caption: string): string[] {
  // pycocoevalcap replaces newlines with spaces before tokenizing; PTB splits on any whitespace.
  const text = caption
    .replace(/[\u2018\u2019\u201a\u201b]/g, "'")
    .replace(/[\u201c\u201d\u201e\u201f]/g, '"')
    .replace(/\u2026/g, '...')
    .replace(/[\u2013\u2014]/g, ' -- ')
    .toLowerCase();
  const out: string[] = [];
  for (const chunk of text.split(/\s+/)) {
    if (chunk.length === 0) continue;
    for (const t of splitChunk(chunk)) if (!DROP.has(t)) out.push(t);
  }
  return out;
}

/**
 * PTB-tokenize one caption into the single-space-joined string pycocoevalcap's scorers receive
 * (`''` when nothing but punctuation was given).
 */
export function ptbTokenize(caption: string): string {
  return ptbTokens(caption).join(' ');
}
