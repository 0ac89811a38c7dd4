// N-API surface of the kernels (node-addon-api). Arguments are TypedArray views used in place (no copies);
// every size is checked against the array lengths before a kernel touches memory, so contract misuse throws
// (code E_INTERNAL) instead of corrupting memory.
#include <napi.h>

#include <cmath>
#include <string>
#include <vector>

#include "ops.h"

namespace kestrel {
void RegisterMmap(Napi::Env env, Napi::Object exports);  // mmap.cc: mapFile
namespace {

[[noreturn]] void Fail(Napi::Env env, const std::string& msg) {
  Napi::Error e = Napi::RangeError::New(env, "@kestrel/native: " + msg);
  e.Set("code", Napi::String::New(env, "E_INTERNAL"));
  throw e;
}

template <typename T, napi_typedarray_type Type>
T* View(Napi::Env env, const Napi::Value& v, const char* what, size_t need, size_t* len = nullptr) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != Type)
    Fail(env, std::string(what) + ": wrong array type");
  auto a = v.As<Napi::TypedArrayOf<T>>();
  if (a.ElementLength() < need)
    Fail(env, std::string(what) + ": array has " + std::to_string(a.ElementLength()) + " elements, needs " +
                  std::to_string(need));
  if (len) *len = a.ElementLength();
  return a.Data();
}

float* F32(Napi::Env env, const Napi::Value& v, const char* what, size_t need, size_t* len = nullptr) {
  return View<float, napi_float32_array>(env, v, what, need, len);
}
int32_t* I32(Napi::Env env, const Napi::Value& v, const char* what, size_t need, size_t* len = nullptr) {
  return View<int32_t, napi_int32_array>(env, v, what, need, len);
}

int64_t Int(Napi::Env env, const Napi::Value& v, const char* what, int64_t min = 0) {
  if (!v.IsNumber()) Fail(env, std::string(what) + ": expected a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= static_cast<double>(min)) || d != std::floor(d) || d > 9.0e15)
    Fail(env, std::string(what) + ": expected an integer >= " + std::to_string(min));
  return static_cast<int64_t>(d);
}

int64_t Prop(Napi::Env env, const Napi::Object& o, const char* key, int64_t min = 0) {
  return Int(env, o.Get(key), key, min);
}

float Num(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) Fail(env, std::string(what) + ": expected a number");
  return v.As<Napi::Number>().FloatValue();
}

// Each addon instance (the main thread and every worker_thread that loads the addon has its own napi_env) owns
// one Engine: its own thread pool, ISA choice and scratch, so two workers compute in parallel without sharing
// a lock. The env's cleanup deletes it (joining its pool threads) when the worker exits.
Engine& Eng(Napi::Env env) { return *env.GetInstanceData<Engine>(); }

// A prepared weight: the parsed view plus references that keep its arrays alive while the handle lives.
struct NativeWeight {
  Weight w;
  Napi::Reference<Napi::Value> data, scales;
  bool released = false;
};

Weight ParseWeight(Napi::Env env, const Napi::Object& o) {
  Weight w;
  const std::string fmt = o.Get("format").ToString();
  w.n = Prop(env, o, "n", 1);
  w.k = Prop(env, o, "k", 1);
  w.kp = (w.k + kQ8Block - 1) / kQ8Block * kQ8Block;
  const size_t nk = static_cast<size_t>(w.n * w.k);
  if (fmt == "f32") {
    w.fmt = Fmt::F32;
    w.data = F32(env, o.Get("data"), "weight.data (f32)", nk);
  } else if (fmt == "bf16") {
    w.fmt = Fmt::BF16;
    w.data = View<uint16_t, napi_uint16_array>(env, o.Get("data"), "weight.data (bf16)", nk);
  } else if (fmt == "q8") {
    w.fmt = Fmt::Q8;
    w.data = View<int8_t, napi_int8_array>(env, o.Get("data"), "weight.data (q8)", static_cast<size_t>(w.n * w.kp));
    w.scales = F32(env, o.Get("scales"), "weight.scales", static_cast<size_t>(w.n * w.kp / kQ8Block));
  } else {
    Fail(env, "weight.format must be f32, bf16 or q8");
  }
  return w;
}

