// Generic kernel bodies, instantiated once per ISA. Include this inside a namespace that is unique to the
// translation unit, after defining:
//   struct F  — f32 vectors: V, W (lanes), zero(), load(const float*), load(const uint16_t*) (bf16 widened),
//               fma(a, b, c) = a*b + c, hsum(V)
//   struct Q  — int8 blocks of 32: Acc, WB, XB, zero(), prep_w(const int8_t*), load_x(const int8_t*),
//               fma_block(WB, XB, float scale, Acc) = Acc + scale * (w·x), hsum(Acc)
//   constexpr int RM_F, RN_F, RM_Q, RN_Q — register tile (tokens × weight rows), each in 1..4
// Only <stdint.h>/<math.h>-level code here: no STL, so no inline function compiled with wide-ISA flags can be
// picked by the linker for baseline callers (ODR/COMDAT folding).

static inline float widen(float v) { return v; }
static inline float widen(uint16_t v) {
  union { uint32_t u; float f; } c;
  c.u = static_cast<uint32_t>(v) << 16;
  return c.f;
}
static inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

// x [RM rows, stride ldx] · w [RN rows, stride ldw]ᵀ over k → out [RM, RN] (stride ldo).
template <int RM, int RN, typename WT>
static inline void tile_f(const float* x, int64_t ldx, const WT* w, int64_t ldw, int64_t k, float* out, int64_t ldo) {
  typename F::V acc[RM][RN];
  for (int i = 0; i < RM; ++i)
    for (int j = 0; j < RN; ++j) acc[i][j] = F::zero();
  int64_t c = 0;
  for (; c + F::W <= k; c += F::W) {
    typename F::V wv[RN];
    for (int j = 0; j < RN; ++j) wv[j] = F::load(w + j * ldw + c);
    for (int i = 0; i < RM; ++i) {
      typename F::V xv = F::load(x + i * ldx + c);
      for (int j = 0; j < RN; ++j) acc[i][j] = F::fma(xv, wv[j], acc[i][j]);
    }
  }
  float r[RM][RN];
  for (int i = 0; i < RM; ++i)
    for (int j = 0; j < RN; ++j) r[i][j] = F::hsum(acc[i][j]);
  for (; c < k; ++c)
    for (int i = 0; i < RM; ++i)
      for (int j = 0; j < RN; ++j) r[i][j] += x[i * ldx + c] * widen(w[j * ldw + c]);
  for (int i = 0; i < RM; ++i)
    for (int j = 0; j < RN; ++j) out[i * ldo + j] = r[i][j];
}

template <int RM, typename WT>
static void tile_f_rn(int rn, const float* x, int64_t ldx, const WT* w, int64_t ldw, int64_t k, float* out,
                      int64_t ldo) {
  switch (rn) {
    case 1: tile_f<RM, 1, WT>(x, ldx, w, ldw, k, out, ldo); break;
    case 2: tile_f<RM, 2, WT>(x, ldx, w, ldw, k, out, ldo); break;
    case 3: tile_f<RM, 3, WT>(x, ldx, w, ldw, k, out, ldo); break;
    default: tile_f<RM, 4, WT>(x, ldx, w, ldw, k, out, ldo); break;
  }
}

template <typename WT>
static void tile_f_any(int rm, int rn, const float* x, int64_t ldx, const WT* w, int64_t ldw, int64_t k, float* out,
                       int64_t ldo) {
  switch (rm) {
    case 1: tile_f_rn<1, WT>(rn, x, ldx, w, ldw, k, out, ldo); break;
    case 2: tile_f_rn<2, WT>(rn, x, ldx, w, ldw, k, out, ldo); break;
    case 3: tile_f_rn<3, WT>(rn, x, ldx, w, ldw, k, out, ldo); break;
    default: tile_f_rn<4, WT>(rn, x, ldx, w, ldw, k, out, ldo); break;
  }
}

// Tokens are processed in blocks that stay in L2 while a few weight rows (in L1) sweep over them.
static const int64_t kTokenBlock = 64;

