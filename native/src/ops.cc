#include "ops.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace kestrel {

namespace {

inline float bf16_to_f32(uint16_t v) {
  uint32_t u = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Element-wise ops below this size run on the calling thread: waking the pool costs more than the work.
constexpr int64_t kParallelElems = 1 << 15;
// Weight rows per task of a linear: small enough to balance threads, large enough to amortise the x reads.
constexpr int64_t kMinRowsPerTask = 16;
constexpr int64_t kExpertRowChunk = 64;
constexpr int64_t kSmallLinear = 1 << 17;  // multiply-adds
// Attention with at least this many queries packs each kv head's keys and values first (Engine::attention).
constexpr int64_t kPackMinQueries = 16;

bool cpu_has(const char* isa) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  const std::string s(isa);
  // __builtin_cpu_supports needs literal arguments; it also checks that the OS saves the wider registers.
  if (s == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (s == "avx512")
    return cpu_has("avx2") && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  if (s == "avx512-vnni") return cpu_has("avx512") && __builtin_cpu_supports("avx512vnni");
#endif
  return std::string(isa) == "scalar";
}

const IsaKernels* table_for(const std::string& name) {
  if (name == "avx512-vnni") return isa_avx512vnni();
  if (name == "avx512") return isa_avx512();
  if (name == "avx2") return isa_avx2();
  if (name == "scalar") return isa_scalar();
  return nullptr;
}

int default_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

inline float silu1(float v) { return v / (1.f + std::exp(-v)); }

}  // namespace

Engine::Engine() {
  const std::vector<std::string> isas = supported_isas();
  std::string pick = isas.front();
  if (const char* env = std::getenv("KESTREL_ISA")) {
    // Only ever lowers the ISA: asking for one the CPU lacks keeps the detected best.
    if (std::find(isas.begin(), isas.end(), std::string(env)) != isas.end()) pick = env;
  }
  isa_ = table_for(pick);
  int threads = default_threads();
  if (const char* env = std::getenv("KESTREL_THREADS")) {
    const int t = std::atoi(env);
    if (t > 0) threads = t;
  }
  pool_ = std::make_unique<ThreadPool>(threads);
  scratch_.resize(pool_->size());
  wide_.resize(pool_->size());
}

std::vector<std::string> Engine::supported_isas() {
  std::vector<std::string> out;
  for (const char* n : {"avx512-vnni", "avx512", "avx2", "scalar"})
    if (cpu_has(n)) out.emplace_back(n);
  return out;
}

void Engine::set_threads(int n) {
  if (n < 1) n = default_threads();
  if (n == pool_->size()) return;
  pool_.reset();
  pool_ = std::make_unique<ThreadPool>(n);
  scratch_.assign(pool_->size(), {});
  wide_.assign(pool_->size(), {});
}

int Engine::threads() {
  return pool_->size();
}

bool Engine::set_isa(const std::string& name) {
  if (!cpu_has(name.c_str())) return false;
  const IsaKernels* t = table_for(name);
  if (!t) return false;
  isa_ = t;
  return true;
}

std::string Engine::isa() {
  return isa_->name;
}

Probe Engine::probe(int64_t buffer_mb) {
  using clock = std::chrono::steady_clock;
  const int nt = pool_->size();
  Probe pr{0, 0, 0};
  // One task per pool thread, all running at once: the pool lets the caller run tasks a sleeping worker has not
  // claimed yet, which would measure one core. Each task waits (at most 1 s) until every thread holds one.
  auto all_threads = [&](const std::function<void(int64_t)>& body) {
    std::atomic<int> arrived{0};
    pool_->run(nt, [&](int64_t t, int) {
      arrived.fetch_add(1);
      const auto until = clock::now() + std::chrono::seconds(1);
      while (arrived.load() < nt && clock::now() < until) std::this_thread::yield();
      body(t);
    });
  };
  {
    const int64_t n = std::max<int64_t>(1, buffer_mb) * (1 << 20) / 4;
    std::vector<float> buf(static_cast<size_t>(n), 1.f);  // written once, so every page is really mapped
    const int64_t per = ceil_div(n, nt);
    std::vector<float> sink(static_cast<size_t>(nt));
    for (int round = 0; round < 3; ++round) {
      std::vector<double> secs(static_cast<size_t>(nt), 0.0);
      all_threads([&](int64_t t) {
        const int64_t a = t * per, b = std::min(n, a + per);
        const auto s0 = clock::now();
        // dot(x, x) loads each element once (both operands hit the same line)
        if (a < b) sink[static_cast<size_t>(t)] = isa_->dot_f32(buf.data() + a, buf.data() + a, b - a);
        secs[static_cast<size_t>(t)] = std::chrono::duration<double>(clock::now() - s0).count();
      });
      // the slowest thread's time: all of them read at once
      const double s = *std::max_element(secs.begin(), secs.end());
      pr.read_gbps = std::max(pr.read_gbps, static_cast<double>(n) * 4 / s / 1e9);
    }
  }
  auto peak = [&](double (*fn)(int64_t)) {
    int64_t iters = 1 << 14;
    double best = 0;
    for (int round = 0; round < 4; ++round) {
      std::vector<double> ops(static_cast<size_t>(nt), 0.0), secs(static_cast<size_t>(nt), 0.0);
      all_threads([&](int64_t t) {
        const auto s0 = clock::now();
        ops[static_cast<size_t>(t)] = fn(iters);
        secs[static_cast<size_t>(t)] = std::chrono::duration<double>(clock::now() - s0).count();
      });
      const double s = *std::max_element(secs.begin(), secs.end());
      double total = 0;
      for (double o : ops) total += o;
      best = std::max(best, total / s / 1e9);
      if (s < 0.02) iters *= 4;  // grow until a round lasts long enough to time
    }
    return best;
  };
  pr.f32_gflops = peak(isa_->peak_f32);
  pr.i8_gops = peak(isa_->peak_i8);
  return pr;
}

void Engine::ensure_scratch(size_t floats) {
  for (auto& s : scratch_)
    if (s.size() < floats) s.resize(floats);
}

void Engine::ensure_wide(size_t floats) {
  if (wide_.size() != scratch_.size()) wide_.resize(scratch_.size());
  for (auto& s : wide_)
    if (s.size() < floats) s.resize(floats);
}

void Engine::parallel_elems(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n < kParallelElems || pool_->size() == 1) {
    fn(0, n);
    return;
  }
  const int64_t tasks = pool_->size() * 4;
  const int64_t chunk = ceil_div(n, tasks);
  pool_->run(tasks, [&](int64_t t, int) {
    const int64_t a = t * chunk, b = std::min(n, a + chunk);
    if (a < b) fn(a, b);
  });
}