// Resolve a (Prepared)LinearWeight: the native handle when present (no property parsing), else parse it.
const Weight& GetWeight(Napi::Env env, const Napi::Value& v, Weight& tmp) {
  if (!v.IsObject()) Fail(env, "weight: expected an object");
  const Napi::Object o = v.As<Napi::Object>();
  const Napi::Value h = o.Get("handle");
  if (h.IsExternal()) {
    const NativeWeight* nw = h.As<Napi::External<NativeWeight>>().Data();
    if (nw->released) Fail(env, "weight was released (releaseLinear / model disposed)");
    return nw->w;
  }
  tmp = ParseWeight(env, o);
  return tmp;
}

Napi::Value PrepareLinear(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Napi::Object o = info[0].As<Napi::Object>();
  auto* nw = new NativeWeight();
  try {
    nw->w = ParseWeight(env, o);
  } catch (...) {
    delete nw;
    throw;
  }
  nw->data = Napi::Persistent(o.Get("data"));
  if (nw->w.fmt == Fmt::Q8) nw->scales = Napi::Persistent(o.Get("scales"));
  return Napi::External<NativeWeight>::New(env, nw, [](Napi::Env, NativeWeight* p) { delete p; });
}

// Drop the handle's references now instead of at garbage collection (the model's dispose()).
Napi::Value ReleaseLinear(const Napi::CallbackInfo& info) {
  if (info[0].IsExternal()) {
    NativeWeight* nw = info[0].As<Napi::External<NativeWeight>>().Data();
    nw->data.Reset();
    nw->scales.Reset();
    nw->w.data = nullptr;
    nw->w.scales = nullptr;
    nw->released = true;
  }
  return info.Env().Undefined();
}

Napi::Value Linear(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t m = Int(env, info[1], "m");
  Weight tmp;
  const Weight& w = GetWeight(env, info[2], tmp);
  const float* x = F32(env, info[0], "x", static_cast<size_t>(m * w.k));
  const float* bias = info[3].IsNull() || info[3].IsUndefined() ? nullptr : F32(env, info[3], "bias", w.n);
  float* out = F32(env, info[4], "out", static_cast<size_t>(m * w.n));
  Eng(info.Env()).linear(x, m, w, bias, out);
  return env.Undefined();
}

Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t m = Int(env, info[1], "m"), n = Int(env, info[2], "n", 1);
  const float* x = F32(env, info[0], "x", m * n);
  const float* w = F32(env, info[3], "weight", n);
  float* out = F32(env, info[5], "out", m * n);
  Eng(info.Env()).rmsnorm(x, m, n, w, Num(env, info[4], "eps"), out);
  return env.Undefined();
}

Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t m = Int(env, info[1], "m"), n = Int(env, info[2], "n", 1);
  const float* x = F32(env, info[0], "x", m * n);
  const float* w = F32(env, info[3], "weight", n);
  const float* b = F32(env, info[4], "bias", n);
  float* out = F32(env, info[6], "out", m * n);
  Eng(info.Env()).layernorm(x, m, n, w, b, Num(env, info[5], "eps"), out);
  return env.Undefined();
}

Napi::Value Gelu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t n = 0;
  const float* x = F32(env, info[0], "x", 0, &n);
  float* out = F32(env, info[1], "out", n);
  const std::string approx = info[2].ToString();
  if (approx != "tanh" && approx != "erf") Fail(env, "gelu approx must be tanh or erf");
  Eng(info.Env()).gelu(x, out, static_cast<int64_t>(n), approx == "tanh");
  return env.Undefined();
}

Napi::Value Silu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t n = 0;
  const float* x = F32(env, info[0], "x", 0, &n);
  Eng(info.Env()).silu(x, F32(env, info[1], "out", n), static_cast<int64_t>(n));
  return env.Undefined();
}