static void k_linear_f32(const float* x, int64_t m, int64_t k, const float* w, int64_t r0, int64_t r1, float* out,
                         int64_t ldo) {
  for (int64_t t0 = 0; t0 < m; t0 += kTokenBlock) {
    const int64_t t1 = imin(m, t0 + kTokenBlock);
    for (int64_t r = r0; r < r1; r += RN_F) {
      const int rn = static_cast<int>(imin(RN_F, r1 - r));
      for (int64_t t = t0; t < t1; t += RM_F) {
        const int rm = static_cast<int>(imin(RM_F, t1 - t));
        tile_f_any<float>(rm, rn, x + t * k, k, w + r * k, k, k, out + t * ldo + (r - r0), ldo);
      }
    }
  }
}

// bf16: with few tokens widen on the fly (bandwidth bound); with many, widen a row tile once into scratch
// and reuse it for the whole token block.
static void k_linear_bf16(const float* x, int64_t m, int64_t k, const uint16_t* w, int64_t r0, int64_t r1,
                          float* out, int64_t ldo, float* scratch) {
  const bool widen_rows = m >= 8;
  for (int64_t t0 = 0; t0 < m; t0 += kTokenBlock) {
    const int64_t t1 = imin(m, t0 + kTokenBlock);
    for (int64_t r = r0; r < r1; r += RN_F) {
      const int rn = static_cast<int>(imin(RN_F, r1 - r));
      if (widen_rows) {
        for (int64_t i = 0; i < rn * k; ++i) scratch[i] = widen(w[r * k + i]);
      }
      for (int64_t t = t0; t < t1; t += RM_F) {
        const int rm = static_cast<int>(imin(RM_F, t1 - t));
        if (widen_rows)
          tile_f_any<float>(rm, rn, x + t * k, k, scratch, k, k, out + t * ldo + (r - r0), ldo);
        else
          tile_f_any<uint16_t>(rm, rn, x + t * k, k, w + r * k, k, k, out + t * ldo + (r - r0), ldo);
      }
    }
  }
}

template <int RM, int RN>
static inline void tile_q(const int8_t* xq, const float* xs, const int8_t* w, const float* ws, int64_t kp,
                          float* out, int64_t ldo) {
  const int64_t nb = kp / 32;
  typename Q::Acc acc[RM][RN];
  for (int i = 0; i < RM; ++i)
    for (int j = 0; j < RN; ++j) acc[i][j] = Q::zero();
  for (int64_t b = 0; b < nb; ++b) {
    typename Q::WB wb[RN];
    float sw[RN];
    for (int j = 0; j < RN; ++j) {
      wb[j] = Q::prep_w(w + j * kp + b * 32);
      sw[j] = ws[j * nb + b];
    }
    for (int i = 0; i < RM; ++i) {
      const typename Q::XB xb = Q::load_x(xq + i * kp + b * 32);
      const float sx = xs[i * nb + b];
      for (int j = 0; j < RN; ++j) acc[i][j] = Q::fma_block(wb[j], xb, sx * sw[j], acc[i][j]);
    }
  }
  for (int i = 0; i < RM; ++i)
    for (int j = 0; j < RN; ++j) out[i * ldo + j] = Q::hsum(acc[i][j]);
}

template <int RM>
static void tile_q_rn(int rn, const int8_t* xq, const float* xs, const int8_t* w, const float* ws, int64_t kp,
                      float* out, int64_t ldo) {
  switch (rn) {
    case 1: tile_q<RM, 1>(xq, xs, w, ws, kp, out, ldo); break;
    case 2: tile_q<RM, 2>(xq, xs, w, ws, kp, out, ldo); break;
    case 3: tile_q<RM, 3>(xq, xs, w, ws, kp, out, ldo); break;
    default: tile_q<RM, 4>(xq, xs, w, ws, kp, out, ldo); break;
  }
}

static void tile_q_any(int rm, int rn, const int8_t* xq, const float* xs, const int8_t* w, const float* ws,
                       int64_t kp, float* out, int64_t ldo) {
  switch (rm) {
    case 1: tile_q_rn<1>(rn, xq, xs, w, ws, kp, out, ldo); break;
    case 2: tile_q_rn<2>(rn, xq, xs, w, ws, kp, out, ldo); break;
    case 3: tile_q_rn<3>(rn, xq, xs, w, ws, kp, out, ldo); break;
    default: tile_q_rn<4>(rn, xq, xs, w, ws, kp, out, ldo); break;
  }
}

