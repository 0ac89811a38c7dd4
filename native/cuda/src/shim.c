/*
 * kestrel_cuda.node: a thin N-API module that dlopen()s libkestrel_cuda.so at run time, so it loads
 * (and can say why the GPU path is unavailable) on machines without the library, a driver or a GPU.
 * Shape checks happen in native/lib/cuda.ts before any call reaches here; this layer only converts
 * JavaScript values to pointers and turns library failures into exceptions carrying kc_last_error().
 */
#include <dlfcn.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kestrel_cuda.h"

typedef struct {
  int (*abi_version)(void);
  const char* (*last_error)(void);
  int (*init)(void);
  int (*device_info)(char*, size_t, int*, int*, size_t*, int*);
  kc_weight* (*prepare_linear)(int, int64_t, int64_t, const void*, const float*);
  void (*release_linear)(kc_weight*);
  int64_t (*weight_bytes)(const kc_weight*);
  int (*linear)(const float*, int64_t, const kc_weight*, const float*, float*);
  int (*rmsnorm)(const float*, int64_t, int64_t, const float*, float, float*);
  int (*layernorm)(const float*, int64_t, int64_t, const float*, const float*, float, float*);
  int (*unary)(int, const float*, int64_t, float*);
  int (*binary)(int, const float*, const float*, int64_t, float*);
  int (*softmax)(float*, int64_t, int64_t);
  int (*embedding)(const kc_weight*, const int32_t*, int64_t, float*);
  int (*rope)(float*, int64_t, const int32_t*, const int32_t*, const float*, const float*, int64_t);
  int (*attention)(const float*, int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t, const int32_t*, float);
  int (*moe_route)(const float*, int64_t, int32_t, const int32_t*, const float*, float, int32_t*, float*, float*);
  int (*moe_experts)(const float*, int64_t, int64_t, const kc_weight* const*, int32_t, const int32_t*, const float*, int32_t, float*);
  double (*copy_bandwidth)(size_t, int);
  void* (*d_alloc)(size_t);
  void (*d_free)(void*);
  int (*d_upload)(void*, const void*, size_t);
  int (*d_download)(void*, const void*, size_t);
  int (*d_sync)(void);
  int (*d_memcpy)(void*, const void*, size_t);
  int (*d_copy_rows)(float*, int64_t, const float*, int64_t, int64_t, int64_t);
  int (*d_linear)(const float*, int64_t, const kc_weight*, const float*, float*);
  int (*d_rmsnorm)(const float*, int64_t, int64_t, int64_t, const float*, float, float*, int64_t);
  int (*d_embedding)(const kc_weight*, const int32_t*, int64_t, float*);
  int (*d_binary)(int, const float*, const float*, int64_t, float*);
  int (*d_rope)(float*, const int32_t*, const int32_t*, const float*, const float*);
  int (*d_attention)(const float*, const float*, const float*, float*, const int32_t*, float);
  int (*d_moe_route)(const float*, int64_t, int32_t, const int32_t*, const float*, float, int32_t*, float*, float*);
  kc_moe_group* (*moe_group_create)(const kc_weight* const*, int32_t);
  void (*moe_group_release)(kc_moe_group*);
  int (*d_moe_experts)(const float*, int64_t, int64_t, const kc_moe_group*, const int32_t*, const float*, int32_t, float*);
  int (*d_linear_grouped)(const float*, int64_t, int64_t, int32_t, int64_t, const kc_weight*, float*, int64_t, int64_t);
  int (*d_argmax)(const float*, int64_t, int64_t, int32_t*);
  int (*d_attention_at)(const float*, const float*, const float*, float*, const int32_t*, float, const int32_t*, int32_t);
  int (*d_append_rows)(float*, int64_t, const float*, int64_t, const int32_t*);
  uint64_t (*ws_epoch)(void);
  int (*graph_begin)(void);
  int (*graph_end)(kc_graph**);
  int (*graph_launch)(const kc_graph*);
  void (*graph_release)(kc_graph*);
  int (*profiler)(int);
  int (*set_q8_activations)(int);
  int (*d_moe_experts_acc)(const float*, int64_t, int64_t, const kc_moe_group*, const int32_t*, const float*, int32_t, float*, int);
  int (*d_linear_add)(const float*, int64_t, const kc_weight*, const float*, float*);
  int (*d_mlp)(const float*, int64_t, const kc_moe_group*, float*, int);
  int (*d_mla_prep)(const float*, const float*, const int32_t*, const float*, float, const float*, const float*, const int32_t*, const int32_t*, float*,
                    float*);
} Lib;

static Lib lib;
static int lib_ready = 0;

/* Library objects that JavaScript holds (a prepared weight, an expert group, a captured graph): each is released
   once, explicitly or by the garbage collector. The kind refuses one where another is expected. */
