// The contract's ops on raw pointers (no N-API types here): addon.cc validates and unwraps JS arguments, then
// calls these. One Engine per addon instance (per napi_env: the main thread and each worker_thread), so its ops
// are only ever called from that one JS thread: no lock, and its thread pool and scratch are its own.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels.h"
#include "threadpool.h"

namespace kestrel {

enum class Fmt { F32, BF16, Q8 };

/** A weight matrix W [n, k] (q8 rows padded to kp; scales [n, kp/32]). Borrowed pointers. */
struct Weight {
  Fmt fmt = Fmt::F32;
  int64_t n = 0, k = 0, kp = 0;
  const void* data = nullptr;
  const float* scales = nullptr;
};

struct ExpertW {
  const Weight* gate = nullptr;
  const Weight* up = nullptr;
  const Weight* down = nullptr;
};

struct AttnParams {
  int64_t tq, tk, n_heads, n_kv_heads, dqk, dv, q_stride, k_stride, v_stride, out_stride;
  float scale;
  bool causal;
  int64_t q_pos0;
};

struct RopeP {
  int64_t m, n_heads, head_stride, row_stride, offset, dim;
  bool interleaved;
};

enum class Scoring { Softmax, Sigmoid };
enum class RouteMethod { Greedy, GroupLimitedGreedy, NoauxTc };

struct RouteP {
  int top_k;
  Scoring scoring;
  RouteMethod method;
  int n_group, topk_group;
  const float* bias;  // may be null
  bool norm_topk_prob;
  float scaling;
};

/** The machine's limits as this engine's pool sees them (see Engine::probe). */
struct Probe {
  double read_gbps;   // DRAM read bandwidth, all pool threads
  double f32_gflops;  // f32 FMA peak of the current ISA table, all pool threads
  double i8_gops;     // int8 dot peak of the current ISA table, all pool threads
};

class Engine {
 public:
  Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  void set_threads(int n);
  int threads();
  /** Force an ISA (for tests and benchmarks); false when this CPU lacks it. */
  bool set_isa(const std::string& name);
  std::string isa();
  /** ISAs this CPU can run, best first. */
  std::vector<std::string> supported_isas();

  /**
   * Measure read bandwidth (a buffer far larger than the last-level cache, read by every pool thread) and the
   * f32 / int8 peaks of the current ISA (register-only chains on every pool thread); best of a few rounds.
   */
  Probe probe(int64_t buffer_mb);

  void linear(const float* x, int64_t m, const Weight& w, const float* bias, float* out);
  void rmsnorm(const float* x, int64_t m, int64_t n, const float* w, float eps, float* out);
  void layernorm(const float* x, int64_t m, int64_t n, const float* w, const float* b, float eps, float* out);
  void gelu(const float* x, float* out, int64_t n, bool tanh_approx);
  void silu(const float* x, float* out, int64_t n);
  void swiglu(const float* g, const float* u, float* out, int64_t n);
  void softmax(float* x, int64_t m, int64_t n);
  void add(const float* a, const float* b, float* out, int64_t n);
  void mul(const float* a, const float* b, float* out, int64_t n);
  void embedding(const Weight& table, const int32_t* ids, int64_t count, float* out);
  void rope(float* x, const RopeP& p, const int32_t* pos, const float* cos, const float* sin);
  void attention(const float* q, const float* k, const float* v, float* out, const AttnParams& p);
  void moe_route(const float* logits, int64_t m, int64_t n_experts, const RouteP& p, int32_t* idx, float* weight,
                 float* scores);
  void moe_experts(const float* x, int64_t m, int64_t h, const std::vector<ExpertW>& experts, const int32_t* idx,
                   const float* weight, int top_k, float* out);

 private:
  void ensure_scratch(size_t floats_per_thread);
  void ensure_wide(size_t floats_per_thread);
  void quantize_rows(const float* x, int64_t m, int64_t k, int64_t kp, int8_t* xq, float* xs, bool parallel);
  /** out[t, r - r0] for rows [r0, r1) of w, from f32 input x (stride w.k) or its int8 form (xq/xs, stride kp). */
  void linear_rows(const Weight& w, const float* x, const int8_t* xq, const float* xs, int64_t m, int64_t r0,
                   int64_t r1, float* out, int64_t ldo, int thread);
  void parallel_elems(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

  std::unique_ptr<ThreadPool> pool_;
  const IsaKernels* isa_;
  std::vector<std::vector<float>> scratch_;  // per pool thread: scores, expert tiles
  std::vector<std::vector<float>> wide_;     // per pool thread: bf16 rows widened by linear_bf16
  std::vector<int8_t> qx_;                   // quantized activations
  std::vector<float> qs_;
  // moe_experts buffers
  std::vector<float> xg_, hbuf_, ybuf_;
  std::vector<float> kpack_, vpack_;  // attention: keys / values of each kv head in contiguous rows
  std::vector<int8_t> xgq_, hq_;
  std::vector<float> xgs_, hs_;
};

}  // namespace kestrel