// Symmetric per-block int8 (like ggml's Q8_0 activations): d = max|x| / 127, q = round-to-nearest-even(x / d).
void Engine::quantize_rows(const float* x, int64_t m, int64_t k, int64_t kp, int8_t* xq, float* xs, bool parallel) {
  const int64_t nb = kp / kQ8Block;
  auto row = [&](int64_t r) {
    const float* xr = x + r * k;
    int8_t* q = xq + r * kp;
    float* s = xs + r * nb;
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t c0 = b * kQ8Block, c1 = std::min(k, c0 + kQ8Block);
      float amax = 0.f;
      for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(xr[c]));
      const float d = amax / 127.f;
      const float id = d > 0.f ? 1.f / d : 0.f;
      for (int64_t c = c0; c < c1; ++c) q[c] = static_cast<int8_t>(std::lrintf(xr[c] * id));
      for (int64_t c = c1; c < c0 + kQ8Block; ++c) q[c] = 0;
      s[b] = d;
    }
  };
  if (parallel && m * k >= kParallelElems && pool_->size() > 1) {
    pool_->run(m, [&](int64_t r, int) { row(r); });
  } else {
    for (int64_t r = 0; r < m; ++r) row(r);
  }
}

void Engine::linear_rows(const Weight& w, const float* x, const int8_t* xq, const float* xs, int64_t m, int64_t r0,
                         int64_t r1, float* out, int64_t ldo, int thread) {
  switch (w.fmt) {
    case Fmt::F32:
      isa_->linear_f32(x, m, w.k, static_cast<const float*>(w.data), r0, r1, out, ldo);
      break;
    case Fmt::BF16:
      isa_->linear_bf16(x, m, w.k, static_cast<const uint16_t*>(w.data), r0, r1, out, ldo, wide_[thread].data());
      break;
    case Fmt::Q8:
      isa_->linear_q8(xq, xs, m, w.kp, static_cast<const int8_t*>(w.data), w.scales, r0, r1, out, ldo);
      break;
  }
}