typedef enum { K_WEIGHT = 0, K_GROUP = 1, K_GRAPH = 2 } Kind;
static const char* const kind_name[] = {"weight", "expert group", "graph"};
typedef struct {
  Kind kind;
  void* p;
} Handle;

#define CALL(env, call)                                   \
  do {                                                    \
    if ((call) != napi_ok) {                              \
      napi_throw_error((env), NULL, "N-API call failed: " #call); \
      return NULL;                                        \
    }                                                     \
  } while (0)

static napi_value throw_lib(napi_env env) {
  napi_throw_error(env, "E_CUDA", lib.last_error());
  return NULL;
}

static int need_lib(napi_env env) {
  if (!lib_ready) {
    napi_throw_error(env, "E_CUDA", "the CUDA library is not open (call open() first)");
    return 0;
  }
  return 1;
}

/* Data pointer and element count of a TypedArray; null/undefined gives NULL when allowed. */
static int typed(napi_env env, napi_value v, void** data, size_t* len, int nullable) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return 0;
  if (nullable && (t == napi_null || t == napi_undefined)) {
    *data = NULL;
    if (len) *len = 0;
    return 1;
  }
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) {
    napi_throw_type_error(env, NULL, "expected a TypedArray");
    return 0;
  }
  napi_typedarray_type tt;
  size_t n;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &tt, &n, data, &ab, &off) != napi_ok) return 0;
  if (len) *len = n;
  return 1;
}

static int num(napi_env env, napi_value v, double* out) {
  if (napi_get_value_double(env, v, out) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a number");
    return 0;
  }
  return 1;
}

static void release_object(Kind kind, void* p) {
  if (!p || !lib_ready) return;
  if (kind == K_WEIGHT) lib.release_linear((kc_weight*)p);
  else if (kind == K_GROUP) lib.moe_group_release((kc_moe_group*)p);
  else lib.graph_release((kc_graph*)p);
}

static void finalize_handle(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  Handle* h = (Handle*)data;
  release_object(h->kind, h->p);
  free(h);
}

/* p as an external handle of `kind`; p is released when that fails. */
static napi_value wrap_handle(napi_env env, Kind kind, void* p) {
  Handle* h = (Handle*)malloc(sizeof(Handle));
  if (!h) {
    release_object(kind, p);
    napi_throw_error(env, NULL, "out of host memory");
    return NULL;
  }
  h->kind = kind;
  h->p = p;
  napi_value ext;
  if (napi_create_external(env, h, finalize_handle, NULL, &ext) != napi_ok) {
    release_object(kind, p);
    free(h);
    napi_throw_error(env, NULL, "napi_create_external failed");
    return NULL;
  }
  /* Device memory is not reported to V8 as external memory: it is not host heap, and GBs of weights would
     only make V8 collect more often. Models free it eagerly (dispose). */
  return ext;
}

/* The handle v when it is one of `kind` (else a type error); with `live`, a released one is an error too. */
static Handle* handle_arg(napi_env env, napi_value v, Kind kind, int live) {
  Handle* h = NULL;
  char msg[64];
  if (napi_get_value_external(env, v, (void**)&h) != napi_ok || !h || h->kind != kind) {
    snprintf(msg, sizeof msg, "expected a CUDA %s handle", kind_name[kind]);
    napi_throw_type_error(env, NULL, msg);
    return NULL;
  }
  if (live && !h->p) {
    snprintf(msg, sizeof msg, "this %s was released", kind_name[kind]);
    napi_throw_error(env, "E_CUDA", msg);
    return NULL;
  }
  return h;
}

static int handle_of(napi_env env, napi_value v, kc_weight** w) {
  Handle* h = handle_arg(env, v, K_WEIGHT, 1);
  if (!h) return 0;
  *w = (kc_weight*)h->p;
  return 1;
}

static int group_of(napi_env env, napi_value v, kc_moe_group** g) {
  Handle* h = handle_arg(env, v, K_GROUP, 1);
  if (!h) return 0;
  *g = (kc_moe_group*)h->p;
  return 1;
}

#define ARGS(n)                                                   \
  size_t argc = (n);                                              \
  napi_value argv[(n) > 0 ? (n) : 1];                             \
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL)); \
  if (argc < (n)) {                                               \
    napi_throw_type_error(env, NULL, "too few arguments");        \
    return NULL;                                                  \
  }                                                               \
  if (!need_lib(env)) return NULL

#define TA(i, var, nullable)        \
  void* var;                        \
  size_t var##_len;                 \
  if (!typed(env, argv[i], &var, &var##_len, nullable)) return NULL
#define NUM(i, var) \
  double var;       \
  if (!num(env, argv[i], &var)) return NULL
#define WEIGHT(i, var) \
  kc_weight* var;      \
  if (!handle_of(env, argv[i], &var)) return NULL
#define DONE(rc)                      \
  if ((rc) != 0) return throw_lib(env); \
  return NULL

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[4096];
  size_t plen = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &plen) != napi_ok) {
    napi_throw_type_error(env, NULL, "open(path: string)");
    return NULL;
  }
  if (lib_ready) return NULL;
  void* so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!so) {
    napi_throw_error(env, "E_CUDA_LIBRARY", dlerror());
    return NULL;
  }
  Lib l;
