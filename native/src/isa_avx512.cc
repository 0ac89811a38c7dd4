// AVX-512 F/BW/VL/DQ kernels (Skylake-SP, Zen 4 and later); with KESTREL_AVX512_VNNI defined, the int8 block
// dot uses vpdpbusd (AVX-512 VNNI, 256-bit EVEX form). Compiled with the matching -m flags only in this file.
#include <immintrin.h>
#include <math.h>

#include "kernels.h"

namespace kestrel {
#ifdef KESTREL_AVX512_VNNI
namespace isa_avx512vnni_ns {
static const char* const kIsaName = "avx512-vnni";
#else
namespace isa_avx512_ns {
static const char* const kIsaName = "avx512";
#endif

struct F {
  using V = __m512;
  static constexpr int W = 16;
  static inline V zero() { return _mm512_setzero_ps(); }
  static inline V set1(float a) { return _mm512_set1_ps(a); }
  static inline V load(const float* p) { return _mm512_loadu_ps(p); }
  static inline V load(const uint16_t* p) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static inline void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static inline V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static inline V add(V a, V b) { return _mm512_add_ps(a, b); }
  static inline V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  // As the AVX2 version (see isa_avx2.cc), 16 lanes.
  static inline V exp(V x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    x = _mm512_min_ps(x, _mm512_set1_ps(88.0f));
    const V n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    V r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    V p = _mm512_set1_ps(1.f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
    const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
  }
  static inline float hsum(V v) { return _mm512_reduce_add_ps(v); }
};

// One block of 32 per 256-bit register, as in the AVX2 path (sign trick: |w| unsigned, x carrying w's sign);
// VNNI fuses the u8×s8 multiply and the int32 accumulation into one instruction.
struct Q {
  static constexpr bool kBlock8 = true;
  using I = __m256i;
  // Σ x·w over one block as 8 int32 partial sums: |x| (unsigned) times w carrying x's sign.
  static inline I dot_ax(const int8_t* w, const int8_t* x, const int8_t* ax) {
    const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
    const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
    const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ax));
#ifdef KESTREL_AVX512_VNNI
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), av, _mm256_sign_epi8(wv, xv));
#else
    const __m256i p16 = _mm256_maddubs_epi16(av, _mm256_sign_epi8(wv, xv));
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
#endif
  }
  // 8 blocks' int32 partial sums -> one float vector holding the 8 block totals (block t in lane t).
  static inline __m256 reduce8(const I* d) {
    const __m256i h01 = _mm256_hadd_epi32(d[0], d[1]);
    const __m256i h23 = _mm256_hadd_epi32(d[2], d[3]);
    const __m256i h45 = _mm256_hadd_epi32(d[4], d[5]);
    const __m256i h67 = _mm256_hadd_epi32(d[6], d[7]);
    const __m256i h0123 = _mm256_hadd_epi32(h01, h23);  // lanes: b0 b1 b2 b3 (low half) | b0 b1 b2 b3 (high half)
    const __m256i h4567 = _mm256_hadd_epi32(h45, h67);
    const __m256i lo = _mm256_permute2x128_si256(h0123, h4567, 0x20);
    const __m256i hi = _mm256_permute2x128_si256(h0123, h4567, 0x31);
    return _mm256_cvtepi32_ps(_mm256_add_epi32(lo, hi));
  }
  static inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
  static inline __m256 mul8(__m256 a, __m256 b) { return _mm256_mul_ps(a, b); }
  static inline __m256 fma8(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
  using Acc = __m256;
  struct WB { __m256i w, aw; };
  using XB = __m256i;
  static inline void prefetch(const int8_t* p) { _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0); }
  static inline Acc zero() { return _mm256_setzero_ps(); }
  static inline WB prep_w(const int8_t* p) {
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return WB{w, _mm256_abs_epi8(w)};
  }
  static inline XB load_x(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static inline Acc fma_block(const WB& w, XB x, float scale, Acc acc) {
#ifdef KESTREL_AVX512_VNNI
    const __m256i p32 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), w.aw, _mm256_sign_epi8(x, w.w));
#else
    const __m256i p16 = _mm256_maddubs_epi16(w.aw, _mm256_sign_epi8(x, w.w));
    const __m256i p32 = _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
#endif
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(p32), _mm256_set1_ps(scale), acc);
  }
  static inline float hsum(Acc v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

constexpr int RM_F = 4, RN_F = 4, RM_Q = 4, RN_Q = 4;

// int8 peak: 12 independent chains of the widest int8 dot this table has (vpdpbusd zmm: 64 multiply-adds; without
// VNNI vpmaddubsw + vpmaddwd + vpaddd per 64).
static double k_peak_i8(int64_t iters) {
  __m512i a[12];
  for (int j = 0; j < 12; ++j) a[j] = _mm512_set1_epi32(j);
  const __m512i u = _mm512_set1_epi8(3), v = _mm512_set1_epi8(-2);
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < 12; ++j) {
#ifdef KESTREL_AVX512_VNNI
      a[j] = _mm512_dpbusd_epi32(a[j], u, v);
#else
      // the chain's own bytes feed the multiply, so nothing can be hoisted out of the loop
      a[j] = _mm512_add_epi32(u, _mm512_madd_epi16(_mm512_maddubs_epi16(a[j], v), _mm512_set1_epi16(1)));
#endif
    }
  __m512i s = a[0];
  for (int j = 1; j < 12; ++j) s = _mm512_add_epi32(s, a[j]);
  volatile int sink = _mm512_reduce_add_epi32(s);
  (void)sink;
  return 2.0 * 12.0 * 64.0 * static_cast<double>(iters);
}