void Engine::linear(const float* x, int64_t m, const Weight& w, const float* bias, float* out) {
  if (m <= 0 || w.n <= 0) return;
  if (w.fmt == Fmt::BF16) ensure_wide(static_cast<size_t>(4 * w.k));
  const int8_t* xq = nullptr;
  const float* xs = nullptr;
  if (w.fmt == Fmt::Q8) {
    qx_.resize(static_cast<size_t>(m * w.kp));
    qs_.resize(static_cast<size_t>(m * w.kp / kQ8Block));
    quantize_rows(x, m, w.k, w.kp, qx_.data(), qs_.data(), true);
    xq = qx_.data();
    xs = qs_.data();
  }
  const int nt = pool_->size();
  int64_t rows = std::max(kMinRowsPerTask, ceil_div(w.n, static_cast<int64_t>(nt) * 4));
  rows = ceil_div(rows, 4) * 4;
  // Small products (MLA's per-head matrices in decode) finish faster than a pool wake-up: one task.
  if (m * w.n * w.k < kSmallLinear) rows = w.n;
  const int64_t tasks = ceil_div(w.n, rows);
  pool_->run(tasks, [&](int64_t t, int thread) {
    const int64_t r0 = t * rows, r1 = std::min(w.n, r0 + rows);
    linear_rows(w, x, xq, xs, m, r0, r1, out + r0, w.n, thread);
    if (bias)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t r = r0; r < r1; ++r) out[i * w.n + r] += bias[r];
  });
}

void Engine::rmsnorm(const float* x, int64_t m, int64_t n, const float* w, float eps, float* out) {
  auto rows = [&](int64_t a, int64_t b) {
    for (int64_t r = a; r < b; ++r) {
      const float* xr = x + r * n;
      double ss = 0;
      for (int64_t c = 0; c < n; ++c) ss += static_cast<double>(xr[c]) * xr[c];
      const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
      float* o = out + r * n;
      for (int64_t c = 0; c < n; ++c) o[c] = w[c] * (xr[c] * inv);
    }
  };
  if (m * n < kParallelElems || m < 2) rows(0, m);
  else pool_->run(m, [&](int64_t r, int) { rows(r, r + 1); });
}

void Engine::layernorm(const float* x, int64_t m, int64_t n, const float* w, const float* b, float eps, float* out) {
  auto rows = [&](int64_t a, int64_t e) {
    for (int64_t r = a; r < e; ++r) {
      const float* xr = x + r * n;
      double s = 0;
      for (int64_t c = 0; c < n; ++c) s += xr[c];
      const double mean = s / static_cast<double>(n);
      double v = 0;
      for (int64_t c = 0; c < n; ++c) v += (xr[c] - mean) * (xr[c] - mean);
      const double inv = 1.0 / std::sqrt(v / static_cast<double>(n) + eps);
      float* o = out + r * n;
      for (int64_t c = 0; c < n; ++c) o[c] = static_cast<float>((xr[c] - mean) * inv) * w[c] + b[c];
    }
  };
  if (m * n < kParallelElems || m < 2) rows(0, m);
  else pool_->run(m, [&](int64_t r, int) { rows(r, r + 1); });
}

void Engine::gelu(const float* x, float* out, int64_t n, bool tanh_approx) {
  parallel_elems(n, [&](int64_t a, int64_t b) {
    // Both forms are rewritten so that no 1 + (≈ -1) cancellation loses precision for negative x:
    // 0.5·(1 + tanh(y)) = 1 / (1 + e^(-2y)) and 0.5·(1 + erf(z)) = 0.5·erfc(-z).
    if (tanh_approx) {
      const double k0 = 0.7978845608028654;  // sqrt(2/pi)
      for (int64_t i = a; i < b; ++i) {
        const double v = x[i];
        out[i] = static_cast<float>(v / (1.0 + std::exp(-2.0 * k0 * (v + 0.044715 * v * v * v))));
      }
    } else {
      for (int64_t i = a; i < b; ++i) {
        const double v = x[i];
        out[i] = static_cast<float>(0.5 * v * std::erfc(-v * 0.7071067811865476));
      }
    }
  });
}