Napi::Value Swiglu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t n = 0;
  const float* g = F32(env, info[0], "gate", 0, &n);
  const float* u = F32(env, info[1], "up", n);
  Eng(info.Env()).swiglu(g, u, F32(env, info[2], "out", n), static_cast<int64_t>(n));
  return env.Undefined();
}

Napi::Value Softmax(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t m = Int(env, info[1], "m"), n = Int(env, info[2], "n", 1);
  Eng(info.Env()).softmax(F32(env, info[0], "x", m * n), m, n);
  return env.Undefined();
}

Napi::Value AddMul(const Napi::CallbackInfo& info, bool is_add) {
  Napi::Env env = info.Env();
  size_t n = 0;
  const float* a = F32(env, info[0], "a", 0, &n);
  const float* b = F32(env, info[1], "b", n);
  float* out = F32(env, info[2], "out", n);
  if (is_add) Eng(info.Env()).add(a, b, out, static_cast<int64_t>(n));
  else Eng(info.Env()).mul(a, b, out, static_cast<int64_t>(n));
  return env.Undefined();
}
Napi::Value Add(const Napi::CallbackInfo& info) { return AddMul(info, true); }
Napi::Value Mul(const Napi::CallbackInfo& info) { return AddMul(info, false); }

Napi::Value Embedding(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Weight tmp;
  const Weight& t = GetWeight(env, info[0], tmp);
  size_t count = 0;
  const int32_t* ids = I32(env, info[1], "ids", 0, &count);
  for (size_t i = 0; i < count; ++i)
    if (ids[i] < 0 || ids[i] >= t.n) Fail(env, "embedding: id " + std::to_string(ids[i]) + " out of range");
  float* out = F32(env, info[2], "out", count * t.k);
  Eng(info.Env()).embedding(t, ids, static_cast<int64_t>(count), out);
  return env.Undefined();
}

Napi::Value Rope(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Napi::Object o = info[1].As<Napi::Object>();
  RopeP p;
  p.m = Prop(env, o, "m");
  p.n_heads = Prop(env, o, "nHeads", 1);
  p.head_stride = Prop(env, o, "headStride");
  p.row_stride = Prop(env, o, "rowStride");
  p.offset = Prop(env, o, "offset");
  p.dim = Prop(env, o, "dim", 2);
  p.interleaved = o.Get("interleaved").ToBoolean();
  if (p.dim % 2) Fail(env, "rope: dim must be even");
  const int64_t half = p.dim / 2;
  const int32_t* pos = I32(env, info[2], "positions", p.m);
  size_t clen = 0;
  const float* c = F32(env, info[3], "cos", 0, &clen);
  const float* s = F32(env, info[4], "sin", clen);
  const int64_t max_pos = static_cast<int64_t>(clen) / half;
  for (int64_t r = 0; r < p.m; ++r)
    if (pos[r] < 0 || pos[r] >= max_pos) Fail(env, "rope: position " + std::to_string(pos[r]) + " outside the table");
  const int64_t need = p.m == 0 ? 0 : (p.m - 1) * p.row_stride + (p.n_heads - 1) * p.head_stride + p.offset + p.dim;
  float* x = F32(env, info[0], "x", need);
  Eng(info.Env()).rope(x, p, pos, c, s);
  return env.Undefined();
}

