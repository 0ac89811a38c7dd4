/*
 * C ABI of libkestrel_cuda.so: the CUDA backend of Kestrel's kernel contract (native/lib/contract.ts).
 *
 * Two layers:
 * - kc_* (host arrays): each call uploads its inputs to a device workspace, runs the kernels and copies
 *   the output back. This is what the N-API shim (shim.c) exposes, so the contract's Float32Array ops work.
 * - kc_d_* (device pointers): the same kernels on buffers that already live on the GPU (no copies), for
 *   a device-resident decode loop.
 * Weights are uploaded once by kc_prepare_linear; the returned handle owns the device copy.
 * Every int-returning function returns 0 on success and non-zero on failure, with the reason in
 * kc_last_error() (thread-local).
 */
#ifndef KESTREL_CUDA_H
#define KESTREL_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KC_API __attribute__((visibility("default")))

/** Bumped whenever a signature below changes; the shim refuses a library with another version. */
#define KC_ABI_VERSION 3

enum kc_format { KC_F32 = 0, KC_BF16 = 1, KC_Q8 = 2 };
enum kc_unary_op { KC_GELU_TANH = 0, KC_GELU_ERF = 1, KC_SILU = 2 };
enum kc_binary_op { KC_ADD = 0, KC_MUL = 1, KC_SWIGLU = 2 };

typedef struct kc_weight kc_weight;
/** The routed experts of one MoE layer, as one descriptor table on the device (kc_moe_group_create). */
typedef struct kc_moe_group kc_moe_group;
/** A captured sequence of device-pointer ops (a CUDA graph), replayed with one call. */
typedef struct kc_graph kc_graph;

KC_API int kc_abi_version(void);
KC_API const char* kc_last_error(void);
/** Finds a device and creates the context. Non-zero (reason in kc_last_error) without a driver or GPU. */
KC_API int kc_init(void);
/** Name, compute capability, memory and multiprocessor count of the device in use (after kc_init). */
KC_API int kc_device_info(char* name, size_t name_len, int* cc_major, int* cc_minor, size_t* total_mem, int* sm_count);

/** Uploads W [n, k] once. q8: data is n*kp int8 (rows padded to kp = ceil(k/32)*32), scales n*kp/32. */
KC_API kc_weight* kc_prepare_linear(int format, int64_t n, int64_t k, const void* data, const float* scales);
KC_API void kc_release_linear(kc_weight* w);
KC_API int64_t kc_weight_bytes(const kc_weight* w);

/* ---- host-array ops (contract semantics) ---- */
KC_API int kc_linear(const float* x, int64_t m, const kc_weight* w, const float* bias, float* out);
KC_API int kc_rmsnorm(const float* x, int64_t m, int64_t n, const float* weight, float eps, float* out);
KC_API int kc_layernorm(const float* x, int64_t m, int64_t n, const float* weight, const float* bias, float eps, float* out);
KC_API int kc_unary(int op, const float* x, int64_t len, float* out);
KC_API int kc_binary(int op, const float* a, const float* b, int64_t len, float* out);
KC_API int kc_softmax(float* x, int64_t m, int64_t n);
KC_API int kc_embedding(const kc_weight* table, const int32_t* ids, int64_t m, float* out);
/** geom: m, nHeads, headStride, rowStride, offset, dim, interleaved. x has xlen floats; cos/sin [maxPos, dim/2]. */
KC_API int kc_rope(float* x, int64_t xlen, const int32_t* geom, const int32_t* positions, const float* cos, const float* sin, int64_t max_pos);
/** geom: tq, tk, nHeads, nKvHeads, dqk, dv, qStride, kStride, vStride, outStride, causal, qPos0. */
KC_API int kc_attention(const float* q, int64_t qlen, const float* k, int64_t klen, const float* v, int64_t vlen, float* out,
                        int64_t outlen, const int32_t* geom, float scale);
/** cfg: topK, scoring (0 softmax, 1 sigmoid), method (0 greedy, 1 group_limited_greedy, 2 noaux_tc), nGroup, topkGroup, normTopkProb. */
KC_API int kc_moe_route(const float* logits, int64_t m, int32_t n_experts, const int32_t* cfg, const float* bias, float scaling,
                        int32_t* idx, float* weight, float* scores);
/** experts: 3*n_experts handles (gate, up, down of expert 0, then expert 1, ...). */
KC_API int kc_moe_experts(const float* x, int64_t m, int64_t h, const kc_weight* const* experts, int32_t n_experts, const int32_t* idx,
                          const float* weight, int32_t top_k, float* out);

/* ---- device-pointer ops: buffers that live on the GPU, kernels queued on the default stream without a host sync;
 * kc_d_download (or kc_d_sync) waits for them. Errors of queued kernels surface at that wait. ---- */
