// A CPU stand-in for libkestrel_cuda.so: the same C ABI (kestrel_cuda.h), computed on the host in double.
// Tests build it with the system C++ compiler so the whole host stack (shim.c's N-API marshalling, cuda.ts,
// check_ops.py's ctypes calls) runs for real on machines without a GPU. It says nothing about the CUDA kernels.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>
#include <algorithm>
#include <functional>

#include "../src/kestrel_cuda.h"

#define KC_TRY_FAKE(e) \
  do {                 \
    if ((e) != 0) return 1; \
  } while (0)

namespace {
thread_local std::string g_err;
std::vector<std::function<int()>>* g_rec = nullptr;  // ops recorded while a graph is captured
template <class F>
int defer(F f) {
  if (g_rec) {
    g_rec->push_back(f);
    return 0;
  }
  return f();
}
int fail(const std::string& s) {
  g_err = s;
  return 1;
}
}  // namespace

struct kc_weight {
  int fmt;
  int64_t n, k, kp;
  std::vector<float> w;  // decoded [n, k]
  int64_t bytes;
};

namespace {
double silu(double x) { return x / (1 + std::exp(-x)); }

void linear_ref(const float* x, int64_t m, const kc_weight* w, const float* bias, float* out) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < w->n; ++j) {
      double s = 0;
      for (int64_t c = 0; c < w->k; ++c) s += static_cast<double>(x[i * w->k + c]) * w->w[j * w->k + c];
      out[i * w->n + j] = static_cast<float>(s + (bias ? bias[j] : 0.f));
    }
}
}  // namespace

extern "C" {

int kc_abi_version(void) { return KC_ABI_VERSION; }
const char* kc_last_error(void) { return g_err.c_str(); }
int kc_init(void) { return 0; }
int kc_device_info(char* name, size_t len, int* ma, int* mi, size_t* mem, int* sms) {
  if (name && len) {
    std::strncpy(name, "CPU stand-in", len - 1);
    name[len - 1] = '\0';
  }
  *ma = 9;
  *mi = 0;
  *mem = size_t(1) << 34;
  *sms = 1;
  return 0;
}

kc_weight* kc_prepare_linear(int format, int64_t n, int64_t k, const void* data, const float* scales) {
  if (n <= 0 || k <= 0 || format < 0 || format > 2 || !data || (format == KC_Q8 && !scales)) {
    fail("prepare_linear: bad format or shape");
    return nullptr;
  }
  auto* w = new kc_weight();
  w->fmt = format;
  w->n = n;
  w->k = k;
  w->kp = (k + 31) / 32 * 32;
  w->w.resize(static_cast<size_t>(n * k));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) {
      float v;
      if (format == KC_F32) {
        v = static_cast<const float*>(data)[r * k + c];
      } else if (format == KC_BF16) {
        const uint32_t u = static_cast<uint32_t>(static_cast<const uint16_t*>(data)[r * k + c]) << 16;
        std::memcpy(&v, &u, 4);
      } else {
        const int64_t i = r * w->kp + c;
        v = static_cast<float>(static_cast<const int8_t*>(data)[i]) * scales[i / 32];
      }
      w->w[static_cast<size_t>(r * k + c)] = v;
    }
  w->bytes = n * k * 4;
  return w;
}
void kc_release_linear(kc_weight* w) { delete w; }
int64_t kc_weight_bytes(const kc_weight* w) { return w ? w->bytes : 0; }

int kc_linear(const float* x, int64_t m, const kc_weight* w, const float* bias, float* out) {
  linear_ref(x, m, w, bias, out);
  return 0;
}

int kc_rmsnorm(const float* x, int64_t m, int64_t n, const float* weight, float eps, float* out) {
  for (int64_t i = 0; i < m; ++i) {
    double ss = 0;
    for (int64_t c = 0; c < n; ++c) ss += static_cast<double>(x[i * n + c]) * x[i * n + c];
    const double r = 1 / std::sqrt(ss / n + eps);
    for (int64_t c = 0; c < n; ++c) out[i * n + c] = static_cast<float>(weight[c] * (x[i * n + c] * r));
  }
  return 0;
}

