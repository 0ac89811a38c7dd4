/**
 * Run-length encoded binary masks with the exact semantics of the COCO mask API (cocoapi
 * `common/maskApi.c`). Counts are column-major (Fortran order) run lengths that start with a run of
 * zeros. Counts are kept as unsigned 32-bit integers, as in the C code, so wrap-around behaves the
 * same on corrupt input.
 */
import { KestrelError } from '@kestrel/core';

/** An RLE in memory: height, width and uint32 run lengths. */
export interface Rle {
  h: number;
  w: number;
  cnts: Uint32Array;
}

/** Upper bound on the upsampled polygon boundary (memory guard; ~100 bytes per point of work arrays). */
const MAX_POLY_POINTS = 50_000_000;

/** Encode one column-major 0/1 mask of `h*w` bytes. Any non-zero byte value differing from the previous one starts a run, as in C. */
export function rleEncode(colMajor: ArrayLike<number>, h: number, w: number): Rle {
  const a = h * w;
  const cnts = new Uint32Array(a + 1);
  let k = 0;
  let p = 0;
  let c = 0;
  for (let j = 0; j < a; j++) {
    const v = colMajor[j]!;
    if (v !== p) { cnts[k++] = c; c = 0; p = v; }
    c++;
  }
  cnts[k++] = c;
  return { h, w, cnts: cnts.slice(0, k) };
}

/** Decode into a column-major Uint8Array of `h*w` (runs beyond h*w are clipped). */
export function rleDecode(R: Rle): Uint8Array {
  const a = R.h * R.w;
  if (a > 2 ** 31) throw new KestrelError('E_COCO_FORMAT', `RLE size ${R.h}x${R.w} is too large to decode into memory`);
  const out = new Uint8Array(a);
  let pos = 0;
  let v = 0;
  for (let j = 0; j < R.cnts.length; j++) {
    const n = R.cnts[j]!;
    const end = Math.min(a, pos + n);
    if (v) out.fill(1, pos, end);
    pos += n;
    v = v ? 0 : 1;
  }
  return out;
}

/** Union (or intersection) of RLEs of equal size. Mismatched sizes give an empty 0x0 RLE, as in C. */
export function rleMerge(Rs: readonly Rle[], intersect: boolean): Rle {
  const n = Rs.length;
  if (n === 0) return { h: 0, w: 0, cnts: new Uint32Array(0) };
  let h = Rs[0]!.h;
  let w = Rs[0]!.w;
  if (n === 1) return { h, w, cnts: Rs[0]!.cnts.slice() };
  let cur: Uint32Array = Rs[0]!.cnts.slice();
  for (let i = 1; i < n; i++) {
    const B = Rs[i]!;
    if (B.h !== h || B.w !== w) { h = 0; w = 0; cur = new Uint32Array(0); break; }
    const A = cur;
    const out: number[] = [];
    // Empty count arrays read cnts[0] out of bounds in C; treat as 0.
    let ca = A.length ? A[0]! : 0;
    let cb = B.cnts.length ? B.cnts[0]! : 0;
    let v = 0, va = 0, vb = 0, a = 1, b = 1, cc = 0, ct = 1;
    while (ct > 0) {
      const c = Math.min(ca, cb);
      cc += c; ct = 0;
      ca -= c; if (!ca && a < A.length) { ca = A[a++]!; va = va ? 0 : 1; } ct += ca;
      cb -= c; if (!cb && b < B.cnts.length) { cb = B.cnts[b++]!; vb = vb ? 0 : 1; } ct += cb;
      // Counts that do not add up to h*w would loop forever in C; stop when one side has run out.
      if (ct > 0 && ((ca === 0 && a >= A.length) || (cb === 0 && b >= B.cnts.length))) { out.push(cc); break; }
      const vp = v;
      v = intersect ? (va && vb ? 1 : 0) : (va || vb ? 1 : 0);
      if (v !== vp || ct === 0) { out.push(cc); cc = 0; }
    }
    cur = Uint32Array.from(out);
  }
  return { h, w, cnts: cur };
}

/** Foreground pixel count (sum of odd-indexed runs, uint32 as in C). */
export function rleArea(R: Rle): number {
  let a = 0;
  for (let j = 1; j < R.cnts.length; j += 2) a = (a + R.cnts[j]!) >>> 0;
  return a;
}

/** Bounding box [x, y, w, h] of the foreground, as `rleToBbox` computes it. */
export function rleToBbox(R: Rle): [number, number, number, number] {
  const h = R.h >>> 0, w = R.w >>> 0;
  const m = Math.floor(R.cnts.length / 2) * 2;
  if (m === 0) return [0, 0, 0, 0];
  let xs = w, ys = h, xe = 0, ye = 0, cc = 0, xp = 0;
  for (let j = 0; j < m; j++) {
    cc = (cc + R.cnts[j]!) >>> 0;
    const t = (cc - (j % 2)) >>> 0;
    const y = t % h;
    const x = (t - y) / h;
    if (j % 2 === 0) xp = x;
    else if (xp < x) { ys = 0; ye = h - 1; }
    xs = Math.min(xs, x); xe = Math.max(xe, x); ys = Math.min(ys, y); ye = Math.max(ye, y);
  }
  return [xs, ys, xe - xs + 1, ye - ys + 1];
}

