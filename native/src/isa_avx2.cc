// AVX2 + FMA kernels (Haswell / Zen and later). Compiled with -mavx2 -mfma only in this file.
#include <immintrin.h>
#include <math.h>

#include "kernels.h"

namespace kestrel {
namespace isa_avx2_ns {

static const char* const kIsaName = "avx2";

struct F {
  using V = __m256;
  static constexpr int W = 8;
  static inline V zero() { return _mm256_setzero_ps(); }
  static inline V set1(float a) { return _mm256_set1_ps(a); }
  static inline V load(const float* p) { return _mm256_loadu_ps(p); }
  static inline V load(const uint16_t* p) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static inline void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static inline V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static inline V add(V a, V b) { return _mm256_add_ps(a, b); }
  static inline V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  // e^x = 2^n · e^r, n = round(x·log2 e), r = x − n·ln 2 (two-part ln 2), |r| ≤ ln2/2; degree-7 Taylor
  // polynomial (truncation < 1e-8 relative). Inputs below −87 flush towards 0 (softmax tails).
  static inline V exp(V x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    x = _mm256_min_ps(x, _mm256_set1_ps(88.0f));
    const V n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    V r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    V p = _mm256_set1_ps(1.f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  }
  static inline float hsum(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

// int8 × int8 without VNNI: maddubs needs one unsigned operand, so multiply |w| by x carrying w's sign
// (|x| ≤ 127 and |w| ≤ 128 keep the int16 pair sums below saturation).
struct Q {
  static constexpr bool kBlock8 = true;
  using I = __m256i;
  // Σ x·w over one block as 8 int32 partial sums: |x| (unsigned) times w carrying x's sign.
  static inline I dot_ax(const int8_t* w, const int8_t* x, const int8_t* ax) {
    const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
    const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
    const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ax));
    const __m256i p16 = _mm256_maddubs_epi16(av, _mm256_sign_epi8(wv, xv));
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
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
    const __m256i p16 = _mm256_maddubs_epi16(w.aw, _mm256_sign_epi8(x, w.w));
    const __m256i p32 = _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(p32), _mm256_set1_ps(scale), acc);
  }
  static inline float hsum(Acc v) { return F::hsum(v); }
};

constexpr int RM_F = 4, RN_F = 3, RM_Q = 4, RN_Q = 2;

// int8 peak: 12 independent vpmaddubsw + vpmaddwd + vpaddd chains (32 multiply-adds each).
static double k_peak_i8(int64_t iters) {
  __m256i a[12];
  for (int j = 0; j < 12; ++j) a[j] = _mm256_set1_epi32(j);
  const __m256i u = _mm256_set1_epi8(3), v = _mm256_set1_epi8(-2), one = _mm256_set1_epi16(1);
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < 12; ++j)  // the chain's own bytes feed the multiply, so nothing is loop-invariant
      a[j] = _mm256_add_epi32(u, _mm256_madd_epi16(_mm256_maddubs_epi16(a[j], v), one));
  __m256i s = a[0];
  for (int j = 1; j < 12; ++j) s = _mm256_add_epi32(s, a[j]);
  volatile int sink = _mm256_extract_epi32(s, 0);
  (void)sink;
  return 2.0 * 12.0 * 32.0 * static_cast<double>(iters);
}

#include "kernels_impl.h"

}  // namespace isa_avx2_ns

const IsaKernels* isa_avx2() { return &isa_avx2_ns::kTable; }

}  // namespace kestrel