int kc_layernorm(const float* x, int64_t m, int64_t n, const float* weight, const float* bias, float eps, float* out) {
  for (int64_t i = 0; i < m; ++i) {
    double s = 0, v = 0;
    for (int64_t c = 0; c < n; ++c) s += x[i * n + c];
    const double mean = s / n;
    for (int64_t c = 0; c < n; ++c) v += (x[i * n + c] - mean) * (x[i * n + c] - mean);
    const double r = 1 / std::sqrt(v / n + eps);
    for (int64_t c = 0; c < n; ++c) out[i * n + c] = static_cast<float>((x[i * n + c] - mean) * r * weight[c] + bias[c]);
  }
  return 0;
}

int kc_unary(int op, const float* x, int64_t len, float* out) {
  for (int64_t i = 0; i < len; ++i) {
    const double v = x[i];
    out[i] = static_cast<float>(op == KC_GELU_TANH ? 0.5 * v * (1 + std::tanh(std::sqrt(2 / 3.14159265358979323846) * (v + 0.044715 * v * v * v)))
                                : op == KC_GELU_ERF ? 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)))
                                                    : silu(v));
  }
  return 0;
}

int kc_binary(int op, const float* a, const float* b, int64_t len, float* out) {
  for (int64_t i = 0; i < len; ++i)
    out[i] = static_cast<float>(op == KC_ADD ? static_cast<double>(a[i]) + b[i] : op == KC_MUL ? static_cast<double>(a[i]) * b[i] : silu(a[i]) * b[i]);
  return 0;
}

int kc_softmax(float* x, int64_t m, int64_t n) {
  std::vector<double> e(static_cast<size_t>(n));
  for (int64_t i = 0; i < m; ++i) {
    double mx = -INFINITY, s = 0;
    for (int64_t c = 0; c < n; ++c) mx = std::max(mx, static_cast<double>(x[i * n + c]));
    for (int64_t c = 0; c < n; ++c) s += (e[c] = std::exp(x[i * n + c] - mx));
    for (int64_t c = 0; c < n; ++c) x[i * n + c] = static_cast<float>(e[c] / s);
  }
  return 0;
}

int kc_embedding(const kc_weight* t, const int32_t* ids, int64_t m, float* out) {
  for (int64_t i = 0; i < m; ++i) {
    if (ids[i] < 0 || ids[i] >= t->n) return fail("embedding: token id out of range");
    std::memcpy(out + i * t->k, t->w.data() + ids[i] * t->k, static_cast<size_t>(t->k) * 4);
  }
  return 0;
}

int kc_rope(float* x, int64_t, const int32_t* g, const int32_t* pos, const float* cs, const float* sn, int64_t max_pos) {
  const int m = g[0], nh = g[1], hs = g[2], rs = g[3], off = g[4], dim = g[5], inter = g[6], half = dim / 2;
  std::vector<double> t(static_cast<size_t>(dim));
  for (int r = 0; r < m; ++r) {
    if (pos[r] < 0 || pos[r] >= max_pos) return fail("rope: position out of range");
    for (int h = 0; h < nh; ++h) {
      float* o = x + static_cast<int64_t>(r) * rs + static_cast<int64_t>(h) * hs + off;
      for (int i = 0; i < half; ++i) {
        t[i] = inter ? o[2 * i] : o[i];
        t[half + i] = inter ? o[2 * i + 1] : o[half + i];
      }
      for (int i = 0; i < half; ++i) {
        const double c = cs[static_cast<int64_t>(pos[r]) * half + i], s = sn[static_cast<int64_t>(pos[r]) * half + i];
        o[i] = static_cast<float>(t[i] * c - t[half + i] * s);
        o[half + i] = static_cast<float>(t[half + i] * c + t[i] * s);
      }
    }
  }
  return 0;
}