void Engine::silu(const float* x, float* out, int64_t n) {
  parallel_elems(n, [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i) out[i] = silu1(x[i]);
  });
}

void Engine::swiglu(const float* g, const float* u, float* out, int64_t n) {
  parallel_elems(n, [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i) out[i] = silu1(g[i]) * u[i];
  });
}

void Engine::softmax(float* x, int64_t m, int64_t n) {
  auto rows = [&](int64_t a, int64_t b) {
    for (int64_t r = a; r < b; ++r) {
      float* xr = x + r * n;
      float mx = -INFINITY;
      for (int64_t c = 0; c < n; ++c) mx = std::max(mx, xr[c]);
      double s = 0;
      for (int64_t c = 0; c < n; ++c) {
        xr[c] = std::exp(xr[c] - mx);
        s += xr[c];
      }
      const float inv = static_cast<float>(1.0 / s);
      for (int64_t c = 0; c < n; ++c) xr[c] *= inv;
    }
  };
  if (m * n < kParallelElems || m < 2) rows(0, m);
  else pool_->run(m, [&](int64_t r, int) { rows(r, r + 1); });
}

void Engine::add(const float* a, const float* b, float* out, int64_t n) {
  parallel_elems(n, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) out[i] = a[i] + b[i];
  });
}

void Engine::mul(const float* a, const float* b, float* out, int64_t n) {
  parallel_elems(n, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) out[i] = a[i] * b[i];
  });
}

void Engine::embedding(const Weight& t, const int32_t* ids, int64_t count, float* out) {
  for (int64_t i = 0; i < count; ++i) {
    const int64_t r = ids[i];
    float* o = out + i * t.k;
    switch (t.fmt) {
      case Fmt::F32:
        std::memcpy(o, static_cast<const float*>(t.data) + r * t.k, static_cast<size_t>(t.k) * 4);
        break;
      case Fmt::BF16: {
        const uint16_t* p = static_cast<const uint16_t*>(t.data) + r * t.k;
        for (int64_t c = 0; c < t.k; ++c) o[c] = bf16_to_f32(p[c]);
        break;
      }
      case Fmt::Q8: {
        const int8_t* p = static_cast<const int8_t*>(t.data) + r * t.kp;
        const float* s = t.scales + r * (t.kp / kQ8Block);
        for (int64_t c = 0; c < t.k; ++c) o[c] = static_cast<float>(p[c]) * s[c / kQ8Block];
        break;
      }
    }
  }
}

void Engine::rope(float* x, const RopeP& p, const int32_t* pos, const float* cs, const float* sn) {
  const int64_t half = p.dim / 2;
  auto rows = [&](int64_t a, int64_t b) {
    std::vector<float> tmp(static_cast<size_t>(p.dim));
    for (int64_t r = a; r < b; ++r) {
      const float* c = cs + static_cast<int64_t>(pos[r]) * half;
      const float* s = sn + static_cast<int64_t>(pos[r]) * half;
      for (int64_t h = 0; h < p.n_heads; ++h) {
        float* v = x + r * p.row_stride + h * p.head_stride + p.offset;
        if (p.interleaved) {
          for (int64_t j = 0; j < half; ++j) {
            tmp[j] = v[2 * j];
            tmp[half + j] = v[2 * j + 1];
          }
          std::memcpy(v, tmp.data(), static_cast<size_t>(p.dim) * 4);
        }
        for (int64_t j = 0; j < half; ++j) {
          const float x1 = v[j], x2 = v[j + half];
          v[j] = x1 * c[j] - x2 * s[j];
          v[j + half] = x2 * c[j] + x1 * s[j];
        }
      }
    }
  };
  if (p.m * p.n_heads * p.dim < kParallelElems || p.m < 2) rows(0, p.m);
  else pool_->run(p.m, [&](int64_t r, int) { rows(r, r + 1); });
}