#define SYM(field, name)                                                  \
  *(void**)(&l.field) = dlsym(so, name);                                  \
  if (!l.field) {                                                         \
    char msg[4400];                                                       \
    snprintf(msg, sizeof msg, "%.4000s lacks the symbol %.64s (stale build?)", path, name); \
    dlclose(so);                                                          \
    napi_throw_error(env, "E_CUDA_LIBRARY", msg);                         \
    return NULL;                                                          \
  }
  SYM(abi_version, "kc_abi_version")
  SYM(last_error, "kc_last_error")
  SYM(init, "kc_init")
  SYM(device_info, "kc_device_info")
  SYM(prepare_linear, "kc_prepare_linear")
  SYM(release_linear, "kc_release_linear")
  SYM(weight_bytes, "kc_weight_bytes")
  SYM(linear, "kc_linear")
  SYM(rmsnorm, "kc_rmsnorm")
  SYM(layernorm, "kc_layernorm")
  SYM(unary, "kc_unary")
  SYM(binary, "kc_binary")
  SYM(softmax, "kc_softmax")
  SYM(embedding, "kc_embedding")
  SYM(rope, "kc_rope")
  SYM(attention, "kc_attention")
  SYM(moe_route, "kc_moe_route")
  SYM(moe_experts, "kc_moe_experts")
  SYM(copy_bandwidth, "kc_d_copy_bandwidth")
  SYM(d_alloc, "kc_d_alloc")
  SYM(d_free, "kc_d_free")
  SYM(d_upload, "kc_d_upload")
  SYM(d_download, "kc_d_download")
  SYM(d_sync, "kc_d_sync")
  SYM(d_memcpy, "kc_d_memcpy")
  SYM(d_copy_rows, "kc_d_copy_rows")
  SYM(d_linear, "kc_d_linear")
  SYM(d_rmsnorm, "kc_d_rmsnorm")
  SYM(d_embedding, "kc_d_embedding")
  SYM(d_binary, "kc_d_binary")
  SYM(d_rope, "kc_d_rope")
  SYM(d_attention, "kc_d_attention")
  SYM(d_moe_route, "kc_d_moe_route")
  SYM(moe_group_create, "kc_moe_group_create")
  SYM(moe_group_release, "kc_moe_group_release")
  SYM(d_moe_experts, "kc_d_moe_experts")
  SYM(d_linear_grouped, "kc_d_linear_grouped")
  SYM(d_argmax, "kc_d_argmax")
  SYM(d_attention_at, "kc_d_attention_at")
  SYM(d_append_rows, "kc_d_append_rows")
  SYM(ws_epoch, "kc_ws_epoch")
  SYM(graph_begin, "kc_graph_begin")
  SYM(graph_end, "kc_graph_end")
  SYM(graph_launch, "kc_graph_launch")
  SYM(graph_release, "kc_graph_release")
  SYM(profiler, "kc_profiler")
  SYM(set_q8_activations, "kc_set_q8_activations")
  SYM(d_moe_experts_acc, "kc_d_moe_experts_acc")
  SYM(d_linear_add, "kc_d_linear_add")
  SYM(d_mlp, "kc_d_mlp")
  SYM(d_mla_prep, "kc_d_mla_prep")
#undef SYM
  if (l.abi_version() != KC_ABI_VERSION) {
    dlclose(so);
    napi_throw_error(env, "E_CUDA_LIBRARY", "libkestrel_cuda.so was built for another ABI version; rebuild it (npm run build:cuda)");
    return NULL;
  }
  /* No driver or no GPU: keep the library closed and report why (the library's own message). */
  if (l.init() != 0) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", l.last_error());
    dlclose(so);
    napi_throw_error(env, "E_CUDA_DEVICE", msg);
    return NULL;
  }
  lib = l;
  lib_ready = 1;
  return NULL;
}

static napi_value js_info(napi_env env, napi_callback_info info) {
  (void)info;
  if (!need_lib(env)) return NULL;
  char name[256];
  int ma = 0, mi = 0, sms = 0;
  size_t mem = 0;
  if (lib.device_info(name, sizeof name, &ma, &mi, &mem, &sms) != 0) return throw_lib(env);
  napi_value o, v;
  CALL(env, napi_create_object(env, &o));
  CALL(env, napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &v));
  CALL(env, napi_set_named_property(env, o, "name", v));
  CALL(env, napi_create_int32(env, ma, &v));
  CALL(env, napi_set_named_property(env, o, "ccMajor", v));
  CALL(env, napi_create_int32(env, mi, &v));
  CALL(env, napi_set_named_property(env, o, "ccMinor", v));
  CALL(env, napi_create_double(env, (double)mem, &v));
  CALL(env, napi_set_named_property(env, o, "totalMem", v));
  CALL(env, napi_create_int32(env, sms, &v));
  CALL(env, napi_set_named_property(env, o, "smCount", v));
  return o;
}