int kc_attention(const float* q, int64_t, const float* k, int64_t, const float* v, int64_t, float* out, int64_t, const int32_t* g, float scale) {
  const int tq = g[0], tk = g[1], nh = g[2], nkv = g[3], dqk = g[4], dv = g[5], causal = g[10], qpos0 = g[11];
  const int64_t qs = g[6], ks = g[7], vs = g[8], os = g[9];
  const int group = nh / nkv;
  std::vector<double> sc(static_cast<size_t>(std::max(tk, 1))), acc(static_cast<size_t>(dv));
  for (int i = 0; i < tq; ++i) {
    const int vis = causal ? std::min(tk, qpos0 + i + 1) : tk;
    for (int h = 0; h < nh; ++h) {
      const int gi = h / group;
      double mx = -INFINITY, sum = 0;
      for (int j = 0; j < vis; ++j) {
        double s = 0;
        for (int c = 0; c < dqk; ++c) s += static_cast<double>(q[i * qs + h * dqk + c]) * k[j * ks + gi * dqk + c];
        sc[j] = s * scale;
        mx = std::max(mx, sc[j]);
      }
      for (int j = 0; j < vis; ++j) sum += (sc[j] = std::exp(sc[j] - mx));
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int j = 0; j < vis; ++j)
        for (int c = 0; c < dv; ++c) acc[c] += sc[j] / sum * v[j * vs + gi * dv + c];
      for (int c = 0; c < dv; ++c) out[i * os + h * dv + c] = vis ? static_cast<float>(acc[c]) : 0.f;
    }
  }
  return 0;
}

int kc_moe_route(const float* logits, int64_t m, int32_t E, const int32_t* cfg, const float* bias, float scaling, int32_t* idx, float* weight, float* scores) {
  const int topk = cfg[0], scoring = cfg[1], method = cfg[2], ng = cfg[3], tg = cfg[4], norm = cfg[5], per = E / ng;
  std::vector<double> s(static_cast<size_t>(E)), sel(static_cast<size_t>(E));
  for (int64_t r = 0; r < m; ++r) {
    const float* l = logits + r * E;
    if (scoring == 0) {
      double mx = -INFINITY, sum = 0;
      for (int e = 0; e < E; ++e) mx = std::max(mx, static_cast<double>(l[e]));
      for (int e = 0; e < E; ++e) sum += (s[e] = std::exp(l[e] - mx));
      for (int e = 0; e < E; ++e) s[e] /= sum;
    } else {
      for (int e = 0; e < E; ++e) s[e] = 1 / (1 + std::exp(-static_cast<double>(l[e])));
    }
    for (int e = 0; e < E; ++e) {
      scores[r * E + e] = static_cast<float>(s[e]);
      s[e] = scores[r * E + e];
      sel[e] = method == 2 ? static_cast<float>(s[e] + (bias ? bias[e] : 0.f)) : s[e];
    }
    auto top = [](const std::vector<double>& v, int k) {
      std::vector<int> o(v.size());
      for (size_t i = 0; i < o.size(); ++i) o[i] = static_cast<int>(i);
      std::stable_sort(o.begin(), o.end(), [&](int a, int b) { return v[a] > v[b]; });
      o.resize(static_cast<size_t>(k));
      return o;
    };
    if (method != 0) {
      std::vector<double> gs(static_cast<size_t>(ng));
      for (int g = 0; g < ng; ++g) {
        std::vector<double> seg(sel.begin() + g * per, sel.begin() + (g + 1) * per);
        std::sort(seg.rbegin(), seg.rend());
        gs[g] = method == 1 ? seg[0] : (per >= 2 ? seg[0] + seg[1] : seg[0]);
      }
      const std::vector<int> keep = top(gs, tg);
      for (int g = 0; g < ng; ++g)
        if (std::find(keep.begin(), keep.end(), g) == keep.end())
          for (int e = 0; e < per; ++e) sel[g * per + e] = 0;
    }
    const std::vector<int> t = top(sel, topk);
    float sum = 0;
    for (int j = 0; j < topk; ++j) {
      idx[r * topk + j] = t[j];
      weight[r * topk + j] = static_cast<float>(method == 2 ? s[t[j]] : sel[t[j]]);
      sum += weight[r * topk + j];
    }
    const float denom = sum + 1e-20f;
    for (int j = 0; j < topk; ++j) {
      float& w = weight[r * topk + j];
      w = (topk > 1 && norm) ? (w / denom) * scaling : w * scaling;
    }
  }
  return 0;
}