// Rows of one task share a kv head: 4 consecutive queries of one head (prefill), or up to 4 heads of one
// query (decode, where MLA's absorbed form shares one latent k/v across all heads). Scores for the rows are
// computed together so each key row is loaded once per task.
void Engine::attention(const float* q, const float* k, const float* v, float* out, const AttnParams& p) {
  const int64_t group = p.n_heads / p.n_kv_heads;
  constexpr int64_t kRows = 4;
  const bool by_query = p.tq >= kRows || group == 1;
  // task grid: by_query: (head, query block); else (query, kv head, head block inside the group)
  const int64_t qblocks = by_query ? (p.tq + kRows - 1) / kRows : p.tq;
  const int64_t hblocks = by_query ? p.n_heads : p.n_kv_heads * ((group + kRows - 1) / kRows);
  ensure_scratch(static_cast<size_t>(kRows * p.tk));
  const IsaKernels* isa = isa_;
  // Many queries over interleaved heads (prefill, the ViT; k/v rows hold every kv head): copy each kv head's
  // keys and values into contiguous rows once, so the query blocks stream them with unit row strides instead of
  // one row per n_kv_heads·d floats (which thrashes the L1 sets and the prefetchers).
  const bool pack = by_query && p.tq >= kPackMinQueries && p.n_kv_heads > 1;
  const float* kb = k;
  const float* vb = v;
  int64_t ks = p.k_stride, vs = p.v_stride, kh = p.dqk, vh = p.dv;  // row stride and per-head offset
  if (pack) {
    kpack_.resize(static_cast<size_t>(p.n_kv_heads * p.tk * p.dqk));
    vpack_.resize(static_cast<size_t>(p.n_kv_heads * p.tk * p.dv));
    pool_->run(p.n_kv_heads, [&](int64_t h, int) {
      for (int64_t j = 0; j < p.tk; ++j) {
        std::memcpy(&kpack_[(h * p.tk + j) * p.dqk], k + j * p.k_stride + h * p.dqk, static_cast<size_t>(p.dqk) * 4);
        std::memcpy(&vpack_[(h * p.tk + j) * p.dv], v + j * p.v_stride + h * p.dv, static_cast<size_t>(p.dv) * 4);
      }
    });
    kb = kpack_.data();
    vb = vpack_.data();
    ks = p.dqk;
    vs = p.dv;
    kh = p.tk * p.dqk;
    vh = p.tk * p.dv;
  }
  pool_->run(qblocks * hblocks, [&](int64_t task, int thread) {
    const int64_t hb = task / qblocks, qb = task % qblocks;
    int64_t i0, h0, rows, ldq, ldo, kvh;
    bool rows_are_queries;
    if (by_query) {
      h0 = hb;
      i0 = qb * kRows;
      rows = std::min(kRows, p.tq - i0);
      kvh = h0 / group;
      ldq = p.q_stride;
      ldo = p.out_stride;
      rows_are_queries = true;
    } else {
      const int64_t per = (group + kRows - 1) / kRows;
      kvh = hb / per;
      h0 = kvh * group + (hb % per) * kRows;
      rows = std::min(kRows, kvh * group + group - h0);
      i0 = qb;
      ldq = p.dqk;
      ldo = p.dv;
      rows_are_queries = false;
    }
    auto visible = [&](int64_t r) {
      const int64_t i = rows_are_queries ? i0 + r : i0;
      return p.causal ? std::min(p.tk, p.q_pos0 + i + 1) : p.tk;
    };
    const int64_t nk_max = visible(rows - 1);
    const float* q0 = q + i0 * p.q_stride + h0 * p.dqk;
    float* o0 = out + i0 * p.out_stride + h0 * p.dv;
    float* sc = scratch_[thread].data();
    if (nk_max > 0)
      isa->qk_f32(q0, ldq, static_cast<int>(rows), kb + kvh * kh, ks, nk_max, p.dqk, sc, p.tk);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t nk = visible(r);
      float* o = o0 + r * ldo;
      if (nk <= 0) {
        std::memset(o, 0, static_cast<size_t>(p.dv) * 4);
        continue;
      }
      float* s = sc + r * p.tk;
      float mx = -INFINITY;
      for (int64_t j = 0; j < nk; ++j) {
        s[j] *= p.scale;
        mx = std::max(mx, s[j]);
      }
      const float inv = 1.f / isa->exp_sum(s, nk, mx);
      for (int64_t j = 0; j < nk; ++j) s[j] *= inv;
      isa->pv_f32(s, nk, vb + kvh * vh, vs, p.dv, o);
    }
  });
}