Napi::Value Attention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Napi::Object o = info[4].As<Napi::Object>();
  AttnParams p;
  p.tq = Prop(env, o, "tq");
  p.tk = Prop(env, o, "tk");
  p.n_heads = Prop(env, o, "nHeads", 1);
  p.n_kv_heads = Prop(env, o, "nKvHeads", 1);
  p.dqk = Prop(env, o, "dqk", 1);
  p.dv = Prop(env, o, "dv", 1);
  p.q_stride = Prop(env, o, "qStride");
  p.k_stride = Prop(env, o, "kStride");
  p.v_stride = Prop(env, o, "vStride");
  p.out_stride = Prop(env, o, "outStride");
  p.scale = Num(env, o.Get("scale"), "scale");
  p.causal = o.Get("causal").ToBoolean();
  p.q_pos0 = p.causal ? Prop(env, o, "qPos0") : 0;
  if (p.n_heads % p.n_kv_heads) Fail(env, "attention: nHeads must be a multiple of nKvHeads");
  auto need = [](int64_t rows, int64_t stride, int64_t width) { return rows == 0 ? 0 : (rows - 1) * stride + width; };
  const float* q = F32(env, info[0], "q", need(p.tq, p.q_stride, p.n_heads * p.dqk));
  const float* k = F32(env, info[1], "k", need(p.tk, p.k_stride, p.n_kv_heads * p.dqk));
  const float* v = F32(env, info[2], "v", need(p.tk, p.v_stride, p.n_kv_heads * p.dv));
  float* out = F32(env, info[3], "out", need(p.tq, p.out_stride, p.n_heads * p.dv));
  Eng(info.Env()).attention(q, k, v, out, p);
  return env.Undefined();
}

Napi::Value MoeRoute(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t m = Int(env, info[1], "m"), ne = Int(env, info[2], "nExperts", 1);
  const Napi::Object o = info[3].As<Napi::Object>();
  RouteP p;
  p.top_k = static_cast<int>(Prop(env, o, "topK", 1));
  const std::string scoring = o.Get("scoring").ToString(), method = o.Get("method").ToString();
  if (scoring == "softmax") p.scoring = Scoring::Softmax;
  else if (scoring == "sigmoid") p.scoring = Scoring::Sigmoid;
  else Fail(env, "moeRoute: scoring must be softmax or sigmoid");
  if (method == "greedy") p.method = RouteMethod::Greedy;
  else if (method == "group_limited_greedy") p.method = RouteMethod::GroupLimitedGreedy;
  else if (method == "noaux_tc") p.method = RouteMethod::NoauxTc;
  else Fail(env, "moeRoute: unknown method " + method);
  p.n_group = static_cast<int>(Prop(env, o, "nGroup", 1));
  p.topk_group = static_cast<int>(Prop(env, o, "topkGroup", 1));
  if (p.top_k > ne) Fail(env, "moeRoute: topK > nExperts");
  if (p.method != RouteMethod::Greedy && (ne % p.n_group || p.topk_group > p.n_group))
    Fail(env, "moeRoute: nExperts must be a multiple of nGroup and topkGroup <= nGroup");
  const Napi::Value bias = o.Get("bias");
  p.bias = bias.IsNull() || bias.IsUndefined() ? nullptr : F32(env, bias, "bias", ne);
  p.norm_topk_prob = o.Get("normTopkProb").ToBoolean();
  p.scaling = Num(env, o.Get("scalingFactor"), "scalingFactor");
  const float* logits = F32(env, info[0], "logits", m * ne);
  int32_t* idx = I32(env, info[4], "idx", m * p.top_k);
  float* weight = F32(env, info[5], "weight", m * p.top_k);
  float* scores = F32(env, info[6], "scores", m * ne);
  Eng(info.Env()).moe_route(logits, m, ne, p, idx, weight, scores);
  return env.Undefined();
}