#ifdef KESTREL_AVX512_VNNI
// Batched q8 × q8 (prefill, the ViT): two blocks of 32 per 512-bit register and no sign trick. The weight bytes
// are flipped to unsigned (w + 128, one xor per load, shared by RM tokens) so vpdpbusd multiplies them with the
// signed activations directly; its accumulator starts at -128·Σx of the block pair (one vpdpbusd per token,
// shared by RN rows), so each dot comes out exact: Σ(w + 128)·x - 128·Σx = Σ w·x. Per token × row × 64 bytes
// that leaves one vpdpbusd, a convert, the scale product and an FMA (the per-block path costs about twice that).
#define KESTREL_Q8_BATCH 1
template <int RM, int RN, bool TAIL>
static inline void q8v_pair(const int8_t* xq, const float* xs, int64_t kp, int64_t nb, const int8_t* w,
                            const float* ws, int64_t b, __m512 (&acc)[RM][RN]) {
  const __mmask64 mb = TAIL ? 0xffffffffull : ~0ull;
  const __mmask16 ms = TAIL ? 0x1 : 0x3;
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  // lanes 0-7 take the first block's scale, lanes 8-15 the second's
  const __m512i sidx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  __m512i wu[RN];
  __m512 sw[RN];
  for (int j = 0; j < RN; ++j) {
    wu[j] = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mb, w + j * kp + b * 32), flip);
    sw[j] = _mm512_permutexvar_ps(sidx, _mm512_maskz_loadu_ps(ms, ws + j * nb + b));
  }
  for (int i = 0; i < RM; ++i) {
    const __m512i xv = _mm512_maskz_loadu_epi8(mb, xq + i * kp + b * 32);
    const __m512 sx = _mm512_permutexvar_ps(sidx, _mm512_maskz_loadu_ps(ms, xs + i * nb + b));
    const __m512i neg = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), flip, xv));
    for (int j = 0; j < RN; ++j) {
      const __m512i d = _mm512_dpbusd_epi32(neg, wu[j], xv);
      acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(sx, sw[j]), acc[i][j]);
    }
  }
}