int kc_moe_experts(const float* x, int64_t m, int64_t h, const kc_weight* const* ex, int32_t E, const int32_t* idx, const float* weight, int32_t topk, float* out) {
  std::vector<double> acc(static_cast<size_t>(m * h), 0.0);
  for (int64_t r = 0; r < m; ++r)
    for (int j = 0; j < topk; ++j) {
      const int e = idx[r * topk + j];
      if (e < 0 || e >= E) return fail("moeExperts: expert index out of range");
      const kc_weight *g = ex[3 * e], *u = ex[3 * e + 1], *d = ex[3 * e + 2];
      std::vector<float> gv(static_cast<size_t>(g->n)), uv(static_cast<size_t>(u->n)), y(static_cast<size_t>(h));
      linear_ref(x + r * h, 1, g, nullptr, gv.data());
      linear_ref(x + r * h, 1, u, nullptr, uv.data());
      for (size_t i = 0; i < gv.size(); ++i) gv[i] = static_cast<float>(silu(gv[i]) * uv[i]);
      linear_ref(gv.data(), 1, d, nullptr, y.data());
      for (int64_t c = 0; c < h; ++c) acc[static_cast<size_t>(r * h + c)] += static_cast<double>(weight[r * topk + j]) * y[static_cast<size_t>(c)];
    }
  for (int64_t i = 0; i < m * h; ++i) out[i] = static_cast<float>(acc[static_cast<size_t>(i)]);
  return 0;
}

void* kc_d_alloc(size_t bytes) { return ::operator new(bytes ? bytes : 16); }
void kc_d_free(void* p) { ::operator delete(p); }
int kc_d_upload(void* d, const void* s, size_t b) {
  std::memcpy(d, s, b);
  return 0;
}
int kc_d_download(void* d, const void* s, size_t b) {
  std::memcpy(d, s, b);
  return 0;
}
int kc_d_sync(void) { return 0; }
// While a graph is being captured, device ops are recorded (with their host-side arguments copied, as a CUDA
// launch copies its parameters) instead of run; kc_graph_launch replays them.
int kc_d_linear(const float* x, int64_t m, const kc_weight* w, const float* bias, float* out) {
  return defer([=] { return kc_linear(x, m, w, bias, out); });
}
int kc_d_rmsnorm(const float* x, int64_t m, int64_t n, int64_t ldx, const float* w, float eps, float* out, int64_t ldo) {
  return defer([=] {
    for (int64_t i = 0; i < m; ++i) KC_TRY_FAKE(kc_rmsnorm(x + i * ldx, 1, n, w, eps, out + i * ldo));
    return 0;
  });
}
int kc_d_embedding(const kc_weight* t, const int32_t* ids, int64_t m, float* out) {
  return defer([=] { return kc_embedding(t, ids, m, out); });
}
int kc_d_memcpy(void* d, const void* s, size_t b) {
  return defer([=] {
    std::memmove(d, s, b);
    return 0;
  });
}
int kc_d_copy_rows(float* d, int64_t ldd, const float* s, int64_t lds, int64_t rows, int64_t cols) {
  return defer([=] {
    for (int64_t r = 0; r < rows; ++r) std::memmove(d + r * ldd, s + r * lds, static_cast<size_t>(cols) * 4);
    return 0;
  });
}
int kc_d_binary(int op, const float* a, const float* b, int64_t len, float* out) {
  return defer([=] { return kc_binary(op, a, b, len, out); });
}
int kc_d_rope(float* x, const int32_t* geom, const int32_t* pos, const float* cs, const float* sn) {
  const std::vector<int32_t> g(geom, geom + 7);
  return defer([=] { return kc_rope(x, 0, g.data(), pos, cs, sn, int64_t{1} << 40); });
}
int kc_d_attention(const float* q, const float* k, const float* v, float* out, const int32_t* geom, float scale) {
  const std::vector<int32_t> g(geom, geom + 12);
  return defer([=] { return kc_attention(q, 0, k, 0, v, 0, out, 0, g.data(), scale); });
}
int kc_d_attention_at(const float* q, const float* k, const float* v, float* out, const int32_t* geom, float scale, const int32_t* base, int32_t max_tk) {
  if (!base || max_tk <= 0) return fail("attention_at: needs a device base and max_tk > 0");
  const std::vector<int32_t> g0(geom, geom + 12);
  return defer([=] {
    std::vector<int32_t> g = g0;
    g[1] += base[0];
    g[11] += base[0];
    if (g[1] > max_tk) return fail("attention_at: keys beyond max_tk");
    return kc_attention(q, 0, k, 0, v, 0, out, 0, g.data(), scale);
  });
}
int kc_d_append_rows(float* cache, int64_t width, const float* src, int64_t rows, const int32_t* base) {
  return defer([=] {
    std::memmove(cache + static_cast<int64_t>(base[0]) * width, src, static_cast<size_t>(rows * width) * 4);
    return 0;
  });
}
int kc_d_moe_route(const float* logits, int64_t m, int32_t E, const int32_t* cfg, const float* bias, float scaling, int32_t* idx, float* weight,
                   float* scores) {
  const std::vector<int32_t> c(cfg, cfg + 6);
  return defer([=] { return kc_moe_route(logits, m, E, c.data(), bias, scaling, idx, weight, scores); });
}
}  // extern "C"

