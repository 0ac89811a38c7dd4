/**
 * DeepSeek-VL2's grounding output: `<|ref|>label<|/ref|><|det|>[[x1, y1, x2, y2], ...]<|/det|>`, boxes
 * in DeepSeek's 0–999 convention (see grounding-coords.ts). The parser is total: whatever the model
 * wrote, it returns the well-formed boxes and flags for the rest, and never throws.
 */

/** A box in DeepSeek's convention: integers (or decimals) in [0, 999], x1 <= x2, y1 <= y2. */
export type DeepseekBox = [number, number, number, number];

/**
 * Why (part of) an answer gave no box:
 * - `truncated`: a `<|ref|>` or `<|det|>` block was never closed (generation stopped early)
 * - `malformed_box`: text inside `<|det|>…<|/det|>` that is not `[[x1, y1, x2, y2], …]`
 * - `out_of_range`: a coordinate outside [0, 999]
 * - `degenerate_box`: x2 <= x1 or y2 <= y1
 * - `unlabelled`: a `<|det|>` block with no `<|ref|>` label before it (the query is used as label)
 * - `misplaced_tag`: a closing tag without its opening tag, or a block opened inside another
 * - `no_det`: the answer has no `<|det|>` block at all
 */
export type GroundingFlag = 'truncated' | 'malformed_box' | 'out_of_range' | 'degenerate_box' | 'unlabelled' | 'misplaced_tag' | 'no_det';

/** One parsed box with the label of the `<|ref|>` it belongs to (null when there was none). */
export interface ParsedBox {
  label: string | null;
  box: DeepseekBox;
}

/** Result of {@link parseGrounding}. */
export interface ParsedGrounding {
  boxes: ParsedBox[];
  /** each flag at most once, in the order first seen */
  flags: GroundingFlag[];
}

const TAG = /<\|(\/?)(ref|det)\|>/g;
const NUMBER = /^\s*-?\d+(?:\.\d+)?\s*$/;

/** `[[a, b, c, d], [e, f, g, h]]` -> boxes; anything else -> flags. */
function parseDet(content: string, label: string | null, out: ParsedBox[], flag: (f: GroundingFlag) => void): void {
  const s = content.trim();
  if (!s.startsWith('[') || !s.endsWith(']')) { flag('malformed_box'); return; }
  const inner = s.slice(1, -1);
  const groups = inner.match(/\[[^[\]]*\]/g) ?? [];
  // whatever is left between the groups must be separators
  if (inner.replace(/\[[^[\]]*\]/g, '').replace(/[\s,]/g, '') !== '' || groups.length === 0) flag('malformed_box');
  for (const g of groups) {
    const parts = g.slice(1, -1).split(',');
    if (parts.length !== 4 || !parts.every((p) => NUMBER.test(p))) { flag('malformed_box'); continue; }
    const b = parts.map(Number) as DeepseekBox;
    if (b.some((v) => v < 0 || v > 999)) { flag('out_of_range'); continue; }
    if (b[2] <= b[0] || b[3] <= b[1]) { flag('degenerate_box'); continue; }
    out.push({ label, box: b });
  }
}

/**
 * Parse every `<|ref|>…<|/ref|>` / `<|det|>…<|/det|>` pair of a decoded answer (decode it with special
 * tokens kept). Each `<|det|>` block takes the label of the closest `<|ref|>` before it that no other
 * block has taken, as DeepSeek's `parse_ref_bbox` pairs them in order. Never throws.
 */
export function parseGrounding(text: string): ParsedGrounding {
  const boxes: ParsedBox[] = [];
  const flags: GroundingFlag[] = [];
  const flag = (f: GroundingFlag): void => { if (!flags.includes(f)) flags.push(f); };
  if (typeof text !== 'string') return { boxes, flags: ['no_det'] };
  let open: { tag: 'ref' | 'det'; from: number } | null = null;
  let label: string | null = null;
  let sawDet = false;
  for (const m of text.matchAll(TAG)) {
    const closing = m[1] === '/';
    const tag = m[2] as 'ref' | 'det';
    const at = m.index;
    if (!closing) {
      if (open) flag('misplaced_tag'); // the unclosed block is dropped
      open = { tag, from: at + m[0].length };
      if (tag === 'det') sawDet = true;
      continue;
    }
    if (!open || open.tag !== tag) { flag('misplaced_tag'); open = null; continue; }
    const content = text.slice(open.from, at);
    open = null;
    if (tag === 'ref') { label = content.trim(); continue; }
    if (label === null) flag('unlabelled');
    parseDet(content, label, boxes, flag);
    label = null;
  }
  if (open) flag('truncated');
  if (!sawDet) flag('no_det');
  return { boxes, flags };
}