/* prepareLinear(format, n, k, data, scales|null) -> external handle */
static napi_value js_prepare(napi_env env, napi_callback_info info) {
  ARGS(5);
  NUM(0, fmt);
  NUM(1, n);
  NUM(2, k);
  TA(3, data, 0);
  TA(4, scales, 1);
  (void)data_len;
  (void)scales_len;
  kc_weight* w = lib.prepare_linear((int)fmt, (int64_t)n, (int64_t)k, data, (const float*)scales);
  if (!w) return throw_lib(env);
  return wrap_handle(env, K_WEIGHT, w);
}

/* Releases the object behind a handle of `kind` now (a second release does nothing). */
static napi_value release_arg(napi_env env, napi_callback_info info, Kind kind) {
  ARGS(1);
  Handle* h = handle_arg(env, argv[0], kind, 0);
  if (!h) return NULL;
  release_object(kind, h->p);
  h->p = NULL;
  return NULL;
}

static napi_value js_release(napi_env env, napi_callback_info info) { return release_arg(env, info, K_WEIGHT); }

/* linear(x, m, handle, bias|null, out) */
static napi_value js_linear(napi_env env, napi_callback_info info) {
  ARGS(5);
  TA(0, x, 0);
  NUM(1, m);
  WEIGHT(2, w);
  TA(3, bias, 1);
  TA(4, out, 0);
  DONE(lib.linear(x, (int64_t)m, w, bias, out));
}

/* rmsnorm(x, m, n, w, eps, out) */
static napi_value js_rmsnorm(napi_env env, napi_callback_info info) {
  ARGS(6);
  TA(0, x, 0);
  NUM(1, m);
  NUM(2, n);
  TA(3, w, 0);
  NUM(4, eps);
  TA(5, out, 0);
  DONE(lib.rmsnorm(x, (int64_t)m, (int64_t)n, w, (float)eps, out));
}

/* layernorm(x, m, n, w, b, eps, out) */
static napi_value js_layernorm(napi_env env, napi_callback_info info) {
  ARGS(7);
  TA(0, x, 0);
  NUM(1, m);
  NUM(2, n);
  TA(3, w, 0);
  TA(4, b, 0);
  NUM(5, eps);
  TA(6, out, 0);
  DONE(lib.layernorm(x, (int64_t)m, (int64_t)n, w, b, (float)eps, out));
}

/* unary(op, x, out) */
static napi_value js_unary(napi_env env, napi_callback_info info) {
  ARGS(3);
  NUM(0, op);
  TA(1, x, 0);
  TA(2, out, 0);
  (void)out_len;
  DONE(lib.unary((int)op, x, (int64_t)x_len, out));
}

/* binary(op, a, b, out) */
static napi_value js_binary(napi_env env, napi_callback_info info) {
  ARGS(4);
  NUM(0, op);
  TA(1, a, 0);
  TA(2, b, 0);
  TA(3, out, 0);
  (void)b_len;
  (void)out_len;
  DONE(lib.binary((int)op, a, b, (int64_t)a_len, out));
}

/* softmax(x, m, n) */
static napi_value js_softmax(napi_env env, napi_callback_info info) {
  ARGS(3);
  TA(0, x, 0);
  NUM(1, m);
  NUM(2, n);
  DONE(lib.softmax(x, (int64_t)m, (int64_t)n));
}

/* embedding(handle, ids, out) */
static napi_value js_embedding(napi_env env, napi_callback_info info) {
  ARGS(3);
  WEIGHT(0, w);
  TA(1, ids, 0);
  TA(2, out, 0);
  DONE(lib.embedding(w, ids, (int64_t)ids_len, out));
}

/* rope(x, geom Int32Array(7), positions, cos, sin) */
static napi_value js_rope(napi_env env, napi_callback_info info) {
  ARGS(5);
  TA(0, x, 0);
  TA(1, geom, 0);
  TA(2, pos, 0);
  TA(3, cs, 0);
  TA(4, sn, 0);
  int32_t* g = (int32_t*)geom;
  const int64_t half = g[5] / 2;
  DONE(lib.rope(x, (int64_t)x_len, g, pos, cs, sn, half > 0 ? (int64_t)cs_len / half : 0));
}

