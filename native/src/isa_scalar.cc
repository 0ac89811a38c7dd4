// Baseline x86-64 / any-CPU kernels: plain C++, compiled without extra ISA flags.
#include <math.h>
#include <string.h>

#include "kernels.h"

namespace kestrel {
namespace isa_scalar_ns {

static const char* const kIsaName = "scalar";

struct F {
  using V = float;
  static constexpr int W = 1;
  static inline V zero() { return 0.f; }
  static inline V set1(float a) { return a; }
  static inline V load(const float* p) { return *p; }
  static inline V load(const uint16_t* p) {
    union { uint32_t u; float f; } c;
    c.u = static_cast<uint32_t>(*p) << 16;
    return c.f;
  }
  static inline void store(float* p, V v) { *p = v; }
  static inline V fma(V a, V b, V c) { return a * b + c; }
  static inline float hsum(V v) { return v; }
  static inline V add(V a, V b) { return a + b; }
  static inline V sub(V a, V b) { return a - b; }
  static inline V exp(V a) { return expf(a); }
};

struct Q {
  static constexpr bool kBlock8 = false;
  using I = int32_t;
  static inline I dot_ax(const int8_t*, const int8_t*, const int8_t*) { return 0; }
  static inline float reduce8(const I*) { return 0.f; }
  static inline float load8(const float*) { return 0.f; }
  static inline float mul8(float a, float b) { return a * b; }
  static inline float fma8(float a, float b, float c) { return a * b + c; }
  using Acc = float;
  using WB = const int8_t*;
  using XB = const int8_t*;
  static inline void prefetch(const int8_t* p) { __builtin_prefetch(p); }
  static inline Acc zero() { return 0.f; }
  static inline WB prep_w(const int8_t* p) { return p; }
  static inline XB load_x(const int8_t* p) { return p; }
  static inline Acc fma_block(WB w, XB x, float scale, Acc acc) {
    int32_t s = 0;
    for (int c = 0; c < 32; ++c) s += static_cast<int32_t>(w[c]) * static_cast<int32_t>(x[c]);
    return acc + scale * static_cast<float>(s);
  }
  static inline float hsum(Acc a) { return a; }
};

constexpr int RM_F = 4, RN_F = 4, RM_Q = 4, RN_Q = 4;

static double k_peak_i8(int64_t iters) {
  int32_t a[12];
  for (int j = 0; j < 12; ++j) a[j] = j;
  volatile int8_t u = 3, v = -2;
  const int32_t p = static_cast<int32_t>(u) * static_cast<int32_t>(v);
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < 12; ++j) a[j] = a[j] * 3 + p;  // a dependent multiply-add per chain, as the vector probes
  int32_t s = 0;
  for (int j = 0; j < 12; ++j) s += a[j];
  volatile int32_t sink = s;
  (void)sink;
  return 2.0 * 12.0 * static_cast<double>(iters);
}

#include "kernels_impl.h"

}  // namespace isa_scalar_ns

const IsaKernels* isa_scalar() { return &isa_scalar_ns::kTable; }

}  // namespace kestrel