struct kc_moe_group {
  std::vector<const kc_weight*> ex;
};
struct kc_graph {
  std::vector<std::function<int()>> ops;
};

extern "C" {
kc_moe_group* kc_moe_group_create(const kc_weight* const* experts, int32_t n) {
  if (n <= 0) {
    fail("moe_group_create: no experts");
    return nullptr;
  }
  return new kc_moe_group{std::vector<const kc_weight*>(experts, experts + 3 * n)};
}
void kc_moe_group_release(kc_moe_group* g) { delete g; }
int kc_d_moe_experts(const float* x, int64_t m, int64_t h, const kc_moe_group* g, const int32_t* idx, const float* weight, int32_t topk, float* out) {
  return defer([=] { return kc_moe_experts(x, m, h, g->ex.data(), static_cast<int32_t>(g->ex.size() / 3), idx, weight, topk, out); });
}
int kc_d_moe_experts_acc(const float* x, int64_t m, int64_t h, const kc_moe_group* g, const int32_t* idx, const float* weight, int32_t topk, float* out,
                         int accumulate) {
  return defer([=] {
    std::vector<float> y(static_cast<size_t>(m * h));
    KC_TRY_FAKE(kc_moe_experts(x, m, h, g->ex.data(), static_cast<int32_t>(g->ex.size() / 3), idx, weight, topk, y.data()));
    for (int64_t i = 0; i < m * h; ++i) out[i] = accumulate ? out[i] + y[static_cast<size_t>(i)] : y[static_cast<size_t>(i)];
    return 0;
  });
}
int kc_d_linear_add(const float* x, int64_t m, const kc_weight* w, const float* bias, float* out) {
  return defer([=] {
    std::vector<float> y(static_cast<size_t>(m * w->n));
    linear_ref(x, m, w, bias, y.data());
    for (int64_t i = 0; i < m * w->n; ++i) out[i] += y[static_cast<size_t>(i)];
    return 0;
  });
}
int kc_d_mla_prep(const float* q, const float* kva, const int32_t* geom, const float* w, float eps, const float* cs, const float* sn, const int32_t* pos,
                  const int32_t* base, float* cache, float* q_abs) {
  const int T = geom[0], nh = geom[1], dq = geom[2], nope = geom[3], rope = geom[4], kvl = geom[5];
  return defer([=] {
    const int lw = kvl + rope;
    std::vector<float> row(static_cast<size_t>(lw)), qrow(static_cast<size_t>(nh * dq));
    const int32_t kg[7] = {1, 1, lw, lw, kvl, rope, 1}, qg[7] = {1, nh, dq, nh * dq, nope, rope, 1};
    for (int r = 0; r < T; ++r) {
      std::memcpy(row.data(), kva + static_cast<int64_t>(r) * lw, static_cast<size_t>(lw) * 4);
      KC_TRY_FAKE(kc_rmsnorm(row.data(), 1, kvl, w, eps, row.data()));
      KC_TRY_FAKE(kc_rope(row.data(), 0, kg, pos + r, cs, sn, int64_t{1} << 40));
      std::memcpy(cache + (static_cast<int64_t>(base[0]) + r) * lw, row.data(), static_cast<size_t>(lw) * 4);
      std::memcpy(qrow.data(), q + static_cast<int64_t>(r) * nh * dq, qrow.size() * 4);
      KC_TRY_FAKE(kc_rope(qrow.data(), 0, qg, pos + r, cs, sn, int64_t{1} << 40));
      for (int h = 0; h < nh; ++h)
        std::memcpy(q_abs + (static_cast<int64_t>(r) * nh + h) * lw + kvl, qrow.data() + h * dq + nope, static_cast<size_t>(rope) * 4);
    }
    return 0;
  });
}
int kc_d_mlp(const float* x, int64_t m, const kc_moe_group* g, float* out, int accumulate) {
  if (g->ex.size() != 3) return fail("mlp: needs a group of one expert (gate, up, down)");
  if (m > 16) return fail("mlp: at most 16 rows per call");
  return defer([=] {
    const kc_weight *gw = g->ex[0], *uw = g->ex[1], *dw = g->ex[2];
    std::vector<float> gv(static_cast<size_t>(m * gw->n)), uv(gv.size()), y(static_cast<size_t>(m * dw->n));
    linear_ref(x, m, gw, nullptr, gv.data());
    linear_ref(x, m, uw, nullptr, uv.data());
    for (size_t i = 0; i < gv.size(); ++i) gv[i] = static_cast<float>(silu(gv[i]) * uv[i]);
    linear_ref(gv.data(), m, dw, nullptr, y.data());
    for (size_t i = 0; i < y.size(); ++i) out[i] = accumulate ? out[i] + y[i] : y[i];
    return 0;
  });
}
int kc_d_linear_grouped(const float* x, int64_t m, int64_t ldx, int32_t groups, int64_t xgs, const kc_weight* w, float* out, int64_t ldo, int64_t ogs) {
  if (groups <= 0 || w->n % groups != 0) return fail("linear_grouped: weight rows are not a multiple of the group count");
  return defer([=] {
    const int64_t n = w->n / groups;
    for (int64_t r = 0; r < m; ++r)
      for (int g = 0; g < groups; ++g)
        for (int64_t j = 0; j < n; ++j) {
          double s = 0;
          for (int64_t c = 0; c < w->k; ++c) s += static_cast<double>(x[r * ldx + g * xgs + c]) * w->w[static_cast<size_t>((g * n + j) * w->k + c)];
          out[r * ldo + g * ogs + j] = static_cast<float>(s);
        }
    return 0;
  });
}
int kc_d_argmax(const float* x, int64_t m, int64_t n, int32_t* out) {
  return defer([=] {
    for (int64_t r = 0; r < m; ++r) {
      int64_t b = 0;
      for (int64_t c = 1; c < n; ++c)
        if (x[r * n + c] > x[r * n + b]) b = c;
      out[r] = static_cast<int32_t>(b);
    }
    return 0;
  });
}
uint64_t kc_ws_epoch(void) { return 0; }
int kc_profiler(int) { return 0; }
int kc_set_q8_activations(int) { return 0; }  // the stand-in always computes with f32 activations
int kc_graph_begin(void) {
  if (g_rec) return fail("graph_begin: already capturing");
  g_rec = new std::vector<std::function<int()>>();
  return 0;
}
int kc_graph_end(kc_graph** out) {
  if (!g_rec) return fail("graph_end: not capturing");
  *out = new kc_graph{std::move(*g_rec)};
  delete g_rec;
  g_rec = nullptr;
  return 0;
}
int kc_graph_launch(const kc_graph* g) {
  for (const auto& f : g->ops) KC_TRY_FAKE(f());
  return 0;
}
void kc_graph_release(kc_graph* g) { delete g; }
double kc_d_copy_bandwidth(size_t, int) { return 1.0; }

}  // extern "C"