/* attention(q, k, v, out, geom Int32Array(12), scale) */
static napi_value js_attention(napi_env env, napi_callback_info info) {
  ARGS(6);
  TA(0, q, 0);
  TA(1, k, 0);
  TA(2, v, 0);
  TA(3, out, 0);
  TA(4, geom, 0);
  NUM(5, scale);
  DONE(lib.attention(q, (int64_t)q_len, k, (int64_t)k_len, v, (int64_t)v_len, out, (int64_t)out_len, geom, (float)scale));
}

/* moeRoute(logits, m, E, cfg Int32Array(6), bias|null, scaling, idx, weight, scores) */
static napi_value js_moe_route(napi_env env, napi_callback_info info) {
  ARGS(9);
  TA(0, logits, 0);
  NUM(1, m);
  NUM(2, e);
  TA(3, cfg, 0);
  TA(4, bias, 1);
  NUM(5, scaling);
  TA(6, idx, 0);
  TA(7, weight, 0);
  TA(8, scores, 0);
  DONE(lib.moe_route(logits, (int64_t)m, (int32_t)e, cfg, bias, (float)scaling, idx, weight, scores));
}

/* moeExperts(x, m, h, handles[3E], idx, weight, topK, out) */
static napi_value js_moe_experts(napi_env env, napi_callback_info info) {
  ARGS(8);
  TA(0, x, 0);
  NUM(1, m);
  NUM(2, h);
  uint32_t count = 0;
  CALL(env, napi_get_array_length(env, argv[3], &count));
  TA(4, idx, 0);
  TA(5, weight, 0);
  NUM(6, topk);
  TA(7, out, 0);
  if (count % 3 != 0) {
    napi_throw_type_error(env, NULL, "moeExperts: expected 3 handles per expert");
    return NULL;
  }
  const kc_weight** hs = (const kc_weight**)malloc(sizeof(kc_weight*) * (count ? count : 1));
  if (!hs) {
    napi_throw_error(env, NULL, "out of host memory");
    return NULL;
  }
  for (uint32_t i = 0; i < count; ++i) {
    napi_value el;
    kc_weight* w;
    if (napi_get_element(env, argv[3], i, &el) != napi_ok || !handle_of(env, el, &w)) {
      free(hs);
      return NULL;
    }
    hs[i] = w;
  }
  const int rc = lib.moe_experts(x, (int64_t)m, (int64_t)h, hs, (int32_t)(count / 3), idx, weight, (int32_t)topk, out);
  free(hs);
  DONE(rc);
}

/* copyBandwidth(bytes, reps) -> GB/s */
static napi_value js_copy_bandwidth(napi_env env, napi_callback_info info) {
  ARGS(2);
  NUM(0, bytes);
  NUM(1, reps);
  napi_value r;
  CALL(env, napi_create_double(env, lib.copy_bandwidth((size_t)bytes, (int)reps), &r));
  return r;
}


/* ---- device buffers: addresses travel as BigInt (0n = NULL); the JS side owns and frees them ---- */

static int ptr_of(napi_env env, napi_value v, void** p) {
  uint64_t u = 0;
  bool lossless = false;
  if (napi_get_value_bigint_uint64(env, v, &u, &lossless) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a device address (BigInt)");
    return 0;
  }
  *p = (void*)(uintptr_t)u;
  return 1;
}
#define PTR(i, var) \
  void* var;        \
  if (!ptr_of(env, argv[i], &var)) return NULL


/* dAlloc(bytes) -> BigInt address */
static napi_value js_d_alloc(napi_env env, napi_callback_info info) {
  ARGS(1);
  NUM(0, bytes);
  void* p = lib.d_alloc((size_t)bytes);
  if (!p) return throw_lib(env);
  napi_value r;
  CALL(env, napi_create_bigint_uint64(env, (uint64_t)(uintptr_t)p, &r));
  return r;
}

static napi_value js_d_free(napi_env env, napi_callback_info info) {
  ARGS(1);
  PTR(0, p);
  lib.d_free(p);
  return NULL;
}

/* Data pointer and byte length of a TypedArray. */
static int typed_bytes(napi_env env, napi_value v, void** data, size_t* bytes) {
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) {
    napi_throw_type_error(env, NULL, "expected a TypedArray");
    return 0;
  }
  napi_typedarray_type tt;
  size_t n, off;
  napi_value ab;
  if (napi_get_typedarray_info(env, v, &tt, &n, data, &ab, &off) != napi_ok) return 0;
  size_t el = 4;
  if (tt == napi_int8_array || tt == napi_uint8_array || tt == napi_uint8_clamped_array) el = 1;
  else if (tt == napi_int16_array || tt == napi_uint16_array) el = 2;
  else if (tt == napi_float64_array || tt == napi_bigint64_array || tt == napi_biguint64_array) el = 8;
  *bytes = n * el;
  return 1;
}

/* dUpload(dst, typedArray) / dDownload(typedArray, src): the whole typed array */
static napi_value js_d_upload(napi_env env, napi_callback_info info) {
  ARGS(2);
  PTR(0, dst);
  void* src;
  size_t bytes;
  if (!typed_bytes(env, argv[1], &src, &bytes)) return NULL;
  DONE(lib.d_upload(dst, src, bytes));
}