// One token (decode): bandwidth bound, so the instruction count per weight byte decides how close to DRAM
// speed a core gets. Rows are streamed 4 at a time with software prefetch (rows are short, 1 KB for k = 1024,
// so the hardware prefetcher alone ramps up too late). With Q::kBlock8, |x| is computed once per call and
// the int32 dots of 8 consecutive blocks are reduced together, so the per-block scales cost one vector
// multiply per 8 blocks instead of a broadcast and an FMA per block.
template <int R>
static inline void q8_gemv_rows(const int8_t* xq, const int8_t* xa, const float* xs, int64_t kp, const int8_t* w,
                                const float* ws, float* out) {
  const int64_t nb = kp / 32;
  typename Q::Acc acc[R];
  for (int j = 0; j < R; ++j) acc[j] = Q::zero();
  int64_t b = 0;
  if constexpr (Q::kBlock8) {
    if (xa) {
      for (; b + 8 <= nb; b += 8) {
        const typename Q::Acc sx = Q::load8(xs + b);
        for (int j = 0; j < R; ++j) {
          const int8_t* wr = w + j * kp + b * 32;
          for (int t = 0; t < 4; ++t) Q::prefetch(wr + 2048 + 64 * t);
          typename Q::I d[8];
          for (int t = 0; t < 8; ++t) d[t] = Q::dot_ax(wr + 32 * t, xq + (b + t) * 32, xa + (b + t) * 32);
          acc[j] = Q::fma8(Q::reduce8(d), Q::mul8(sx, Q::load8(ws + j * nb + b)), acc[j]);
        }
      }
    }
  }
  for (; b < nb; ++b) {
    const typename Q::XB xb = Q::load_x(xq + b * 32);
    for (int j = 0; j < R; ++j) {
      Q::prefetch(w + (j + 4) * kp + b * 32);
      acc[j] = Q::fma_block(Q::prep_w(w + j * kp + b * 32), xb, xs[b] * ws[j * nb + b], acc[j]);
    }
  }
  for (int j = 0; j < R; ++j) out[j] = Q::hsum(acc[j]);
}

static void q8_gemv(const int8_t* xq, const float* xs, int64_t kp, const int8_t* w, const float* ws, int64_t r0,
                    int64_t r1, float* out) {
  const int64_t nb = kp / 32;
  // |x| once per call (kp bytes), when it fits a small stack buffer.
  int8_t xa_buf[16384];
  const int8_t* xa = nullptr;
  if (Q::kBlock8 && kp <= static_cast<int64_t>(sizeof(xa_buf))) {
    for (int64_t c = 0; c < kp; ++c) xa_buf[c] = static_cast<int8_t>(xq[c] < 0 ? -xq[c] : xq[c]);
    xa = xa_buf;
  }
  int64_t r = r0;
  // With the 8-block path one row at a time reads the matrix as a single sequential stream, which the hardware
  // prefetcher follows best.
  if (xa)
    for (; r < r1; ++r) q8_gemv_rows<1>(xq, xa, xs, kp, w + r * kp, ws + r * nb, out + (r - r0));
  for (; r + 4 <= r1; r += 4) {
    Q::prefetch(reinterpret_cast<const int8_t*>(ws + (r + 4) * nb));
    Q::prefetch(reinterpret_cast<const int8_t*>(ws + (r + 4) * nb) + 64);
    q8_gemv_rows<4>(xq, xa, xs, kp, w + r * kp, ws + r * nb, out + (r - r0));
  }
  for (; r < r1; ++r) q8_gemv_rows<1>(xq, xa, xs, kp, w + r * kp, ws + r * nb, out + (r - r0));
}

static void k_linear_q8(const int8_t* xq, const float* xs, int64_t m, int64_t kp, const int8_t* w, const float* ws,
                        int64_t r0, int64_t r1, float* out, int64_t ldo) {
  const int64_t nb = kp / 32;
  if (m == 1) {
    q8_gemv(xq, xs, kp, w, ws, r0, r1, out);
    return;
  }
#ifdef KESTREL_Q8_BATCH
  // The ISA file has a wider batched kernel (avx512-vnni: two blocks per register, see isa_avx512.cc).
  q8_batch(xq, xs, m, kp, w, ws, r0, r1, out, ldo);
  return;
#endif
  // int8 rows are 4× smaller than f32 ones, so larger token blocks still fit in L2.
  const int64_t tb = 4 * kTokenBlock;
  for (int64_t t0 = 0; t0 < m; t0 += tb) {
    const int64_t t1 = imin(m, t0 + tb);
    for (int64_t r = r0; r < r1; r += RN_Q) {
      const int rn = static_cast<int>(imin(RN_Q, r1 - r));
      for (int64_t t = t0; t < t1; t += RM_Q) {
        const int rm = static_cast<int>(imin(RM_Q, t1 - t));
        tile_q_any(rm, rn, xq + t * kp, xs + t * nb, w + r * kp, ws + r * nb, kp, out + t * ldo + (r - r0), ldo);
      }
    }
  }
}