void Engine::moe_route(const float* logits, int64_t m, int64_t ne, const RouteP& p, int32_t* idx, float* weight,
                       float* scores) {
  std::vector<float> sel(static_cast<size_t>(ne)), gscore(static_cast<size_t>(std::max(1, p.n_group)));
  std::vector<int64_t> order(static_cast<size_t>(ne)), gorder(gscore.size());
  const bool grouped = p.method != RouteMethod::Greedy;
  const int64_t gsize = grouped ? ne / p.n_group : ne;
  // Stable descending order: equal scores keep the lower index first.
  auto topk = [](const std::vector<float>& v, std::vector<int64_t>& ord, int64_t n, int64_t k) {
    for (int64_t i = 0; i < n; ++i) ord[i] = i;
    std::partial_sort(ord.begin(), ord.begin() + k, ord.begin() + n, [&](int64_t a, int64_t b) {
      return v[a] > v[b] || (v[a] == v[b] && a < b);
    });
  };
  for (int64_t r = 0; r < m; ++r) {
    const float* l = logits + r * ne;
    float* s = scores + r * ne;
    if (p.scoring == Scoring::Softmax) {
      float mx = -INFINITY;
      for (int64_t e = 0; e < ne; ++e) mx = std::max(mx, l[e]);
      double sum = 0;
      for (int64_t e = 0; e < ne; ++e) {
        s[e] = std::exp(l[e] - mx);
        sum += s[e];
      }
      const float inv = static_cast<float>(1.0 / sum);
      for (int64_t e = 0; e < ne; ++e) s[e] *= inv;
    } else {
      for (int64_t e = 0; e < ne; ++e) s[e] = 1.f / (1.f + std::exp(-l[e]));
    }
    for (int64_t e = 0; e < ne; ++e)
      sel[e] = s[e] + (p.method == RouteMethod::NoauxTc && p.bias ? p.bias[e] : 0.f);
    if (grouped) {
      for (int64_t g = 0; g < p.n_group; ++g) {
        const float* gs = sel.data() + g * gsize;
        if (p.method == RouteMethod::GroupLimitedGreedy) {
          float mx = -INFINITY;
          for (int64_t e = 0; e < gsize; ++e) mx = std::max(mx, gs[e]);
          gscore[g] = mx;
        } else {  // noaux_tc: sum of the two best in the group
          float b1 = -INFINITY, b2 = -INFINITY;
          for (int64_t e = 0; e < gsize; ++e) {
            if (gs[e] > b1) {
              b2 = b1;
              b1 = gs[e];
            } else if (gs[e] > b2) {
              b2 = gs[e];
            }
          }
          gscore[g] = gsize >= 2 ? b1 + b2 : b1;
        }
      }
      topk(gscore, gorder, p.n_group, p.topk_group);
      std::vector<char> keep(static_cast<size_t>(p.n_group), 0);
      for (int64_t g = 0; g < p.topk_group; ++g) keep[gorder[g]] = 1;
      for (int64_t e = 0; e < ne; ++e)
        if (!keep[e / gsize]) sel[e] = 0.f;
    }
    topk(sel, order, ne, p.top_k);
    float wsum = 0.f;
    for (int k = 0; k < p.top_k; ++k) {
      const int64_t e = order[k];
      idx[r * p.top_k + k] = static_cast<int32_t>(e);
      // group_limited_greedy weighs with the masked scores, noaux_tc with the un-biased scores.
      const float w = p.method == RouteMethod::GroupLimitedGreedy ? sel[e] : s[e];
      weight[r * p.top_k + k] = w;
      wsum += w;
    }
    for (int k = 0; k < p.top_k; ++k) {
      float& w = weight[r * p.top_k + k];
      if (p.top_k > 1 && p.norm_topk_prob) w = w / (wsum + 1e-20f) * p.scaling;
      else w = w * p.scaling;
    }
  }
}