KC_API void* kc_d_alloc(size_t bytes);
KC_API void kc_d_free(void* p);
KC_API int kc_d_upload(void* dst, const void* src, size_t bytes);
KC_API int kc_d_download(void* dst, const void* src, size_t bytes);
KC_API int kc_d_sync(void);
KC_API int kc_d_linear(const float* x, int64_t m, const kc_weight* w, const float* bias, float* out);
/** Row strides ldx/ldo in floats (>= n). */
KC_API int kc_d_rmsnorm(const float* x, int64_t m, int64_t n, int64_t ldx, const float* weight, float eps, float* out, int64_t ldo);
/** ids on the device; an id outside the table gives a NaN row (callers validate on the host). */
KC_API int kc_d_embedding(const kc_weight* table, const int32_t* ids, int64_t m, float* out);
/** Device-to-device copies: bytes, or `rows` rows of `cols` floats between strided buffers. */
KC_API int kc_d_memcpy(void* dst, const void* src, size_t bytes);
KC_API int kc_d_copy_rows(float* dst, int64_t ldd, const float* src, int64_t lds, int64_t rows, int64_t cols);
KC_API int kc_d_binary(int op, const float* a, const float* b, int64_t len, float* out);
/** geom as kc_rope; positions [m] on the device; cos/sin: whole tables [maxPos, dim/2] on the device. */
KC_API int kc_d_rope(float* x, const int32_t* geom, const int32_t* positions, const float* cos, const float* sin);
/** geom (host array) as kc_attention. */
KC_API int kc_d_attention(const float* q, const float* k, const float* v, float* out, const int32_t* geom, float scale);
/** cfg (host array) as kc_moe_route; bias may be NULL. */
KC_API int kc_d_moe_route(const float* logits, int64_t m, int32_t n_experts, const int32_t* cfg, const float* bias, float scaling, int32_t* idx,
                          float* weight, float* scores);
/** experts: 3*n_experts prepared weights (gate, up, down of each), all alike in format and shape. */
KC_API kc_moe_group* kc_moe_group_create(const kc_weight* const* experts, int32_t n_experts);
KC_API void kc_moe_group_release(kc_moe_group* g);
/** Routed experts with the slot sort and tile table built on the device from idx/weight [m, top_k] (device). */
KC_API int kc_d_moe_experts(const float* x, int64_t m, int64_t h, const kc_moe_group* g, const int32_t* idx, const float* weight, int32_t top_k, float* out);
/** kc_d_moe_experts with accumulate = 1: out += the routed experts' sum (a residual add fused into the combine). */
KC_API int kc_d_moe_experts_acc(const float* x, int64_t m, int64_t h, const kc_moe_group* g, const int32_t* idx, const float* weight, int32_t top_k,
                                float* out, int accumulate);
/** out += x * W^T (+ bias): a residual add fused into the product (the row kernel; bf16 above 16 rows is refused). */
KC_API int kc_d_linear_add(const float* x, int64_t m, const kc_weight* w, const float* bias, float* out);
/** A dense SiLU-gated MLP from a one-expert group, m <= 16 rows: out (+)= down(silu(gate x) * up x), 2 launches. */
KC_API int kc_d_mlp(const float* x, int64_t m, const kc_moe_group* g, float* out, int accumulate);
/** MLA before attention in one launch (one block per row): rmsnorm of the latent, rope of k_pe, [c | k_pe] to cache
 * row base[0] + r, and each head's rotated q_pe into q_abs [T, nHeads, kvl + rope] at column kvl.
 * geom (host): T, nHeads, dq, nope, rope, kvl. positions [T] and base[1] on the device; cos/sin whole tables. */
KC_API int kc_d_mla_prep(const float* q, const float* kva, const int32_t* geom, const float* norm_w, float eps, const float* cos, const float* sin,
                         const int32_t* positions, const int32_t* base, float* cache, float* q_abs);
/** out[r*ldo + g*ogs + j] = sum_c x[r*ldx + g*xgs + c] * W[g*n + j, c] with W [groups*n, k] (per-head products). */
KC_API int kc_d_linear_grouped(const float* x, int64_t m, int64_t ldx, int32_t groups, int64_t x_group_stride, const kc_weight* w, float* out,
                               int64_t ldo, int64_t out_group_stride);
/** Attention whose keys end where the cache ends: geom's tk and qPos0 are relative to base[0] (device int32: rows
 * already cached), so a captured launch serves every position. k/v hold at least max_tk rows. */
KC_API int kc_d_attention_at(const float* q, const float* k, const float* v, float* out, const int32_t* geom, float scale, const int32_t* base,
                             int32_t max_tk);
/** cache[(base[0] + r) * width + c] = src[r * width + c] for r < rows (appends at the device-held position). */
KC_API int kc_d_append_rows(float* cache, int64_t width, const float* src, int64_t rows, const int32_t* base);
/** q8 products: quantize = 1 (default) quantizes the activations to int8 per block of 32 and uses dp4a, as the CPU
 * addon does; quantize = 0 keeps them f32 and dequantizes the weights in registers (closer to the portable op). */
KC_API int kc_set_q8_activations(int quantize);
/** Starts (on = 1) or stops the range a profiler records (ncu --profile-from-start off). */
KC_API int kc_profiler(int on);
/** Counter bumped whenever a library workspace moves; graphs captured before are stale. */
KC_API uint64_t kc_ws_epoch(void);
/** Capture the device-pointer ops called between begin and end (no host copies in between) into a graph. */
KC_API int kc_graph_begin(void);
KC_API int kc_graph_end(kc_graph** out);
/** Replays the graph on the library's stream (fails, without running, when the graph is stale). */
KC_API int kc_graph_launch(const kc_graph* g);
KC_API void kc_graph_release(kc_graph* g);
/** out[r] = index of the largest value of row r of x [m, n] (lowest index among equals). */
KC_API int kc_d_argmax(const float* x, int64_t m, int64_t n, int32_t* out);
/** Copy bandwidth (GB/s) of a device-to-device copy of `bytes`, for the decode bandwidth bound. */
KC_API double kc_d_copy_bandwidth(size_t bytes, int reps);

#ifdef __cplusplus
}
#endif

#endif