Napi::Value MoeExperts(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t m = Int(env, info[1], "m"), h = Int(env, info[2], "h", 1);
  if (!info[3].IsArray()) Fail(env, "moeExperts: experts must be an array");
  const Napi::Array arr = info[3].As<Napi::Array>();
  const int64_t ne = arr.Length();
  const int top_k = static_cast<int>(Int(env, info[6], "topK", 1));
  const float* x = F32(env, info[0], "x", m * h);
  const int32_t* idx = I32(env, info[4], "idx", m * top_k);
  const float* weight = F32(env, info[5], "weight", m * top_k);
  float* out = F32(env, info[7], "out", m * h);
  // Only the experts some token routes to are unwrapped.
  std::vector<ExpertW> ex(static_cast<size_t>(ne));
  std::vector<Weight> tmp(static_cast<size_t>(3 * ne));
  for (int64_t i = 0; i < m * top_k; ++i) {
    const int64_t e = idx[i];
    if (e < 0 || e >= ne) Fail(env, "moeExperts: expert index " + std::to_string(e) + " out of range");
    ExpertW& w = ex[e];
    if (w.gate) continue;
    const Napi::Value v = arr.Get(static_cast<uint32_t>(e));
    if (!v.IsObject()) Fail(env, "moeExperts: experts[" + std::to_string(e) + "] is not an object");
    const Napi::Object o = v.As<Napi::Object>();
    w.gate = &GetWeight(env, o.Get("gate"), tmp[3 * e]);
    w.up = &GetWeight(env, o.Get("up"), tmp[3 * e + 1]);
    w.down = &GetWeight(env, o.Get("down"), tmp[3 * e + 2]);
    if (w.gate->k != h || w.up->k != h || w.up->n != w.gate->n || w.down->k != w.gate->n || w.down->n != h)
      Fail(env, "moeExperts: expert " + std::to_string(e) + " has shapes that do not match h");
    if (w.gate->fmt == Fmt::Q8 && w.up->fmt == Fmt::Q8 && w.gate->kp != w.up->kp)
      Fail(env, "moeExperts: inconsistent q8 padding");
  }
  Eng(info.Env()).moe_experts(x, m, h, ex, idx, weight, top_k, out);
  return env.Undefined();
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Engine& e = Eng(env);
  Napi::Object o = Napi::Object::New(env);
  o.Set("isa", e.isa());
  o.Set("threads", e.threads());
  const auto isas = e.supported_isas();
  Napi::Array a = Napi::Array::New(env, isas.size());
  for (size_t i = 0; i < isas.size(); ++i) a.Set(static_cast<uint32_t>(i), isas[i]);
  o.Set("supportedIsas", a);
  return o;
}

Napi::Value ProbeMachine(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t mb = info.Length() > 0 && !info[0].IsUndefined() ? Int(env, info[0], "bufferMb", 1) : 256;
  const Probe p = Eng(env).probe(mb);
  Napi::Object o = Napi::Object::New(env);
  o.Set("readGBps", p.read_gbps);
  o.Set("f32Gflops", p.f32_gflops);
  o.Set("int8Gops", p.i8_gops);
  return o;
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Eng(info.Env()).set_threads(static_cast<int>(Int(info.Env(), info[0], "threads")));
  return info.Env().Undefined();
}

Napi::Value SetIsa(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), Eng(info.Env()).set_isa(info[0].ToString()));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData<Engine>(new Engine());
  RegisterMmap(env, exports);
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("setIsa", Napi::Function::New(env, SetIsa));
  exports.Set("probe", Napi::Function::New(env, ProbeMachine));
  exports.Set("prepareLinear", Napi::Function::New(env, PrepareLinear));
  exports.Set("releaseLinear", Napi::Function::New(env, ReleaseLinear));
  exports.Set("linear", Napi::Function::New(env, Linear));
  exports.Set("rmsnorm", Napi::Function::New(env, RmsNorm));
  exports.Set("layernorm", Napi::Function::New(env, LayerNorm));
  exports.Set("gelu", Napi::Function::New(env, Gelu));
  exports.Set("silu", Napi::Function::New(env, Silu));
  exports.Set("swiglu", Napi::Function::New(env, Swiglu));
  exports.Set("softmax", Napi::Function::New(env, Softmax));
  exports.Set("add", Napi::Function::New(env, Add));
  exports.Set("mul", Napi::Function::New(env, Mul));
  exports.Set("embedding", Napi::Function::New(env, Embedding));
  exports.Set("rope", Napi::Function::New(env, Rope));
  exports.Set("attention", Napi::Function::New(env, Attention));
  exports.Set("moeRoute", Napi::Function::New(env, MoeRoute));
  exports.Set("moeExperts", Napi::Function::New(env, MoeExperts));
  return exports;
}

}  // namespace
}  // namespace kestrel

static Napi::Object InitKestrelNative(Napi::Env env, Napi::Object exports) { return kestrel::Init(env, exports); }

NODE_API_MODULE(kestrel_native, InitKestrelNative)