// 16 accumulators -> one vector whose lane r holds the sum of v[r]: four levels of pairwise shuffles and adds
// (45 instructions instead of 16 full horizontal sums, ~128), which matters for short rows (k = 512 experts).
static inline __m512 q8v_sum16(const __m512* v) {
  __m512 l1[8], l2[4], l3[2];
  for (int i = 0; i < 8; ++i)
    l1[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(l1[2 * i]), b = _mm512_castps_pd(l1[2 * i + 1]);
    l2[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
  }
  for (int i = 0; i < 2; ++i)
    l3[i] = _mm512_add_ps(_mm512_shuffle_f32x4(l2[2 * i], l2[2 * i + 1], 0x44),
                          _mm512_shuffle_f32x4(l2[2 * i], l2[2 * i + 1], 0xEE));
  return _mm512_add_ps(_mm512_shuffle_f32x4(l3[0], l3[1], 0x88), _mm512_shuffle_f32x4(l3[0], l3[1], 0xDD));
}

template <int RM, int RN>
static void q8v_tile(const int8_t* xq, const float* xs, int64_t kp, const int8_t* w, const float* ws, float* out,
                     int64_t ldo) {
  const int64_t nb = kp / 32;
  __m512 acc[RM][RN];
  for (int i = 0; i < RM; ++i)
    for (int j = 0; j < RN; ++j) acc[i][j] = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) q8v_pair<RM, RN, false>(xq, xs, kp, nb, w, ws, b, acc);
  if (b < nb) q8v_pair<RM, RN, true>(xq, xs, kp, nb, w, ws, b, acc);
  if constexpr (RM == 4 && RN == 4) {
    const __m512 sums = q8v_sum16(&acc[0][0]);  // lane 4·i + j = Σ acc[i][j]
    _mm_storeu_ps(out, _mm512_extractf32x4_ps(sums, 0));
    _mm_storeu_ps(out + ldo, _mm512_extractf32x4_ps(sums, 1));
    _mm_storeu_ps(out + 2 * ldo, _mm512_extractf32x4_ps(sums, 2));
    _mm_storeu_ps(out + 3 * ldo, _mm512_extractf32x4_ps(sums, 3));
  } else {
    for (int i = 0; i < RM; ++i)
      for (int j = 0; j < RN; ++j) out[i * ldo + j] = _mm512_reduce_add_ps(acc[i][j]);
  }
}

template <int RM>
static void q8v_tile_rn(int rn, const int8_t* xq, const float* xs, int64_t kp, const int8_t* w, const float* ws,
                        float* out, int64_t ldo) {
  switch (rn) {
    case 1: q8v_tile<RM, 1>(xq, xs, kp, w, ws, out, ldo); break;
    case 2: q8v_tile<RM, 2>(xq, xs, kp, w, ws, out, ldo); break;
    case 3: q8v_tile<RM, 3>(xq, xs, kp, w, ws, out, ldo); break;
    default: q8v_tile<RM, 4>(xq, xs, kp, w, ws, out, ldo); break;
  }
}

// Rows of the weight in groups of 4 (8 KB for k = 2048, kept in L1) sweep over a block of up to 256 tokens
// (512 KB of int8 activations at k = 2048, kept in L2), so the weight streams from memory once per token block.
static void q8_batch(const int8_t* xq, const float* xs, int64_t m, int64_t kp, const int8_t* w, const float* ws,
                     int64_t r0, int64_t r1, float* out, int64_t ldo) {
  const int64_t nb = kp / 32;
  const int64_t tb = 256;
  for (int64_t t0 = 0; t0 < m; t0 += tb) {
    const int64_t t1 = t0 + tb < m ? t0 + tb : m;
    for (int64_t r = r0; r < r1; r += 4) {
      const int rn = static_cast<int>(r1 - r < 4 ? r1 - r : 4);
      for (int64_t t = t0; t < t1; t += 4) {
        const int64_t rm = t1 - t < 4 ? t1 - t : 4;
        const int8_t* xt = xq + t * kp;
        const float* st = xs + t * nb;
        float* o = out + t * ldo + (r - r0);
        switch (rm) {
          case 1: q8v_tile_rn<1>(rn, xt, st, kp, w + r * kp, ws + r * nb, o, ldo); break;
          case 2: q8v_tile_rn<2>(rn, xt, st, kp, w + r * kp, ws + r * nb, o, ldo); break;
          case 3: q8v_tile_rn<3>(rn, xt, st, kp, w + r * kp, ws + r * nb, o, ldo); break;
          default: q8v_tile_rn<4>(rn, xt, st, kp, w + r * kp, ws + r * nb, o, ldo); break;
        }
      }
    }
  }
}
#endif

#include "kernels_impl.h"

}  // namespace

#ifdef KESTREL_AVX512_VNNI
const IsaKernels* isa_avx512vnni() { return &isa_avx512vnni_ns::kTable; }
#else
const IsaKernels* isa_avx512() { return &isa_avx512_ns::kTable; }
#endif

}  // namespace kestrel