static napi_value js_d_download(napi_env env, napi_callback_info info) {
  ARGS(2);
  void* dst;
  size_t bytes;
  if (!typed_bytes(env, argv[0], &dst, &bytes)) return NULL;
  PTR(1, src);
  DONE(lib.d_download(dst, src, bytes));
}

static napi_value js_d_sync(napi_env env, napi_callback_info info) {
  (void)info;
  if (!need_lib(env)) return NULL;
  DONE(lib.d_sync());
}

/* dMemcpy(dst, src, bytes) */
static napi_value js_d_memcpy(napi_env env, napi_callback_info info) {
  ARGS(3);
  PTR(0, dst);
  PTR(1, src);
  NUM(2, bytes);
  DONE(lib.d_memcpy(dst, src, (size_t)bytes));
}

/* dCopyRows(dst, ldd, src, lds, rows, cols) */
static napi_value js_d_copy_rows(napi_env env, napi_callback_info info) {
  ARGS(6);
  PTR(0, dst);
  NUM(1, ldd);
  PTR(2, src);
  NUM(3, lds);
  NUM(4, rows);
  NUM(5, cols);
  DONE(lib.d_copy_rows(dst, (int64_t)ldd, src, (int64_t)lds, (int64_t)rows, (int64_t)cols));
}

/* dLinear(x, m, handle, bias|0n, out): out = x W^T (+ bias); with add (dLinearAdd), out += it */
static napi_value d_linear(napi_env env, napi_callback_info info, int add) {
  ARGS(5);
  PTR(0, x);
  NUM(1, m);
  WEIGHT(2, w);
  PTR(3, bias);
  PTR(4, out);
  DONE((add ? lib.d_linear_add : lib.d_linear)(x, (int64_t)m, w, bias, out));
}

static napi_value js_d_linear(napi_env env, napi_callback_info info) { return d_linear(env, info, 0); }
static napi_value js_d_linear_add(napi_env env, napi_callback_info info) { return d_linear(env, info, 1); }

/* dRmsnorm(x, m, n, ldx, w, eps, out, ldo) */
static napi_value js_d_rmsnorm(napi_env env, napi_callback_info info) {
  ARGS(8);
  PTR(0, x);
  NUM(1, m);
  NUM(2, n);
  NUM(3, ldx);
  PTR(4, w);
  NUM(5, eps);
  PTR(6, out);
  NUM(7, ldo);
  DONE(lib.d_rmsnorm(x, (int64_t)m, (int64_t)n, (int64_t)ldx, w, (float)eps, out, (int64_t)ldo));
}

/* dEmbedding(handle, ids, m, out) */
static napi_value js_d_embedding(napi_env env, napi_callback_info info) {
  ARGS(4);
  WEIGHT(0, w);
  PTR(1, ids);
  NUM(2, m);
  PTR(3, out);
  DONE(lib.d_embedding(w, ids, (int64_t)m, out));
}

/* dBinary(op, a, b, len, out) */
static napi_value js_d_binary(napi_env env, napi_callback_info info) {
  ARGS(5);
  NUM(0, op);
  PTR(1, a);
  PTR(2, b);
  NUM(3, len);
  PTR(4, out);
  DONE(lib.d_binary((int)op, a, b, (int64_t)len, out));
}

/* dRope(x, geom Int32Array(7), positions, cos, sin) */
static napi_value js_d_rope(napi_env env, napi_callback_info info) {
  ARGS(5);
  PTR(0, x);
  TA(1, geom, 0);
  PTR(2, pos);
  PTR(3, cs);
  PTR(4, sn);
  (void)geom_len;
  DONE(lib.d_rope(x, geom, pos, cs, sn));
}

/* dAttention(q, k, v, out, geom Int32Array(12), scale) */
static napi_value js_d_attention(napi_env env, napi_callback_info info) {
  ARGS(6);
  PTR(0, q);
  PTR(1, k);
  PTR(2, v);
  PTR(3, out);
  TA(4, geom, 0);
  NUM(5, scale);
  (void)geom_len;
  DONE(lib.d_attention(q, k, v, out, geom, (float)scale));
}

/* dMoeRoute(logits, m, E, cfg Int32Array(6), bias|0n, scaling, idx, weight, scores) */
static napi_value js_d_moe_route(napi_env env, napi_callback_info info) {
  ARGS(9);
  PTR(0, logits);
  NUM(1, m);
  NUM(2, e);
  TA(3, cfg, 0);
  PTR(4, bias);
  NUM(5, scaling);
  PTR(6, idx);
  PTR(7, weight);
  PTR(8, scores);
  (void)cfg_len;
  DONE(lib.d_moe_route(logits, (int64_t)m, (int32_t)e, cfg, bias, (float)scaling, idx, weight, scores));
}