/**
 * C `(int)(x)` for doubles as x86-64 executes it (cvttsd2si): truncation toward zero; NaN and values
 * outside int32 give INT_MIN. Degenerate polygon edges (repeated vertices) hit the NaN case.
 */
function cInt(x: number): number {
  if (!(x > -2147483649 && x < 2147483648)) return -2147483648;
  return Math.trunc(x);
}

/**
 * Polygon rasterisation exactly as `rleFrPoly`: vertices are scaled by 5, the boundary is walked
 * densely, crossings of pixel-centre columns are kept and turned into column-major run lengths.
 * `xy` holds k (x, y) pairs.
 */
export function rleFrPoly(xy: ArrayLike<number>, k: number, h: number, w: number): Rle {
  const scale = 5;
  const x = new Int32Array(k + 1);
  const y = new Int32Array(k + 1);
  for (let j = 0; j < k; j++) x[j] = cInt(scale * xy[j * 2]! + 0.5);
  x[k] = x[0]!;
  for (let j = 0; j < k; j++) y[j] = cInt(scale * xy[j * 2 + 1]! + 0.5);
  y[k] = y[0]!;
  let m = 0;
  for (let j = 0; j < k; j++) m += Math.max(Math.abs(x[j]! - x[j + 1]!), Math.abs(y[j]! - y[j + 1]!)) + 1;
  if (m > MAX_POLY_POINTS) {
    throw new KestrelError('E_COCO_FORMAT', `polygon is too large to rasterise (${m} boundary points at 5x; coordinates far outside the image?)`);
  }
  const u = new Int32Array(m);
  const v = new Int32Array(m);
  m = 0;
  for (let j = 0; j < k; j++) {
    let xs = x[j]!, xe = x[j + 1]!, ys = y[j]!, ye = y[j + 1]!;
    const dx = Math.abs(xe - xs), dy = Math.abs(ys - ye);
    const flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) { let t = xs; xs = xe; xe = t; t = ys; ys = ye; ye = t; }
    const s = dx >= dy ? (ye - ys) / dx : (xe - xs) / dy;
    if (dx >= dy) {
      for (let d = 0; d <= dx; d++) {
        const t = flip ? dx - d : d;
        u[m] = t + xs; v[m] = cInt(ys + s * t + 0.5); m++;
      }
    } else {
      for (let d = 0; d <= dy; d++) {
        const t = flip ? dy - d : d;
        v[m] = t + ys; u[m] = cInt(xs + s * t + 0.5); m++;
      }
    }
  }
  // Points where the boundary crosses a pixel-centre column, downsampled back to pixels.
  const kk = m;
  const px = new Int32Array(kk);
  const py = new Int32Array(kk);
  m = 0;
  for (let j = 1; j < kk; j++) {
    if (u[j] !== u[j - 1]) {
      let xd = u[j]! < u[j - 1]! ? u[j]! : u[j]! - 1;
      xd = (xd + 0.5) / scale - 0.5;
      if (Math.floor(xd) !== xd || xd < 0 || xd > w - 1) continue;
      let yd = v[j]! < v[j - 1]! ? v[j]! : v[j - 1]!;
      yd = (yd + 0.5) / scale - 0.5;
      if (yd < 0) yd = 0; else if (yd > h) yd = h;
      yd = Math.ceil(yd);
      px[m] = cInt(xd); py[m] = cInt(yd); m++;
    }
  }
  const n = m + 1;
  const a = new Uint32Array(n);
  for (let j = 0; j < m; j++) a[j] = (px[j]! * (h | 0) + py[j]!) >>> 0;
  a[m] = (h * w) >>> 0;
  a.sort();
  let p = 0;
  for (let j = 0; j < n; j++) { const t = a[j]!; a[j] = (a[j]! - p) >>> 0; p = t; }
  const b: number[] = [];
  let j = 0;
  b.push(a[j++]!);
  while (j < n) {
    if (a[j]! > 0) b.push(a[j++]!);
    else { j++; if (j < n) { b[b.length - 1] = (b[b.length - 1]! + a[j++]!) >>> 0; } }
  }
  return { h, w, cnts: Uint32Array.from(b) };
}

/** Box [x, y, w, h] → RLE, via the same polygon rasteriser (`rleFrBbox`). */
export function rleFrBbox(bb: ArrayLike<number>, h: number, w: number): Rle {
  const xs = bb[0]!, xe = xs + bb[2]!, ys = bb[1]!, ye = ys + bb[3]!;
  return rleFrPoly([xs, ys, xs, ye, xe, ye, xe, ys], 4, h, w);
}

