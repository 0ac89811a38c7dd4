// The per-ISA compute kernels. Each instruction set is compiled in its own translation unit with its own
// flags (binding.gyp) and exposes one table; ops.cc picks a table at run time from cpuid. The tables hold
// only the hot inner loops; everything else (threading, gathering, softmax, ...) is baseline code.
#pragma once
#include <stdint.h>

namespace kestrel {

/** Block size of the int8 format (weights and quantized activations), as Q8_BLOCK in contract.ts. */
constexpr int64_t kQ8Block = 32;

struct IsaKernels {
  /** 'scalar', 'avx2', 'avx512', 'avx512-vnni' */
  const char* name;
  /** Σ a[i]·b[i] */
  float (*dot_f32)(const float* a, const float* b, int64_t k);
  /** y[i] += a·x[i] */
  void (*axpy_f32)(float a, const float* x, float* y, int64_t n);
  /**
   * out[t, r - r0] (row stride ldo) = x[t, :] · w[r, :] for t < m, r in [r0, r1); x rows have stride k.
   * `scratch` holds at least 4·k floats (bf16 rows are widened into it when m is large).
   */
  void (*linear_f32)(const float* x, int64_t m, int64_t k, const float* w, int64_t r0, int64_t r1, float* out,
                     int64_t ldo);
  void (*linear_bf16)(const float* x, int64_t m, int64_t k, const uint16_t* w, int64_t r0, int64_t r1, float* out,
                      int64_t ldo, float* scratch);
  /**
   * int8 × int8: xq [m, kp] / xs [m, kp/32] are quantized activations, w [n, kp] / ws [n, kp/32] the weight.
   * out[t, r - r0] = Σ_b xs[t,b]·ws[r,b]·Σ_{c in b} xq[t,c]·w[r,c].
   */
  /** out[i*ldo + j] = q_i · k_j for i < rows (1..4), j < n; q rows stride ldq, k rows stride ldk, length d. */
  void (*qk_f32)(const float* q, int64_t ldq, int rows, const float* k, int64_t ldk, int64_t n, int64_t d, float* out,
                 int64_t ldo);
  /** out[c] = Σ_{j<n} p[j] · v[j*ldv + c] for c < d (out overwritten). */
  void (*pv_f32)(const float* p, int64_t n, const float* v, int64_t ldv, int64_t d, float* out);
  /** s[j] = exp(s[j] - mx) for j < n (|rel err| < 2e-7); returns Σ s[j]. */
  float (*exp_sum)(float* s, int64_t n, float mx);
  void (*linear_q8)(const int8_t* xq, const float* xs, int64_t m, int64_t kp, const int8_t* w, const float* ws,
                    int64_t r0, int64_t r1, float* out, int64_t ldo);
  /**
   * Machine-limit probes (`kestrel bench lm`): `iters` rounds of independent register-only chains of the widest
   * f32 FMA / int8 dot instruction this table uses; each returns the operations done (2 per multiply-add).
   */
  double (*peak_f32)(int64_t iters);
  double (*peak_i8)(int64_t iters);
};

const IsaKernels* isa_scalar();
const IsaKernels* isa_avx2();
const IsaKernels* isa_avx512();
const IsaKernels* isa_avx512vnni();

}  // namespace kestrel