/* moeGroup(handles[3E]) -> external expert-group handle */
static napi_value js_moe_group(napi_env env, napi_callback_info info) {
  ARGS(1);
  uint32_t count = 0;
  CALL(env, napi_get_array_length(env, argv[0], &count));
  if (count == 0 || count % 3 != 0) {
    napi_throw_type_error(env, NULL, "moeGroup: expected 3 handles per expert");
    return NULL;
  }
  const kc_weight** hs = (const kc_weight**)malloc(sizeof(kc_weight*) * count);
  if (!hs) {
    napi_throw_error(env, NULL, "out of host memory");
    return NULL;
  }
  for (uint32_t i = 0; i < count; ++i) {
    napi_value el;
    kc_weight* w;
    if (napi_get_element(env, argv[0], i, &el) != napi_ok || !handle_of(env, el, &w)) {
      free(hs);
      return NULL;
    }
    hs[i] = w;
  }
  kc_moe_group* g = lib.moe_group_create(hs, (int32_t)(count / 3));
  free(hs);
  if (!g) return throw_lib(env);
  return wrap_handle(env, K_GROUP, g);
}

static napi_value js_moe_group_release(napi_env env, napi_callback_info info) { return release_arg(env, info, K_GROUP); }

/* dMoeExperts(x, m, h, group, idx, weight, topK, out, accumulate) */
static napi_value js_d_moe_experts(napi_env env, napi_callback_info info) {
  ARGS(9);
  PTR(0, x);
  NUM(1, m);
  NUM(2, h);
  kc_moe_group* g;
  if (!group_of(env, argv[3], &g)) return NULL;
  PTR(4, idx);
  PTR(5, weight);
  NUM(6, topk);
  PTR(7, out);
  NUM(8, acc);
  DONE(lib.d_moe_experts_acc(x, (int64_t)m, (int64_t)h, g, idx, weight, (int32_t)topk, out, acc != 0));
}

/* dLinearGrouped(x, m, ldx, groups, xGroupStride, handle, out, ldo, outGroupStride) */
static napi_value js_d_linear_grouped(napi_env env, napi_callback_info info) {
  ARGS(9);
  PTR(0, x);
  NUM(1, m);
  NUM(2, ldx);
  NUM(3, groups);
  NUM(4, xgs);
  WEIGHT(5, w);
  PTR(6, out);
  NUM(7, ldo);
  NUM(8, ogs);
  DONE(lib.d_linear_grouped(x, (int64_t)m, (int64_t)ldx, (int32_t)groups, (int64_t)xgs, w, out, (int64_t)ldo, (int64_t)ogs));
}

/* dArgmax(x, m, n, out) */
static napi_value js_d_argmax(napi_env env, napi_callback_info info) {
  ARGS(4);
  PTR(0, x);
  NUM(1, m);
  NUM(2, n);
  PTR(3, out);
  DONE(lib.d_argmax(x, (int64_t)m, (int64_t)n, out));
}

/* dAttentionAt(q, k, v, out, geom Int32Array(12), scale, base, maxTk) */
static napi_value js_d_attention_at(napi_env env, napi_callback_info info) {
  ARGS(8);
  PTR(0, q);
  PTR(1, k);
  PTR(2, v);
  PTR(3, out);
  TA(4, geom, 0);
  NUM(5, scale);
  PTR(6, base);
  NUM(7, max_tk);
  (void)geom_len;
  DONE(lib.d_attention_at(q, k, v, out, geom, (float)scale, base, (int32_t)max_tk));
}

/* dAppendRows(cache, width, src, rows, base) */
static napi_value js_d_append_rows(napi_env env, napi_callback_info info) {
  ARGS(5);
  PTR(0, cache);
  NUM(1, width);
  PTR(2, src);
  NUM(3, rows);
  PTR(4, base);
  DONE(lib.d_append_rows(cache, (int64_t)width, src, (int64_t)rows, base));
}

static napi_value js_ws_epoch(napi_env env, napi_callback_info info) {
  (void)info;
  if (!need_lib(env)) return NULL;
  napi_value r;
  CALL(env, napi_create_double(env, (double)lib.ws_epoch(), &r));
  return r;
}

static napi_value js_graph_begin(napi_env env, napi_callback_info info) {
  (void)info;
  if (!need_lib(env)) return NULL;
  DONE(lib.graph_begin());
}

/* graphEnd() -> external graph handle */
static napi_value js_graph_end(napi_env env, napi_callback_info info) {
  (void)info;
  if (!need_lib(env)) return NULL;
  kc_graph* g = NULL;
  if (lib.graph_end(&g) != 0) return throw_lib(env);
  return wrap_handle(env, K_GRAPH, g);
}