void Engine::moe_experts(const float* x, int64_t m, int64_t h, const std::vector<ExpertW>& ex, const int32_t* idx,
                         const float* weight, int top_k, float* out) {
  const int64_t ne = static_cast<int64_t>(ex.size());
  // Group the (token, slot) pairs by expert, tokens ascending inside each expert.
  std::vector<int64_t> count(static_cast<size_t>(ne) + 1, 0);
  for (int64_t i = 0; i < m * top_k; ++i) ++count[idx[i] + 1];
  for (int64_t e = 0; e < ne; ++e) count[e + 1] += count[e];
  const std::vector<int64_t> start(count.begin(), count.end());
  std::vector<int64_t> token(static_cast<size_t>(m * top_k));  // pair -> token, grouped
  std::vector<int64_t> slot_pos(static_cast<size_t>(m * top_k));  // (token, slot) -> position in the grouping
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t t = 0; t < m; ++t)
      for (int k = 0; k < top_k; ++k) {
        const int64_t e = idx[t * top_k + k];
        const int64_t p = fill[e]++;
        token[p] = t;
        slot_pos[t * top_k + k] = p;
      }
  }
  std::vector<int64_t> used;
  int64_t inter_max = 0, kp_in = 0;
  bool need_f32 = false, need_q8_in = false;
  for (int64_t e = 0; e < ne; ++e) {
    if (start[e + 1] == start[e]) continue;
    used.push_back(e);
    const ExpertW& w = ex[e];
    inter_max = std::max(inter_max, w.gate->n);
    for (const Weight* lw : {w.gate, w.up})
      if (lw->fmt == Fmt::Q8) {
        need_q8_in = true;
        kp_in = lw->kp;
      } else {
        need_f32 = true;
      }
  }
  const int64_t pairs = m * top_k;
  // Inputs per pair, in the grouped order: f32 rows and/or int8 rows (quantized once per token).
  if (need_f32) {
    xg_.resize(static_cast<size_t>(pairs * h));
    for (int64_t p = 0; p < pairs; ++p) std::memcpy(&xg_[p * h], x + token[p] * h, static_cast<size_t>(h) * 4);
  }
  if (need_q8_in) {
    const int64_t nb = kp_in / kQ8Block;
    qx_.resize(static_cast<size_t>(m * kp_in));
    qs_.resize(static_cast<size_t>(m * nb));
    quantize_rows(x, m, h, kp_in, qx_.data(), qs_.data(), true);
    xgq_.resize(static_cast<size_t>(pairs * kp_in));
    xgs_.resize(static_cast<size_t>(pairs * nb));
    for (int64_t p = 0; p < pairs; ++p) {
      std::memcpy(&xgq_[p * kp_in], &qx_[token[p] * kp_in], static_cast<size_t>(kp_in));
      std::memcpy(&xgs_[p * nb], &qs_[token[p] * nb], static_cast<size_t>(nb) * 4);
    }
  }
  hbuf_.resize(static_cast<size_t>(pairs * inter_max));
  ybuf_.resize(static_cast<size_t>(pairs * h));
  ensure_wide(static_cast<size_t>(4 * std::max(h, inter_max)));
  ensure_scratch(static_cast<size_t>(2 * kExpertRowChunk * std::max<int64_t>(1, pairs)));

  // Phase 1: hidden = silu(gate x) * up x, per (expert, chunk of intermediate rows).
  std::vector<std::pair<int64_t, int64_t>> tasks;  // (expert, row0)
  for (int64_t e : used)
    for (int64_t r = 0; r < ex[e].gate->n; r += kExpertRowChunk) tasks.emplace_back(e, r);
  pool_->run(static_cast<int64_t>(tasks.size()), [&](int64_t ti, int thread) {
    const int64_t e = tasks[ti].first, r0 = tasks[ti].second;
    const ExpertW& w = ex[e];
    const int64_t inter = w.gate->n, r1 = std::min(inter, r0 + kExpertRowChunk), nr = r1 - r0;
    const int64_t p0 = start[e], me = start[e + 1] - start[e];
    float* g = scratch_[thread].data();
    float* u = g + me * kExpertRowChunk;
    auto in_f = need_f32 ? &xg_[p0 * h] : nullptr;
    const int8_t* in_q = need_q8_in ? &xgq_[p0 * kp_in] : nullptr;
    const float* in_s = need_q8_in ? &xgs_[p0 * (kp_in / kQ8Block)] : nullptr;
    linear_rows(*w.gate, in_f, in_q, in_s, me, r0, r1, g, nr, thread);
    linear_rows(*w.up, in_f, in_q, in_s, me, r0, r1, u, nr, thread);
    for (int64_t t = 0; t < me; ++t) {
      float* hr = &hbuf_[(p0 + t) * inter_max];
      for (int64_t j = 0; j < nr; ++j) hr[r0 + j] = silu1(g[t * nr + j]) * u[t * nr + j];
    }
  });

  // Phase 2: int8 copies of the hidden rows for q8 down projections.
  int64_t kp_dn = 0;
  for (int64_t e : used)
    if (ex[e].down->fmt == Fmt::Q8) kp_dn = std::max(kp_dn, ex[e].down->kp);
  if (kp_dn > 0) {
    const int64_t nb = kp_dn / kQ8Block;
    hq_.resize(static_cast<size_t>(pairs * kp_dn));
    hs_.resize(static_cast<size_t>(pairs * nb));
    auto quantize_expert = [&](int64_t ui) {
      const int64_t e = used[ui];
      const Weight& d = *ex[e].down;
      if (d.fmt != Fmt::Q8) return;
      const int64_t p0 = start[e], me = start[e + 1] - start[e];
      for (int64_t t = 0; t < me; ++t)
        quantize_rows(&hbuf_[(p0 + t) * inter_max], 1, d.k, d.kp, &hq_[(p0 + t) * kp_dn], &hs_[(p0 + t) * nb],
                      false);
    };
    // Decode-sized work (a few hidden rows) is cheaper than waking the pool.
    if (pairs * inter_max < kParallelElems) {
      for (size_t ui = 0; ui < used.size(); ++ui) quantize_expert(static_cast<int64_t>(ui));
    } else {
      pool_->run(static_cast<int64_t>(used.size()), [&](int64_t ui, int) { quantize_expert(ui); });
    }
  }

  // Phase 3: y = down(hidden), per (expert, chunk of output rows).
  tasks.clear();
  for (int64_t e : used)
    for (int64_t r = 0; r < h; r += kExpertRowChunk) tasks.emplace_back(e, r);
  pool_->run(static_cast<int64_t>(tasks.size()), [&](int64_t ti, int thread) {
    const int64_t e = tasks[ti].first, r0 = tasks[ti].second, r1 = std::min(h, r0 + kExpertRowChunk);
    const Weight& d = *ex[e].down;
    const int64_t p0 = start[e], me = start[e + 1] - start[e];
    // Rows of hbuf_/hq_ have strides inter_max/kp_dn, which the kernels take as k/kp: only valid when equal,
    // so copy into scratch otherwise.
    if (d.fmt == Fmt::Q8) {
      if (d.kp == kp_dn) {
        linear_rows(d, nullptr, &hq_[p0 * kp_dn], &hs_[p0 * (kp_dn / kQ8Block)], me, r0, r1, &ybuf_[p0 * h + r0], h,
                    thread);
        return;
      }
    } else if (d.k == inter_max) {
      linear_rows(d, &hbuf_[p0 * inter_max], nullptr, nullptr, me, r0, r1, &ybuf_[p0 * h + r0], h, thread);
      return;
    }
    // Mixed expert sizes: one token at a time keeps the strides right.
    for (int64_t t = 0; t < me; ++t) {
      if (d.fmt == Fmt::Q8)
        linear_rows(d, nullptr, &hq_[(p0 + t) * kp_dn], &hs_[(p0 + t) * (kp_dn / kQ8Block)], 1, r0, r1,
                    &ybuf_[(p0 + t) * h + r0], h, thread);
      else
        linear_rows(d, &hbuf_[(p0 + t) * inter_max], nullptr, nullptr, 1, r0, r1, &ybuf_[(p0 + t) * h + r0], h,
                    thread);
    }
  });

  // Phase 4: weighted combine in slot order.
  auto combine = [&](int64_t a, int64_t b) {
    for (int64_t t = a; t < b; ++t) {
      float* o = out + t * h;
      std::memset(o, 0, static_cast<size_t>(h) * 4);
      for (int k = 0; k < top_k; ++k) {
        const float* y = &ybuf_[slot_pos[t * top_k + k] * h];
        isa_->axpy_f32(weight[t * top_k + k], y, o, h);
      }
    }
  };
  if (m * h < kParallelElems) combine(0, m);
  else pool_->run(m, [&](int64_t t, int) { combine(t, t + 1); });
}

}  // namespace kestrel
