import { KestrelError } from '../errors.js';

/**
 * Pick the tiling canvas for an image, exactly as DeepSeek-VL2's (and LLaVA-NeXT's)
 * `select_best_resolution`: for each candidate `[w, h]`, scale the image to fit
 * (`scale = min(w / W, h / H)`), effective pixels `min(int(W*scale) * int(H*scale), W*H)`, waste
 * `w*h - effective`; keep the first candidate with the most effective pixels, ties going to less waste.
 *
 * @param size the image size as `[width, height]`
 * @param candidates candidate canvases as `[width, height]` pairs (config `candidate_resolutions`)
 * @returns the chosen `[width, height]`
 */
export function selectBestResolution(size: readonly [number, number], candidates: ReadonlyArray<readonly [number, number]>): [number, number] {
  const [ow, oh] = size;
  if (!(ow > 0 && oh > 0)) throw new KestrelError('E_OPTIONS', `image size must be positive, got ${ow}x${oh}`);
  if (candidates.length === 0) throw new KestrelError('E_OPTIONS', 'candidate_resolutions is empty');
  let best: [number, number] | undefined;
  let maxEff = 0;
  let minWaste = Infinity;
  for (const [w, h] of candidates) {
    if (!(w > 0 && h > 0)) throw new KestrelError('E_OPTIONS', `candidate resolution must be positive, got ${w}x${h}`);
    const scale = Math.min(w / ow, h / oh);
    const eff = Math.min(Math.trunc(ow * scale) * Math.trunc(oh * scale), ow * oh);
    const waste = w * h - eff;
    if (eff > maxEff || (eff === maxEff && waste < minWaste)) {
      maxEff = eff;
      minWaste = waste;
      best = [w, h];
    }
  }
  // Only reachable when every candidate scales the image to zero pixels (Python returns None there).
  if (!best) throw new KestrelError('E_OPTIONS', `no candidate resolution can hold a ${ow}x${oh} image`);
  return best;
}