static napi_value js_graph_launch(napi_env env, napi_callback_info info) {
  ARGS(1);
  Handle* h = handle_arg(env, argv[0], K_GRAPH, 1);
  if (!h) return NULL;
  DONE(lib.graph_launch((kc_graph*)h->p));
}

static napi_value js_graph_release(napi_env env, napi_callback_info info) { return release_arg(env, info, K_GRAPH); }

/* profiler(on) */
static napi_value js_profiler(napi_env env, napi_callback_info info) {
  ARGS(1);
  NUM(0, on);
  DONE(lib.profiler(on != 0));
}

/* dMlp(x, m, group, out, accumulate) */
static napi_value js_d_mlp(napi_env env, napi_callback_info info) {
  ARGS(5);
  PTR(0, x);
  NUM(1, m);
  kc_moe_group* g;
  if (!group_of(env, argv[2], &g)) return NULL;
  PTR(3, out);
  NUM(4, acc);
  DONE(lib.d_mlp(x, (int64_t)m, g, out, acc != 0));
}

/* dMlaPrep(q, kva, geom Int32Array(6), normW, eps, cos, sin, positions, base, cache, qAbs) */
static napi_value js_d_mla_prep(napi_env env, napi_callback_info info) {
  ARGS(11);
  PTR(0, q);
  PTR(1, kva);
  TA(2, geom, 0);
  PTR(3, w);
  NUM(4, eps);
  PTR(5, cs);
  PTR(6, sn);
  PTR(7, pos);
  PTR(8, base);
  PTR(9, cache);
  PTR(10, qabs);
  (void)geom_len;
  DONE(lib.d_mla_prep(q, kva, geom, w, (float)eps, cs, sn, pos, base, cache, qabs));
}

/* setQ8Activations(quantize) */
static napi_value js_set_q8_activations(napi_env env, napi_callback_info info) {
  ARGS(1);
  NUM(0, quantize);
  DONE(lib.set_q8_activations(quantize != 0));
}

static napi_value init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
      {"info", NULL, js_info, NULL, NULL, NULL, napi_default, NULL},
      {"prepareLinear", NULL, js_prepare, NULL, NULL, NULL, napi_default, NULL},
      {"releaseLinear", NULL, js_release, NULL, NULL, NULL, napi_default, NULL},
      {"linear", NULL, js_linear, NULL, NULL, NULL, napi_default, NULL},
      {"rmsnorm", NULL, js_rmsnorm, NULL, NULL, NULL, napi_default, NULL},
      {"layernorm", NULL, js_layernorm, NULL, NULL, NULL, napi_default, NULL},
      {"unary", NULL, js_unary, NULL, NULL, NULL, napi_default, NULL},
      {"binary", NULL, js_binary, NULL, NULL, NULL, napi_default, NULL},
      {"softmax", NULL, js_softmax, NULL, NULL, NULL, napi_default, NULL},
      {"embedding", NULL, js_embedding, NULL, NULL, NULL, napi_default, NULL},
      {"rope", NULL, js_rope, NULL, NULL, NULL, napi_default, NULL},
      {"attention", NULL, js_attention, NULL, NULL, NULL, napi_default, NULL},
      {"moeRoute", NULL, js_moe_route, NULL, NULL, NULL, napi_default, NULL},
      {"moeExperts", NULL, js_moe_experts, NULL, NULL, NULL, napi_default, NULL},
      {"copyBandwidth", NULL, js_copy_bandwidth, NULL, NULL, NULL, napi_default, NULL},
#define D(js, fn) {js, NULL, fn, NULL, NULL, NULL, napi_default, NULL}
      D("dAlloc", js_d_alloc), D("dFree", js_d_free), D("dUpload", js_d_upload), D("dDownload", js_d_download), D("dSync", js_d_sync),
      D("dMemcpy", js_d_memcpy), D("dCopyRows", js_d_copy_rows), D("dLinear", js_d_linear), D("dRmsnorm", js_d_rmsnorm),
      D("dEmbedding", js_d_embedding), D("dBinary", js_d_binary), D("dRope", js_d_rope), D("dAttention", js_d_attention),
      D("dMoeRoute", js_d_moe_route), D("moeGroup", js_moe_group), D("moeGroupRelease", js_moe_group_release),
      D("dMoeExperts", js_d_moe_experts), D("dLinearGrouped", js_d_linear_grouped), D("dArgmax", js_d_argmax),
      D("dAttentionAt", js_d_attention_at), D("dAppendRows", js_d_append_rows), D("wsEpoch", js_ws_epoch), D("graphBegin", js_graph_begin),
      D("graphEnd", js_graph_end), D("graphLaunch", js_graph_launch), D("graphRelease", js_graph_release), D("profiler", js_profiler),
      D("setQ8Activations", js_set_q8_activations), D("dLinearAdd", js_d_linear_add), D("dMlp", js_d_mlp),
      D("dMlaPrep", js_d_mla_prep),
#undef D
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