/** Compressed string form: LEB128-like, 5 bits per char offset by 48; counts after the 2nd are deltas. */
export function rleToString(R: Rle): string {
  const parts: number[] = [];
  const c = R.cnts;
  for (let i = 0; i < c.length; i++) {
    // C uses a 64-bit long here; counts < 2^32 and their deltas fit exactly in doubles.
    let x = c[i]!;
    if (i > 2) x -= c[i - 2]!;
    let more = true;
    while (more) {
      let ch = x & 0x1f;
      x = Math.floor(x / 32);
      more = (ch & 0x10) ? x !== -1 : x !== 0;
      if (more) ch |= 0x20;
      parts.push(ch + 48);
    }
  }
  let out = '';
  // Chunks keep the spread below the engine's argument limit for very long RLEs.
  for (let i = 0; i < parts.length; i += 8192) out += String.fromCharCode(...parts.slice(i, i + 8192));
  return out;
}

/** Parse the compressed string form (inverse of {@link rleToString}). */
export function rleFrString(s: string, h: number, w: number): Rle {
  const cnts: number[] = [];
  let p = 0;
  const n = s.length;
  while (p < n) {
    let x = 0;
    let k = 0;
    let more = 1;
    while (more) {
      // Past the end C reads the NUL terminator (c = -48): stop there as well.
      if (p >= n) break;
      const c = s.charCodeAt(p) - 48;
      x += (c & 0x1f) * 2 ** (5 * k);
      more = c & 0x20;
      p++; k++;
      if (!more && (c & 0x10)) x -= 2 ** (5 * k);
    }
    if (cnts.length > 2) x += cnts[cnts.length - 2]!;
    cnts.push(x >>> 0 === x ? x : toUint32(x));
  }
  return { h, w, cnts: Uint32Array.from(cnts) };
}

function toUint32(x: number): number {
  const r = x % 4294967296;
  return r < 0 ? r + 4294967296 : r;
}

/** Box IoU matrix `o[d][g]` as `bbIou`; with crowd GT the union is the detection area. */
export function bbIou(dt: ArrayLike<number>[], gt: ArrayLike<number>[], iscrowd: ArrayLike<number> | null): number[][] {
  const m = dt.length, n = gt.length;
  const flat = new Float64Array(m * n);
  bbIouInto(dt, gt, iscrowd, flat);
  const o: number[][] = [];
  for (let d = 0; d < m; d++) o.push(Array.from(flat.subarray(d * n, d * n + n)));
  return o;
}

/** {@link bbIou} into a flat `[d*G + g]` array (no per-row allocation). */
export function bbIouInto(dt: ArrayLike<number>[], gt: ArrayLike<number>[], iscrowd: ArrayLike<number> | null, o: Float64Array): void {
  const m = dt.length, n = gt.length;
  o.fill(0, 0, m * n);
  for (let g = 0; g < n; g++) {
    const G = gt[g]!;
    const ga = G[2]! * G[3]!;
    const crowd = iscrowd !== null && !!iscrowd[g];
    for (let d = 0; d < m; d++) {
      const D = dt[d]!;
      const da = D[2]! * D[3]!;
      const w = Math.min(D[2]! + D[0]!, G[2]! + G[0]!) - Math.max(D[0]!, G[0]!);
      if (w <= 0) continue;
      const hh = Math.min(D[3]! + D[1]!, G[3]! + G[1]!) - Math.max(D[1]!, G[1]!);
      if (hh <= 0) continue;
      const i = w * hh;
      const u = crowd ? da : da + ga - i;
      o[d * n + g] = i / u;
    }
  }
}

/** Mask IoU matrix `o[d][g]` as `rleIou` (box pre-check, -1 for size mismatch, crowd union = dt area). */
export function rleIou(dt: readonly Rle[], gt: readonly Rle[], iscrowd: ArrayLike<number> | null): number[][] {
  const o = bbIou(dt.map(rleToBbox), gt.map(rleToBbox), iscrowd);
  const m = dt.length, n = gt.length;
  for (let g = 0; g < n; g++) {
    for (let d = 0; d < m; d++) {
      if (!(o[d]![g]! > 0)) continue;
      const crowd = iscrowd !== null && !!iscrowd[g];
      const D = dt[d]!, G = gt[g]!;
      if (D.h !== G.h || D.w !== G.w) { o[d]![g] = -1; continue; }
      const ka = D.cnts.length, kb = G.cnts.length;
      let ca = D.cnts[0]!, cb = G.cnts[0]!;
      let va = 0, vb = 0, a = 1, b = 1, i = 0, u = 0, ct = 1;
      while (ct > 0) {
        const c = Math.min(ca, cb);
        if (va || vb) { u += c; if (va && vb) i += c; }
        ct = 0;
        ca -= c; if (!ca && a < ka) { ca = D.cnts[a++]!; va = va ? 0 : 1; } ct += ca;
        cb -= c; if (!cb && b < kb) { cb = G.cnts[b++]!; vb = vb ? 0 : 1; } ct += cb;
        // Counts that do not add up to h*w would loop forever in C; stop when one side has run out.
        if (ct > 0 && ((ca === 0 && a >= ka) || (cb === 0 && b >= kb))) break;
      }
      if (i === 0) u = 1;
      else if (crowd) u = rleArea(D);
      o[d]![g] = (i >>> 0) / (u >>> 0);
    }
  }
  return o;
}