static float k_dot_f32(const float* a, const float* b, int64_t k) {
  float r;
  tile_f<1, 1, float>(a, 0, b, 0, k, &r, 1);
  return r;
}

static void k_axpy_f32(float a, const float* x, float* y, int64_t n) {
  int64_t i = 0;
  const typename F::V av = F::set1(a);
  for (; i + F::W <= n; i += F::W) F::store(y + i, F::fma(av, F::load(x + i), F::load(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

static void k_qk_f32(const float* q, int64_t ldq, int rows, const float* k, int64_t ldk, int64_t n, int64_t d,
                     float* out, int64_t ldo) {
  for (int64_t j = 0; j < n; j += RN_F) {
    const int rn = static_cast<int>(imin(RN_F, n - j));
    tile_f_any<float>(rows, rn, q, ldq, k + j * ldk, ldk, d, out + j, ldo);
  }
}

// Output chunk of up to 4 vectors kept in registers while the keys stream past.
static void k_pv_f32(const float* p, int64_t n, const float* v, int64_t ldv, int64_t d, float* out) {
  int64_t c = 0;
  for (; c + 4 * F::W <= d; c += 4 * F::W) {
    typename F::V a0 = F::zero(), a1 = F::zero(), a2 = F::zero(), a3 = F::zero();
    for (int64_t j = 0; j < n; ++j) {
      const typename F::V pj = F::set1(p[j]);
      const float* vj = v + j * ldv + c;
      a0 = F::fma(pj, F::load(vj), a0);
      a1 = F::fma(pj, F::load(vj + F::W), a1);
      a2 = F::fma(pj, F::load(vj + 2 * F::W), a2);
      a3 = F::fma(pj, F::load(vj + 3 * F::W), a3);
    }
    F::store(out + c, a0);
    F::store(out + c + F::W, a1);
    F::store(out + c + 2 * F::W, a2);
    F::store(out + c + 3 * F::W, a3);
  }
  for (; c + F::W <= d; c += F::W) {
    typename F::V a0 = F::zero();
    for (int64_t j = 0; j < n; ++j) a0 = F::fma(F::set1(p[j]), F::load(v + j * ldv + c), a0);
    F::store(out + c, a0);
  }
  for (; c < d; ++c) {
    float a = 0.f;
    for (int64_t j = 0; j < n; ++j) a += p[j] * v[j * ldv + c];
    out[c] = a;
  }
}

static float k_exp_sum(float* s, int64_t n, float mx) {
  int64_t j = 0;
  typename F::V acc = F::zero();
  const typename F::V m = F::set1(mx);
  for (; j + F::W <= n; j += F::W) {
    const typename F::V e = F::exp(F::sub(F::load(s + j), m));
    F::store(s + j, e);
    acc = F::add(acc, e);
  }
  float sum = F::hsum(acc);
  for (; j < n; ++j) {
    s[j] = expf(s[j] - mx);
    sum += s[j];
  }
  return sum;
}

// 12 independent FMA chains: enough to cover the FMA latency (4-5 cycles) on two pipes.
static double k_peak_f32(int64_t iters) {
  typename F::V a[12];
  for (int j = 0; j < 12; ++j) a[j] = F::set1(1.f + 1e-7f * static_cast<float>(j));
  const typename F::V m = F::set1(0.999999f), c = F::set1(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < 12; ++j) a[j] = F::fma(a[j], m, c);
  typename F::V s = a[0];
  for (int j = 1; j < 12; ++j) s = F::add(s, a[j]);
  volatile float sink = F::hsum(s);
  (void)sink;
  return 2.0 * 12.0 * F::W * static_cast<double>(iters);
}

static const IsaKernels kTable = {kIsaName,  k_dot_f32, k_axpy_f32,  k_linear_f32, k_linear_bf16,
                                  k_qk_f32,  k_pv_f32,  k_exp_sum,   k_linear_q8,  k_peak_f32, k_peak_i8};
