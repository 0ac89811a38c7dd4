// CUDA kernels of Kestrel's kernel contract and the C ABI around them (see kestrel_cuda.h).
// Numerics follow native/lib/portable (the reference): f32 activations; q8 weights are multiplied with
// activations quantized per block of 32 (as the C++ CPU addon does, bit-identical quantization), bf16
// matrix products on tensor cores split each activation into two bf16 halves so the result keeps ~16
// significant bits of the f32 input instead of 8.
#include "kestrel_cuda.h"

#include <cuda_bf16.h>
#include <cuda_profiler_api.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

namespace {

constexpr int kQ8Block = 32;
// Row-kernel format (template parameter only): q8 weights times f32 activations, dequantized in registers. The
// default q8 path quantizes the activations to int8 and uses dp4a (as the CPU addon); see kc_set_q8_activations.
constexpr int kQ8F = 3;
constexpr int kRowsPerTile = 8;   // activation rows a warp multiplies with one weight row it reads once
constexpr int kWarpsPerBlock = 8;  // output columns per block in the row kernel

thread_local std::string g_err;
std::mutex g_mu;  // host-array calls share one workspace
bool g_ready = false;
bool g_q8_quantize_act = true;  // q8 products: int8 activations + dp4a (true) or f32 activations (false)
// Every kernel and async copy goes to this stream. It is a blocking stream, so the host-array path's plain
// cudaMemcpy calls (legacy default stream) stay ordered with it; a CUDA graph captures it.
cudaStream_t g_stream = nullptr;
// Bumped whenever a workspace buffer moves: a captured graph holds workspace addresses and is stale after that.
uint64_t g_ws_epoch = 0;
uint64_t g_capture_epoch = 0;  // g_ws_epoch when the graph capture in progress began

struct WDev {
  int fmt;
  int64_t n, k, kp;
  const void* data;
  const float* scales;
};

struct Tile {
  int expert;
  int row0;
  int rows;
};

int set_err(const std::string& s) {
  g_err = s;
  return 1;
}

#define KC_CHECK(call)                                                                     \
  do {                                                                                     \
    cudaError_t e_ = (call);                                                               \
    if (e_ != cudaSuccess) return set_err(std::string(#call ": ") + cudaGetErrorString(e_)); \
  } while (0)

#define KC_LAUNCHED() KC_CHECK(cudaGetLastError())

// ---------------------------------------------------------------------------------------------
// device helpers

__device__ __forceinline__ float bf2f(uint16_t u) { return __uint_as_float(static_cast<uint32_t>(u) << 16); }

__device__ __forceinline__ float load_w(const WDev& w, int64_t r, int64_t c) {
  if (w.fmt == KC_F32) return static_cast<const float*>(w.data)[r * w.k + c];
  if (w.fmt == KC_BF16) return bf2f(static_cast<const uint16_t*>(w.data)[r * w.k + c]);
  const int64_t i = r * w.kp + c;
  return static_cast<float>(static_cast<const int8_t*>(w.data)[i]) * w.scales[i / kQ8Block];
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Block-wide sum/max (blockDim a multiple of 32, at most 1024); every thread gets the result.
__device__ float block_sum(float v) {
  __shared__ float sh[32];
  __syncthreads();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  float t = lane < nw ? sh[lane] : 0.f;
  t = warp_sum(t);
  return t;
}

__device__ float block_max(float v) {
  __shared__ float sh[32];
  __syncthreads();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_max(v);
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  float t = lane < nw ? sh[lane] : -INFINITY;
  t = warp_max(t);
  return t;
}

__device__ __forceinline__ float silu_f(float x) { return x / (1.f + expf(-x)); }

// ---------------------------------------------------------------------------------------------
// element-wise, norms, softmax, embedding, rope

__global__ void unary_kernel(int op, const float* __restrict__ x, int64_t len, float* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < len; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = x[i];
    float r;
    if (op == KC_GELU_TANH) {
      r = 0.5f * v * (1.f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    } else if (op == KC_GELU_ERF) {
      r = 0.5f * v * (1.f + erff(v * 0.7071067811865476f));
    } else {
      r = silu_f(v);
    }
    out[i] = r;
  }
}

__global__ void binary_kernel(int op, const float* a, const float* b, int64_t len, float* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < len; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float x = a[i], y = b[i];
    out[i] = op == KC_ADD ? x + y : op == KC_MUL ? x * y : silu_f(x) * y;
  }
}

// ldx/ldo: row strides (the MLA latent is normalised inside rows [latent | k_pe])
// x and out may alias (in place): no __restrict__ on them
__global__ void rmsnorm_kernel(const float* x, int64_t n, int64_t ldx, const float* __restrict__ w, float eps, float* out, int64_t ldo) {
  const float* xr = x + blockIdx.x * ldx;
  float* orow = out + blockIdx.x * ldo;
  float ss = 0.f;
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) ss += xr[c] * xr[c];
  ss = block_sum(ss);
  const float inv = 1.f / sqrtf(ss / static_cast<float>(n) + eps);
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) orow[c] = w[c] * (xr[c] * inv);
}

__global__ void layernorm_kernel(const float* __restrict__ x, int64_t n, const float* __restrict__ w, const float* __restrict__ b, float eps,
                                 float* __restrict__ out) {
  const float* xr = x + blockIdx.x * n;
  float* orow = out + blockIdx.x * n;
  float s = 0.f;
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) s += xr[c];
  const float mean = block_sum(s) / static_cast<float>(n);
  float v = 0.f;
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
    const float d = xr[c] - mean;
    v += d * d;
  }
  const float inv = 1.f / sqrtf(block_sum(v) / static_cast<float>(n) + eps);
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) orow[c] = (xr[c] - mean) * inv * w[c] + b[c];
}

__global__ void softmax_kernel(float* x, int64_t n) {
  float* r = x + blockIdx.x * n;
  float mx = -INFINITY;
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) mx = fmaxf(mx, r[c]);
  mx = block_max(mx);
  float s = 0.f;
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
    const float e = expf(r[c] - mx);
    r[c] = e;
    s += e;
  }
  const float inv = 1.f / block_sum(s);
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) r[c] *= inv;
}

__global__ void embedding_kernel(const WDev* __restrict__ wp, const int32_t* __restrict__ ids, float* __restrict__ out) {
  const WDev w = *wp;
  const int64_t id = ids[blockIdx.x];
  float* o = out + blockIdx.x * w.k;
  if (id < 0 || id >= w.n) {
    // ids are validated on the host; a bad one on the device path yields NaN rows rather than a wild read
    for (int64_t c = threadIdx.x; c < w.k; c += blockDim.x) o[c] = NAN;
    return;
  }
  for (int64_t c = threadIdx.x; c < w.k; c += blockDim.x) o[c] = load_w(w, id, c);
}

// One block per (row, head): the head's rotated channels are read into shared memory first because the
// de-interleaved variant writes channel i from channels 2i and 2i+1.
// cs/sn: tables [*, dim/2]; row r uses table row pos[r] (device path: the whole table lives on the GPU), or row r
// when pos is null (host path: the host gathers the rows of the positions in use into compact tables).
__global__ void rope_kernel(float* x, int nHeads, int64_t headStride, int64_t rowStride, int offset, int dim, int interleaved,
                            const float* __restrict__ cs, const float* __restrict__ sn, const int32_t* __restrict__ pos) {
  extern __shared__ float t[];
  const int r = blockIdx.x / nHeads, h = blockIdx.x % nHeads;
  const int half = dim / 2;
  float* o = x + r * rowStride + h * headStride + offset;
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    if (interleaved) {
      t[i] = o[2 * i];
      t[half + i] = o[2 * i + 1];
    } else {
      t[i] = o[i];
      t[half + i] = o[half + i];
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    const int64_t tr = pos ? pos[r] : r;
    const float c = cs[tr * half + i], s = sn[tr * half + i];
    const float a = t[i], b = t[half + i];
    o[i] = a * c - b * s;
    o[half + i] = b * c + a * s;
  }
}

// ---------------------------------------------------------------------------------------------
// quantization of activations (per block of 32, like the CPU addon: d = amax/127, q = rint(x/d))

// One warp per (row, block). rowIdx (optional) gathers the input rows.
__global__ void quantize_kernel(const float* __restrict__ x, int64_t ldx, const int* __restrict__ rowIdx, int T, int64_t k, int64_t kp,
                                int8_t* __restrict__ xq, float* __restrict__ xs) {
  const int64_t nb = kp / kQ8Block;
  const int lane = threadIdx.x & 31;
  const int64_t stride = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  // grid-stride over warps (the grid is capped); the loop condition is uniform within a warp
  for (int64_t gw = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) >> 5; gw < T * nb; gw += stride) {
    const int64_t t = gw / nb, b = gw % nb;
    const int64_t src = rowIdx ? rowIdx[t] : t;
    const int64_t c = b * kQ8Block + lane;
    const float v = c < k ? x[src * ldx + c] : 0.f;
    const float amax = warp_max(fabsf(v));
    const float d = amax / 127.f;
    const float id = d > 0.f ? 1.f / d : 0.f;
    xq[t * kp + c] = static_cast<int8_t>(__float2int_rn(v * id));
    if (lane == 0) xs[t * nb + b] = d;
  }
}

// ---------------------------------------------------------------------------------------------
// the row kernel: matrix-vector (decode) and few-row products, grouped over experts
//
// Each warp owns one output column j (one weight row, read once) and multiplies it with up to 8
// activation rows of its tile. A tile is (expert, first logical row, row count); without a tile table
// the tiles are consecutive groups of 8 rows of one weight. Logical row t reads activation row rowIdx[t]
// (gather) or t. DUAL computes gate and up together and writes silu(gate)·up.

struct RowsArgs {
  const WDev* wtab;  // weights, indexed tile.expert * wstride + woff (DUAL also uses woff + 1)
  int wstride, woff;
  const Tile* tiles;
  int T;
  const int* rowIdx;
  const float* x;
  int64_t ldx;
  const int8_t* xq;  // q8: quantized logical rows, stride kp
  const float* xs;
  const float* bias;
  float* out;
  int64_t ldo;
  int accumulate;  // non-DUAL: out += product (a residual add fused into the product)
};

template <int FMT, bool VEC>
__device__ __forceinline__ void dot_rows(const WDev& w, int64_t j, const RowsArgs& a, const int64_t (&xrow)[kRowsPerTile], int row0, int rows,
                                         float (&acc)[kRowsPerTile]) {
  const int lane = threadIdx.x & 31;
  if (FMT == KC_Q8) {
    const int64_t kp = w.kp, nb = kp / kQ8Block;
    const int8_t* wr = static_cast<const int8_t*>(w.data) + j * kp;
    const float* wsr = w.scales + j * nb;
    for (int64_t c = lane * 16; c < kp; c += 32 * 16) {
      const int4 wv = *reinterpret_cast<const int4*>(wr + c);
      const float wsc = wsr[c / kQ8Block];
#pragma unroll
      for (int r = 0; r < kRowsPerTile; ++r) {
        if (r < rows) {
          const int64_t t = row0 + r;
          const int4 xv = *reinterpret_cast<const int4*>(a.xq + t * kp + c);
          int s = __dp4a(wv.x, xv.x, 0);
          s = __dp4a(wv.y, xv.y, s);
          s = __dp4a(wv.z, xv.z, s);
          s = __dp4a(wv.w, xv.w, s);
          acc[r] += static_cast<float>(s) * (wsc * a.xs[t * nb + c / kQ8Block]);
        }
      }
    }
  } else if (FMT == kQ8F) {
    // 16 int8 weights per lane per step (one 16-byte load), scaled once per 16; f32 activations
    const int64_t kp = w.kp, nb = kp / kQ8Block;
    const int8_t* wr = static_cast<const int8_t*>(w.data) + j * kp;
    const float* wsr = w.scales + j * nb;
    for (int64_t c = lane * 16; c < kp; c += 32 * 16) {
      const int4 wv = *reinterpret_cast<const int4*>(wr + c);
      const int8_t* wb = reinterpret_cast<const int8_t*>(&wv);
      const float wsc = wsr[c / kQ8Block];
#pragma unroll
      for (int r = 0; r < kRowsPerTile; ++r) {
        if (r < rows) {
          const float* xr = a.x + xrow[r] * a.ldx + c;
          float s = 0.f;
          if (VEC) {  // k % 32 == 0 (no padding) and 16-byte aligned rows
            const float4* xp = reinterpret_cast<const float4*>(xr);
#pragma unroll
            for (int q = 0; q < 4; ++q) {
              const float4 u = xp[q];
              s = fmaf(static_cast<float>(wb[4 * q]), u.x, s);
              s = fmaf(static_cast<float>(wb[4 * q + 1]), u.y, s);
              s = fmaf(static_cast<float>(wb[4 * q + 2]), u.z, s);
              s = fmaf(static_cast<float>(wb[4 * q + 3]), u.w, s);
            }
          } else {
#pragma unroll
            for (int i = 0; i < 16; ++i)
              if (c + i < w.k) s = fmaf(static_cast<float>(wb[i]), xr[i], s);
          }
          acc[r] = fmaf(s, wsc, acc[r]);
        }
      }
    }
  } else if (VEC) {
    // k % 8 == 0 and 16-byte aligned rows: 8 weights per lane per step
    for (int64_t c = lane * 8; c < w.k; c += 32 * 8) {
      float wv[8];
      if (FMT == KC_F32) {
        const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(w.data) + j * w.k + c);
        const float4 u = p[0], v = p[1];
        wv[0] = u.x; wv[1] = u.y; wv[2] = u.z; wv[3] = u.w;
        wv[4] = v.x; wv[5] = v.y; wv[6] = v.z; wv[7] = v.w;
      } else {
        const uint4 u = *reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(w.data) + j * w.k + c);
        const uint32_t q[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          wv[2 * i] = __uint_as_float(q[i] << 16);
          wv[2 * i + 1] = __uint_as_float(q[i] & 0xffff0000u);
        }
      }
#pragma unroll
      for (int r = 0; r < kRowsPerTile; ++r) {
        if (r < rows) {
          const float4* xp = reinterpret_cast<const float4*>(a.x + xrow[r] * a.ldx + c);
          const float4 u = xp[0], v = xp[1];
          float s = acc[r];
          s = fmaf(wv[0], u.x, s); s = fmaf(wv[1], u.y, s); s = fmaf(wv[2], u.z, s); s = fmaf(wv[3], u.w, s);
          s = fmaf(wv[4], v.x, s); s = fmaf(wv[5], v.y, s); s = fmaf(wv[6], v.z, s); s = fmaf(wv[7], v.w, s);
          acc[r] = s;
        }
      }
    }
  } else {
    for (int64_t c = lane; c < w.k; c += 32) {
      const float wv = FMT == KC_F32 ? static_cast<const float*>(w.data)[j * w.k + c] : bf2f(static_cast<const uint16_t*>(w.data)[j * w.k + c]);
#pragma unroll
      for (int r = 0; r < kRowsPerTile; ++r)
        if (r < rows) acc[r] = fmaf(wv, a.x[xrow[r] * a.ldx + c], acc[r]);
    }
  }
}

template <int FMT, bool VEC, bool DUAL>
__global__ void __launch_bounds__(kWarpsPerBlock * 32) rows_kernel(RowsArgs a) {
  Tile tile;
  if (a.tiles) {
    tile = a.tiles[blockIdx.y];
  } else {
    tile.expert = 0;
    tile.row0 = static_cast<int>(blockIdx.y) * kRowsPerTile;
    tile.rows = min(kRowsPerTile, a.T - tile.row0);
  }
  // padding tiles of a device-built tile table hold no rows: skip them instead of streaming a weight (no barriers here)
  if (tile.rows <= 0) return;
  const WDev w = a.wtab[tile.expert * a.wstride + a.woff];
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (j >= w.n) return;
  int64_t xrow[kRowsPerTile];
#pragma unroll
  for (int r = 0; r < kRowsPerTile; ++r) {
    const int t = tile.row0 + (r < tile.rows ? r : 0);
    xrow[r] = a.rowIdx ? a.rowIdx[t] : t;
  }
  float acc[kRowsPerTile], acc2[kRowsPerTile];
#pragma unroll
  for (int r = 0; r < kRowsPerTile; ++r) acc[r] = acc2[r] = 0.f;
  dot_rows<FMT, VEC>(w, j, a, xrow, tile.row0, tile.rows, acc);
  if (DUAL) {
    const WDev w2 = a.wtab[tile.expert * a.wstride + a.woff + 1];
    dot_rows<FMT, VEC>(w2, j, a, xrow, tile.row0, tile.rows, acc2);
  }
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int r = 0; r < kRowsPerTile; ++r) {
    if (r < tile.rows) {
      const float s = warp_sum(acc[r]);
      if (DUAL) {
        const float u = warp_sum(acc2[r]);
        if (lane == 0) a.out[(tile.row0 + r) * a.ldo + j] = silu_f(s) * u;
      } else if (lane == 0) {
        float* o = a.out + (tile.row0 + r) * a.ldo + j;
        const float v = s + (a.bias ? a.bias[j] : 0.f);
        *o = a.accumulate ? *o + v : v;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// bf16 matrix-matrix product on tensor cores (wmma m16n16k16, f32 accumulate). x is split into
// hi = bf16(x), lo = bf16(x - hi); out = hi·Wᵀ + lo·Wᵀ.

constexpr int kBM = 64, kBN = 64, kBK = 32, kLdS = kBK + 8, kLdC = kBN + 4;

__global__ void __launch_bounds__(128) gemm_bf16_wmma_kernel(const float* __restrict__ x, int64_t m, const uint16_t* __restrict__ w, int64_t n,
                                                              int64_t k, const float* __restrict__ bias, float* __restrict__ out) {
  using namespace nvcuda;
  constexpr int kTileBytes = kBM * kLdS * 2;
  constexpr int kSmem = (3 * kTileBytes > kBM * kLdC * 4) ? 3 * kTileBytes : kBM * kLdC * 4;
  __shared__ __align__(128) unsigned char smem[kSmem];
  __nv_bfloat16* ahi = reinterpret_cast<__nv_bfloat16*>(smem);
  __nv_bfloat16* alo = reinterpret_cast<__nv_bfloat16*>(smem + kTileBytes);
  __nv_bfloat16* bs = reinterpret_cast<__nv_bfloat16*>(smem + 2 * kTileBytes);
  float* cs = reinterpret_cast<float*>(smem);

  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kBM, n0 = static_cast<int64_t>(blockIdx.x) * kBN;
  const int warp = threadIdx.x >> 5, wm = warp >> 1, wn = warp & 1;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int jj = 0; jj < 2; ++jj) wmma::fill_fragment(acc[i][jj], 0.f);

  for (int64_t k0 = 0; k0 < k; k0 += kBK) {
    __syncthreads();
    for (int idx = threadIdx.x; idx < kBM * kBK; idx += blockDim.x) {
      const int r = idx / kBK, c = idx % kBK;
      const int64_t gr = m0 + r, gc = k0 + c;
      const float v = (gr < m && gc < k) ? x[gr * k + gc] : 0.f;
      const __nv_bfloat16 hi = __float2bfloat16_rn(v);
      ahi[r * kLdS + c] = hi;
      alo[r * kLdS + c] = __float2bfloat16_rn(v - __bfloat162float(hi));
      const int64_t gn = n0 + r;
      __nv_bfloat16_raw raw;
      raw.x = (gn < n && gc < k) ? w[gn * k + gc] : static_cast<unsigned short>(0);
      bs[r * kLdS + c] = __nv_bfloat16(raw);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kBK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fh[2], fl[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> fb[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        wmma::load_matrix_sync(fh[i], ahi + (wm * 32 + i * 16) * kLdS + kk, kLdS);
        wmma::load_matrix_sync(fl[i], alo + (wm * 32 + i * 16) * kLdS + kk, kLdS);
        wmma::load_matrix_sync(fb[i], bs + (wn * 32 + i * 16) * kLdS + kk, kLdS);
      }
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int jj = 0; jj < 2; ++jj) {
          wmma::mma_sync(acc[i][jj], fl[i], fb[jj], acc[i][jj]);
          wmma::mma_sync(acc[i][jj], fh[i], fb[jj], acc[i][jj]);
        }
    }
  }
  __syncthreads();
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int jj = 0; jj < 2; ++jj)
      wmma::store_matrix_sync(cs + (wm * 32 + i * 16) * kLdC + wn * 32 + jj * 16, acc[i][jj], kLdC, wmma::mem_row_major);
  __syncthreads();
  for (int idx = threadIdx.x; idx < kBM * kBN; idx += blockDim.x) {
    const int r = idx / kBN, c = idx % kBN;
    const int64_t gr = m0 + r, gc = n0 + c;
    if (gr < m && gc < n) out[gr * n + gc] = cs[r * kLdC + c] + (bias ? bias[gc] : 0.f);
  }
}

// ---------------------------------------------------------------------------------------------
// attention (causal with KV cache, or bidirectional); MLA decode is the nKvHeads = 1 case with the
// compressed latent (+ rope part) as k and the latent as v. One block per (query row, head).

// base (device, may be null): tk and qPos0 are relative to base[0] (the rows already in the cache), so one captured
// launch serves every decode position.
__global__ void attention_kernel(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, float* __restrict__ out,
                                 float* __restrict__ scratch, int tk, int nHeads, int group, int dqk, int dv, int64_t qStride, int64_t kStride,
                                 int64_t vStride, int64_t outStride, float scale, int causal, int qPos0, const int32_t* __restrict__ base) {
  extern __shared__ float qs[];
  if (base) {
    tk += base[0];
    qPos0 += base[0];
  }
  const int h = blockIdx.x, i = blockIdx.y, g = h / group;
  const int visible = causal ? min(tk, qPos0 + i + 1) : tk;
  float* s = scratch + (static_cast<int64_t>(i) * nHeads + h) * tk;
  const float* qh = q + i * qStride + static_cast<int64_t>(h) * dqk;
  for (int c = threadIdx.x; c < dqk; c += blockDim.x) qs[c] = qh[c];
  __syncthreads();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  for (int j = warp; j < visible; j += nw) {
    const float* kr = k + j * kStride + static_cast<int64_t>(g) * dqk;
    float d = 0.f;
    for (int c = lane; c < dqk; c += 32) d = fmaf(qs[c], kr[c], d);
    d = warp_sum(d);
    if (lane == 0) s[j] = d * scale;
  }
  __syncthreads();
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < visible; j += blockDim.x) mx = fmaxf(mx, s[j]);
  mx = block_max(mx);
  float sum = 0.f;
  for (int j = threadIdx.x; j < visible; j += blockDim.x) {
    const float e = expf(s[j] - mx);
    s[j] = e;
    sum += e;
  }
  sum = block_sum(sum);  // its barrier also publishes the s[j] writes
  const float inv = visible > 0 ? 1.f / sum : 0.f;
  float* o = out + i * outStride + static_cast<int64_t>(h) * dv;
  for (int c = threadIdx.x; c < dv; c += blockDim.x) {
    const float* vc = v + static_cast<int64_t>(g) * dv + c;
    float acc = 0.f;
    for (int j = 0; j < visible; ++j) acc = fmaf(s[j], vc[j * vStride], acc);
    o[c] = acc * inv;
  }
}

// ---------------------------------------------------------------------------------------------
// MoE router (one block per token) and the weighted combine of the grouped expert outputs

__global__ void moe_route_kernel(const float* __restrict__ logits, int E, int topK, int scoring, int method, int nGroup, int topkGroup,
                                 int normTopk, float scaling, const float* __restrict__ bias, int32_t* __restrict__ idx,
                                 float* __restrict__ weight, float* __restrict__ scores) {
  extern __shared__ float sm[];
  float* s = sm;        // [E] scores
  float* sel = sm + E;  // [E] selection scores
  float* gs = sm + 2 * E;  // [nGroup]
  const float* lr = logits + static_cast<int64_t>(blockIdx.x) * E;
  if (scoring == 0) {
    float mx = -INFINITY;
    for (int e = threadIdx.x; e < E; e += blockDim.x) mx = fmaxf(mx, lr[e]);
    mx = block_max(mx);
    float sum = 0.f;
    for (int e = threadIdx.x; e < E; e += blockDim.x) {
      const float x = expf(lr[e] - mx);
      s[e] = x;
      sum += x;
    }
    sum = block_sum(sum);
    for (int e = threadIdx.x; e < E; e += blockDim.x) s[e] /= sum;
  } else {
    for (int e = threadIdx.x; e < E; e += blockDim.x) s[e] = 1.f / (1.f + expf(-lr[e]));
  }
  for (int e = threadIdx.x; e < E; e += blockDim.x) {
    scores[static_cast<int64_t>(blockIdx.x) * E + e] = s[e];
    sel[e] = method == 2 ? s[e] + (bias ? bias[e] : 0.f) : s[e];
  }
  __syncthreads();
  if (threadIdx.x != 0) return;
  // Selection is serial: E is at most a few hundred and K small; ties keep the lower index (as the reference).
  if (method != 0) {
    const int per = E / nGroup;
    for (int gi = 0; gi < nGroup; ++gi) {
      float a = -INFINITY, b2 = -INFINITY;
      for (int e = 0; e < per; ++e) {
        const float x = sel[gi * per + e];
        if (x > a) {
          b2 = a;
          a = x;
        } else if (x > b2) {
          b2 = x;
        }
      }
      gs[gi] = method == 1 ? a : (per >= 2 ? a + b2 : a);
    }
    // keep the topkGroup best groups: mark them by setting their score to +inf, then zero the rest
    for (int t = 0; t < topkGroup; ++t) {
      int best = -1;
      for (int gi = 0; gi < nGroup; ++gi)
        if (gs[gi] != INFINITY && (best < 0 || gs[gi] > gs[best])) best = gi;
      if (best >= 0) gs[best] = INFINITY;
    }
    for (int gi = 0; gi < nGroup; ++gi)
      if (gs[gi] != INFINITY)
        for (int e = 0; e < per; ++e) sel[gi * per + e] = 0.f;
  }
  int32_t* ir = idx + static_cast<int64_t>(blockIdx.x) * topK;
  float* wr = weight + static_cast<int64_t>(blockIdx.x) * topK;
  float sum = 0.f;
  for (int t = 0; t < topK; ++t) {
    int best = -1;
    for (int e = 0; e < E; ++e)
      if (sel[e] != -INFINITY && (best < 0 || sel[e] > sel[best])) best = e;
    if (best < 0) best = 0;
    const float w = method == 2 ? s[best] : sel[best];
    sel[best] = -INFINITY;
    ir[t] = best;
    wr[t] = w;
    sum += w;
  }
  const float denom = sum + 1e-20f;
  const bool norm = topK > 1 && normTopk;
  for (int t = 0; t < topK; ++t) wr[t] = norm ? (wr[t] / denom) * scaling : wr[t] * scaling;
}

// ---------------------------------------------------------------------------------------------
// device-resident decode: what the host did between launches now happens on the GPU

// Counting sort of the (token, expert) slots by expert, and the tile table of the grouped expert launches,
// built on the device from the router's output so MoE needs no host round trip. One block; the fill is serial
// (slot order) so the row order, and with it the result, is deterministic. Unused tiles get rows = 0.
__global__ void moe_tiles_kernel(const int32_t* __restrict__ idx, int slots, int topK, int E, int maxTiles, int* __restrict__ rowIdx,
                                 int* __restrict__ pos, Tile* __restrict__ tiles) {
  extern __shared__ int cnt[];  // [E] counts, then [E] running starts
  int* st = cnt + E;
  for (int e = threadIdx.x; e < E; e += blockDim.x) cnt[e] = 0;
  __syncthreads();
  for (int s = threadIdx.x; s < slots; s += blockDim.x) {
    const int e = idx[s];
    if (e >= 0 && e < E) atomicAdd(&cnt[e], 1);
  }
  __syncthreads();
  if (threadIdx.x != 0) return;
  int acc = 0, nt = 0;
  for (int e = 0; e < E; ++e) {
    st[e] = acc;
    for (int o = 0; o < cnt[e] && nt < maxTiles; o += kRowsPerTile) tiles[nt++] = Tile{e, acc + o, min(kRowsPerTile, cnt[e] - o)};
    acc += cnt[e];
  }
  for (; nt < maxTiles; ++nt) tiles[nt] = Tile{0, 0, 0};
  for (int s = 0; s < slots; ++s) {
    const int e = idx[s];
    if (e < 0 || e >= E) {
      pos[s] = -1;  // an out-of-range index contributes nothing (the router never produces one)
      continue;
    }
    const int t = st[e]++;
    rowIdx[t] = s / topK;
    pos[s] = t;
  }
  // rows of skipped slots: point them at row 0 so whole-slot passes (activation quantization) read valid memory
  for (int t = acc; t < slots; ++t) rowIdx[t] = 0;
}

// out[r, c] = Σ_j weight[r, j] · y[pos[r*topK + j], c], skipping slots with pos < 0
// accumulate: out += the combination (the residual add fused in)
__global__ void combine_kernel(const float* __restrict__ y, const int* __restrict__ pos, const float* __restrict__ weight, int64_t m, int64_t h,
                                   int topK, float* __restrict__ out, int accumulate) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < m * h; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / h, c = i % h;
    float acc = 0.f;
    for (int j = 0; j < topK; ++j) {
      const int p = pos[r * topK + j];
      if (p >= 0) acc = fmaf(weight[r * topK + j], y[static_cast<int64_t>(p) * h + c], acc);
    }
    out[i] = accumulate ? out[i] + acc : acc;
  }
}

// Per-group products with one stacked weight W [G*n, k]: out[r*ldo + g*ogs + j] = Σ_c x[r*ldx + g*xgs + c] · W[g*n + j, c].
// MLA's absorbed per-head projections (W_ukᵀ, W_uv) for all heads in one launch. One warp per (group, column).
__global__ void __launch_bounds__(kWarpsPerBlock * 32) grouped_rows_kernel(const WDev* __restrict__ wp, int64_t n, const float* __restrict__ x, int m,
                                                                           int64_t ldx, int64_t xgs, float* __restrict__ out, int64_t ldo, int64_t ogs) {
  const WDev w = *wp;
  const int g = blockIdx.y;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (j >= n) return;
  const int lane = threadIdx.x & 31;
  const int64_t row = static_cast<int64_t>(g) * n + j;
  for (int r0 = 0; r0 < m; r0 += kRowsPerTile) {
    const int rows = min(kRowsPerTile, m - r0);
    float acc[kRowsPerTile];
#pragma unroll
    for (int r = 0; r < kRowsPerTile; ++r) acc[r] = 0.f;
    for (int64_t c = lane; c < w.k; c += 32) {
      const float wv = load_w(w, row, c);
#pragma unroll
      for (int r = 0; r < kRowsPerTile; ++r)
        if (r < rows) acc[r] = fmaf(wv, x[static_cast<int64_t>(r0 + r) * ldx + g * xgs + c], acc[r]);
    }
#pragma unroll
    for (int r = 0; r < kRowsPerTile; ++r) {
      if (r < rows) {
        const float s = warp_sum(acc[r]);
        if (lane == 0) out[static_cast<int64_t>(r0 + r) * ldo + g * ogs + j] = s;
      }
    }
  }
}

// Index of the largest value of each row (the lowest index among equals, as the host's greedy pick).
__global__ void argmax_kernel(const float* __restrict__ x, int64_t n, int32_t* __restrict__ out) {
  __shared__ float bv[32];
  __shared__ int bi[32];
  const float* r = x + blockIdx.x * n;
  float v = -INFINITY;
  int i = -1;
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
    const float y = r[c];
    if (i < 0 || y > v) {  // NaN never wins; within a thread c ascends, so ties keep the first
      if (!(y != y)) {
        v = y;
        i = static_cast<int>(c);
      }
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float v2 = __shfl_xor_sync(0xffffffffu, v, o);
    const int i2 = __shfl_xor_sync(0xffffffffu, i, o);
    if (i2 >= 0 && (i < 0 || v2 > v || (v2 == v && i2 < i))) {
      v = v2;
      i = i2;
    }
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  if (lane == 0) {
    bv[warp] = v;
    bi[warp] = i;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w2 = 1; w2 < nw; ++w2)
      if (bi[w2] >= 0 && (i < 0 || bv[w2] > v || (bv[w2] == v && bi[w2] < i))) {
        v = bv[w2];
        i = bi[w2];
      }
    out[blockIdx.x] = i < 0 ? 0 : i;
  }
}

// MLA before attention, one block (256 threads) per token row r, fusing four launches:
//   the latent c = kva[r, :kvl] is rmsnormed (as rmsnorm_kernel, same reduction), k_pe = kva[r, kvl:] is rotated
//   (de-interleaved rope at position pos[r]), and [c | k_pe] goes to cache row base[0] + r;
//   each head's q_pe = q[r, h*dq + nope:] is rotated and written to qAbs[r, h*lw + kvl:] (the absorbed query's rope part).
// Geometry by value (a captured launch keeps its arguments). Shared memory: (nHeads + 1) * rope floats.
__global__ void __launch_bounds__(256) mla_prep_kernel(const float* __restrict__ q, const float* __restrict__ kva, int nHeads, int dq, int nope, int rope,
                                                      int kvl, const float* __restrict__ normW, float eps, const float* __restrict__ cs,
                                                      const float* __restrict__ sn, const int32_t* __restrict__ pos, const int32_t* __restrict__ base,
                                                      float* __restrict__ cache, float* __restrict__ qAbs) {
  extern __shared__ float t[];
  const int r = blockIdx.x;
  const int lw = kvl + rope, half = rope / 2;
  const float* kr = kva + static_cast<int64_t>(r) * lw;
  float* crow = cache + (static_cast<int64_t>(base[0]) + r) * lw;
  float ss = 0.f;
  for (int c = threadIdx.x; c < kvl; c += blockDim.x) ss += kr[c] * kr[c];
  ss = block_sum(ss);
  const float inv = 1.f / sqrtf(ss / static_cast<float>(kvl) + eps);
  for (int c = threadIdx.x; c < kvl; c += blockDim.x) crow[c] = normW[c] * (kr[c] * inv);
  // stage every head's q_pe and k_pe de-interleaved: t[h*rope + i] / t[h*rope + half + i], k_pe last
  const float* qr = q + static_cast<int64_t>(r) * nHeads * dq;
  for (int i = threadIdx.x; i < (nHeads + 1) * half; i += blockDim.x) {
    const int h = i / half, j = i % half;
    const float* src = h < nHeads ? qr + h * dq + nope : kr + kvl;
    t[h * rope + j] = src[2 * j];
    t[h * rope + half + j] = src[2 * j + 1];
  }
  __syncthreads();
  const int64_t p = pos[r];
  for (int i = threadIdx.x; i < (nHeads + 1) * half; i += blockDim.x) {
    const int h = i / half, j = i % half;
    const float c = cs[p * half + j], s = sn[p * half + j];
    const float a = t[h * rope + j], b = t[h * rope + half + j];
    float* dst = h < nHeads ? qAbs + static_cast<int64_t>(r) * nHeads * lw + h * lw + kvl : crow + kvl;
    dst[j] = a * c - b * s;
    dst[half + j] = b * c + a * s;
  }
}

// cache[(base[0] + r) * width + c] = src[r * width + c]: appends rows at the position held on the device
__global__ void append_rows_kernel(float* __restrict__ cache, int64_t width, const float* __restrict__ src, int64_t rows, const int32_t* __restrict__ base) {
  float* dst = cache + static_cast<int64_t>(base[0]) * width;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < rows * width; i += static_cast<int64_t>(gridDim.x) * blockDim.x) dst[i] = src[i];
}

// ---------------------------------------------------------------------------------------------
// host side

int grid_for(int64_t len, int threads) {
  const int64_t b = (len + threads - 1) / threads;
  return static_cast<int>(std::min<int64_t>(std::max<int64_t>(b, 1), 65535 * 8));
}

// Growable device buffers, one per role, reused across calls (guarded by g_mu for the host-array path).
enum Slot { S_A, S_B, S_C, S_D, S_OUT, S_QX, S_QS, S_HQ, S_HS, S_H, S_Y, S_I0, S_I1, S_I2, S_W, S_COUNT };
struct Buf {
  void* p = nullptr;
  size_t cap = 0;
};
Buf g_ws[S_COUNT];

void* ws(int slot, size_t bytes) {
  Buf& b = g_ws[slot];
  if (bytes == 0) bytes = 16;
  if (b.cap >= bytes) return b.p;
  // grow by half again at least, so a KV cache that gains a row per decode step does not reallocate each step
  const size_t cap = std::max(bytes, b.cap * 3 / 2);
  if (b.p) cudaFree(b.p);
  b.p = nullptr;
  b.cap = 0;
  ++g_ws_epoch;
  if (cudaMalloc(&b.p, cap) != cudaSuccess) {
    b.p = nullptr;
    return nullptr;
  }
  b.cap = cap;
  return b.p;
}

template <class T>
T* wsT(int slot, size_t count) {
  return static_cast<T*>(ws(slot, count * sizeof(T)));
}

int up(void* d, const void* h, size_t bytes) {
  if (bytes) KC_CHECK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
  return 0;
}
int down(void* h, const void* d, size_t bytes) {
  if (bytes) KC_CHECK(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost));
  return 0;
}

#define KC_WS(var, T, slot, count)                                                  \
  T* var = wsT<T>(slot, static_cast<size_t>(count));                                \
  if (!(var)) return set_err("out of device memory (workspace " #var ")")

#define KC_TRY(expr)         \
  do {                       \
    if ((expr) != 0) return 1; \
  } while (0)

bool ready() { return g_ready; }

template <int FMT, bool DUAL>
void launch_rows(const RowsArgs& a, bool vec, int64_t n, int tiles) {
  const dim3 grid(static_cast<unsigned>((n + kWarpsPerBlock - 1) / kWarpsPerBlock), static_cast<unsigned>(tiles));
  if (vec) rows_kernel<FMT, true, DUAL><<<grid, kWarpsPerBlock * 32, 0, g_stream>>>(a);
  else rows_kernel<FMT, false, DUAL><<<grid, kWarpsPerBlock * 32, 0, g_stream>>>(a);
}

template <bool DUAL>
void launch_rows_fmt(int fmt, const RowsArgs& a, bool vec, int64_t n, int tiles) {
  if (fmt == KC_F32) launch_rows<KC_F32, DUAL>(a, vec, n, tiles);
  else if (fmt == KC_BF16) launch_rows<KC_BF16, DUAL>(a, vec, n, tiles);
  else if (fmt == kQ8F) launch_rows<kQ8F, DUAL>(a, vec, n, tiles);
  else launch_rows<KC_Q8, DUAL>(a, false, n, tiles);
}

int quantize_rows(const float* x, int64_t ldx, const int* rowIdx, int64_t T, int64_t k, int64_t kp, int8_t* xq, float* xs) {
  const int64_t warps = T * (kp / kQ8Block);
  if (warps == 0) return 0;
  quantize_kernel<<<grid_for(warps * 32, 256), 256, 0, g_stream>>>(x, ldx, rowIdx, static_cast<int>(T), k, kp, xq, xs);
  KC_LAUNCHED();
  return 0;
}

// How a row launch reads its activations (a.x, a.ldx, a.rowIdx; a.T rows of k): for q8 weights with int8
// activations they are quantized into workspace slots (a.xq/a.xs); q8 with f32 activations is its own launch
// format. Also says whether 16-byte vector loads are safe.
int prepare_rows(RowsArgs& a, int fmt, int64_t k, int slotQ, int slotS, int* launchFmt, bool* vec) {
  const bool aligned = reinterpret_cast<uintptr_t>(a.x) % 16 == 0 && a.ldx % 4 == 0;
  *launchFmt = fmt;
  *vec = k % 8 == 0 && aligned;
  if (fmt != KC_Q8) return 0;
  if (!g_q8_quantize_act) {
    *launchFmt = kQ8F;
    *vec = k % 32 == 0 && aligned;  // no padding inside a row
    return 0;
  }
  const int64_t kp = (k + kQ8Block - 1) / kQ8Block * kQ8Block;
  KC_WS(xq, int8_t, slotQ, a.T * kp);
  KC_WS(xs, float, slotS, a.T * kp / kQ8Block);
  KC_TRY(quantize_rows(a.x, a.ldx, a.rowIdx, a.T, k, kp, xq, xs));
  a.xq = xq;
  a.xs = xs;
  *vec = false;
  return 0;
}

}  // namespace

struct kc_weight {
  WDev h;       // host copy of the descriptor
  WDev* d;      // device copy (the kernels read it)
  int64_t bytes;
};

struct kc_graph {
  cudaGraphExec_t exec;
  uint64_t epoch;
};

struct kc_moe_group {
  int nExperts, fmtGU, fmtD;
  int64_t inter, h;
  WDev* tab;  // device: gate, up, down descriptors of each expert
  // device, for a one-expert group used as a dense MLP (kc_d_mlp): rows 0..15 in order, and for m = 1..16
  // the tiles covering rows 0..m-1 (two per m)
  int* ident;
  Tile* identTiles;
};

namespace {

// Grid dims for the row kernel must stay within limits: tiles go on grid.y (<= 65535).
int d_linear_impl(const float* x, int64_t m, const kc_weight* w, const float* bias, float* out, int accumulate = 0) {
  const WDev& wd = w->h;
  if (m <= 0 || wd.n <= 0) return 0;
  if (wd.fmt == KC_BF16 && m > 2 * kRowsPerTile) {
    if (accumulate) return set_err("linear_add: bf16 weights take the tensor-core GEMM above 16 rows, which does not accumulate");
    const dim3 grid(static_cast<unsigned>((wd.n + kBN - 1) / kBN), static_cast<unsigned>((m + kBM - 1) / kBM));
    if (grid.y > 65535) return set_err("linear: too many rows for one launch");
    gemm_bf16_wmma_kernel<<<grid, 128, 0, g_stream>>>(x, m, static_cast<const uint16_t*>(wd.data), wd.n, wd.k, bias, out);
    KC_LAUNCHED();
    return 0;
  }
  RowsArgs a{};
  a.wtab = w->d;
  a.wstride = 1;
  a.woff = 0;
  a.tiles = nullptr;
  a.T = static_cast<int>(m);
  a.rowIdx = nullptr;
  a.x = x;
  a.ldx = wd.k;
  a.bias = bias;
  a.out = out;
  a.ldo = wd.n;
  a.accumulate = accumulate;
  int fmt;
  bool vec;
  KC_TRY(prepare_rows(a, wd.fmt, wd.k, S_QX, S_QS, &fmt, &vec));
  const int64_t tiles = (m + kRowsPerTile - 1) / kRowsPerTile;
  if (tiles > 65535) return set_err("linear: too many rows for one launch");
  launch_rows_fmt<false>(fmt, a, vec, wd.n, static_cast<int>(tiles));
  KC_LAUNCHED();
  return 0;
}


// The two grouped launches of the routed experts, given the gathered row order (rowIdx), the tile table and the
// experts' descriptor table: H[t] = silu(x[row t]·gateᵀ) * (x[row t]·upᵀ), then Y[t] = H[t]·downᵀ (into slot S_Y).
// outDirect (optional): down writes there (+= with accumulate) instead of the slot buffer, row t to row t; for a
// one-expert MLP whose tiles cover rows 0..slots-1 in order.
int experts_launch(const float* dx, int64_t h, const WDev* dTab, int fmtGU, int fmtD, int64_t inter, const int* dRow, const Tile* dTiles, int nTiles,
                   int64_t slots, float** yOut, float* outDirect = nullptr, int accumulate = 0) {
  KC_WS(dH, float, S_H, slots * inter);
  KC_WS(dY, float, S_Y, slots * h);
  // gate and up of every expert in one launch: H[t] = silu(x[row t]·gateᵀ) * (x[row t]·upᵀ)
  RowsArgs a{};
  a.wtab = dTab;
  a.wstride = 3;
  a.woff = 0;
  a.tiles = dTiles;
  a.T = static_cast<int>(slots);
  a.rowIdx = dRow;
  a.x = dx;
  a.ldx = h;
  a.out = dH;
  a.ldo = inter;
  int fmt;
  bool vec;
  KC_TRY(prepare_rows(a, fmtGU, h, S_QX, S_QS, &fmt, &vec));
  launch_rows_fmt<true>(fmt, a, vec, inter, nTiles);
  KC_LAUNCHED();

  // down of every expert in one launch: Y[t] = H[t]·downᵀ
  RowsArgs b{};
  b.wtab = dTab;
  b.wstride = 3;
  b.woff = 2;
  b.tiles = dTiles;
  b.T = static_cast<int>(slots);
  b.rowIdx = nullptr;
  b.x = dH;
  b.ldx = inter;
  b.out = outDirect ? outDirect : dY;
  b.ldo = h;
  b.accumulate = outDirect ? accumulate : 0;
  KC_TRY(prepare_rows(b, fmtD, inter, S_HQ, S_HS, &fmt, &vec));
  launch_rows_fmt<false>(fmt, b, vec, h, nTiles);
  KC_LAUNCHED();
  *yOut = dY;
  return 0;
}

// Attention on device buffers (geom as in kc_attention). Scores go to a scratch of (query rows x heads x keys);
// long prefills run in query chunks so it stays under 256 MB (and grid.y under its limit).
int attention_launch(const float* dq, const float* dk, const float* dvv, float* dout, const int32_t* geom, float scale, const int32_t* base = nullptr,
                     int maxTk = 0) {
  const int tq = geom[0], tk = geom[1], nHeads = geom[2], nKvHeads = geom[3], dqk = geom[4], dv = geom[5];
  const int64_t qStride = geom[6], kStride = geom[7], vStride = geom[8], outStride = geom[9];
  const int causal = geom[10], qPos0 = geom[11];
  if (tq <= 0 || nHeads <= 0) return 0;
  if (dqk * 4 > 48 * 1024) return set_err("attention: head dim too large");
  if (nKvHeads <= 0 || nHeads % nKvHeads != 0) return set_err("attention: nHeads must be a multiple of nKvHeads");
  // with a device base the keys can reach maxTk; the scratch is sized for that
  const int64_t perRow = static_cast<int64_t>(nHeads) * std::max(base ? maxTk : tk, 1);
  const int chunk = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({static_cast<int64_t>(tq), (int64_t{64} << 20) / perRow, int64_t{65535}})));
  KC_WS(scr, float, S_D, chunk * perRow);
  for (int i0 = 0; i0 < tq; i0 += chunk) {
    const int rows = std::min(chunk, tq - i0);
    const dim3 grid(static_cast<unsigned>(nHeads), static_cast<unsigned>(rows));
    attention_kernel<<<grid, 128, static_cast<size_t>(dqk) * 4, g_stream>>>(dq + i0 * qStride, dk, dvv, dout + i0 * outStride, scr, tk, nHeads, nHeads / nKvHeads, dqk, dv,
                                                                   qStride, kStride, vStride, outStride, scale, causal, qPos0 + i0, base);
    KC_LAUNCHED();
  }
  return 0;
}

}  // namespace

extern "C" {

int kc_abi_version(void) { return KC_ABI_VERSION; }

const char* kc_last_error(void) { return g_err.c_str(); }

int kc_init(void) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_ready) return 0;
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky status so a later call reports afresh
    // The runtime reports a missing driver as "insufficient"; say which it is.
    void* drv = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
    if (!drv) return set_err("no NVIDIA driver found (libcuda.so.1 cannot be loaded); a GPU and its driver are needed for device 'cuda'");
    dlclose(drv);
    return set_err(std::string("no usable CUDA GPU: ") + cudaGetErrorString(e) + " (the CUDA 13 runtime needs driver 580 or newer)");
  }
  if (count == 0) return set_err("no CUDA-capable GPU found");
  cudaDeviceProp p{};
  KC_CHECK(cudaGetDeviceProperties(&p, 0));
  if (p.major < 8) {
    return set_err(std::string("GPU ") + p.name + " has compute capability " + std::to_string(p.major) + "." + std::to_string(p.minor) +
                   "; the Kestrel CUDA kernels need 8.0 or newer (bf16 tensor cores)");
  }
  KC_CHECK(cudaSetDevice(0));
  KC_CHECK(cudaFree(nullptr));  // creates the context now, so the first op does not pay for it
  KC_CHECK(cudaStreamCreate(&g_stream));
  g_ready = true;
  return 0;
}

int kc_device_info(char* name, size_t name_len, int* cc_major, int* cc_minor, size_t* total_mem, int* sm_count) {
  if (!ready()) return set_err("kc_init has not succeeded");
  cudaDeviceProp p{};
  KC_CHECK(cudaGetDeviceProperties(&p, 0));
  if (name && name_len) {
    std::strncpy(name, p.name, name_len - 1);
    name[name_len - 1] = '\0';
  }
  if (cc_major) *cc_major = p.major;
  if (cc_minor) *cc_minor = p.minor;
  if (total_mem) *total_mem = p.totalGlobalMem;
  if (sm_count) *sm_count = p.multiProcessorCount;
  return 0;
}

kc_weight* kc_prepare_linear(int format, int64_t n, int64_t k, const void* data, const float* scales) {
  if (!ready()) {
    set_err("kc_init has not succeeded");
    return nullptr;
  }
  if (n <= 0 || k <= 0 || (format != KC_F32 && format != KC_BF16 && format != KC_Q8) || !data || (format == KC_Q8 && !scales)) {
    set_err("prepare_linear: bad format or shape");
    return nullptr;
  }
  const int64_t kp = (k + kQ8Block - 1) / kQ8Block * kQ8Block;
  const size_t dbytes = static_cast<size_t>(format == KC_F32 ? n * k * 4 : format == KC_BF16 ? n * k * 2 : n * kp);
  const size_t sbytes = format == KC_Q8 ? static_cast<size_t>(n * kp / kQ8Block * 4) : 0;
  kc_weight* w = new kc_weight();
  void* dd = nullptr;
  float* ds = nullptr;
  WDev* desc = nullptr;
  cudaError_t e = cudaMalloc(&dd, dbytes);
  if (e == cudaSuccess && sbytes) e = cudaMalloc(reinterpret_cast<void**>(&ds), sbytes);
  if (e == cudaSuccess) e = cudaMalloc(reinterpret_cast<void**>(&desc), sizeof(WDev));
  if (e == cudaSuccess) e = cudaMemcpy(dd, data, dbytes, cudaMemcpyHostToDevice);
  if (e == cudaSuccess && sbytes) e = cudaMemcpy(ds, scales, sbytes, cudaMemcpyHostToDevice);
  w->h = WDev{format, n, k, kp, dd, ds};
  if (e == cudaSuccess) e = cudaMemcpy(desc, &w->h, sizeof(WDev), cudaMemcpyHostToDevice);
  if (e != cudaSuccess) {
    set_err(std::string("prepare_linear: ") + cudaGetErrorString(e));
    cudaFree(dd);
    cudaFree(ds);
    cudaFree(desc);
    delete w;
    return nullptr;
  }
  w->d = desc;
  w->bytes = static_cast<int64_t>(dbytes + sbytes);
  return w;
}

void kc_release_linear(kc_weight* w) {
  if (!w) return;
  cudaFree(const_cast<void*>(w->h.data));
  cudaFree(const_cast<float*>(w->h.scales));
  cudaFree(w->d);
  delete w;
}

int64_t kc_weight_bytes(const kc_weight* w) { return w ? w->bytes : 0; }

// ---- device-pointer ops

void* kc_d_alloc(size_t bytes) {
  void* p = nullptr;
  if (cudaMalloc(&p, bytes ? bytes : 16) != cudaSuccess) {
    set_err("out of device memory");
    return nullptr;
  }
  return p;
}
void kc_d_free(void* p) { cudaFree(p); }
int kc_d_upload(void* dst, const void* src, size_t bytes) { return up(dst, src, bytes); }
int kc_d_download(void* dst, const void* src, size_t bytes) { return down(dst, src, bytes); }
int kc_d_sync(void) {
  KC_CHECK(cudaStreamSynchronize(g_stream));
  return 0;
}

int kc_d_linear(const float* x, int64_t m, const kc_weight* w, const float* bias, float* out) {
  std::lock_guard<std::mutex> lock(g_mu);
  return d_linear_impl(x, m, w, bias, out);
}

int kc_d_rmsnorm(const float* x, int64_t m, int64_t n, int64_t ldx, const float* weight, float eps, float* out, int64_t ldo) {
  if (m <= 0) return 0;
  rmsnorm_kernel<<<static_cast<unsigned>(m), 256, 0, g_stream>>>(x, n, ldx, weight, eps, out, ldo);
  KC_LAUNCHED();
  return 0;
}

int kc_d_embedding(const kc_weight* table, const int32_t* ids, int64_t m, float* out) {
  if (m <= 0) return 0;
  embedding_kernel<<<static_cast<unsigned>(m), 256, 0, g_stream>>>(table->d, ids, out);
  KC_LAUNCHED();
  return 0;
}

int kc_d_memcpy(void* dst, const void* src, size_t bytes) {
  if (bytes) KC_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g_stream));
  return 0;
}

int kc_d_copy_rows(float* dst, int64_t ldd, const float* src, int64_t lds, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) return 0;
  KC_CHECK(cudaMemcpy2DAsync(dst, static_cast<size_t>(ldd) * 4, src, static_cast<size_t>(lds) * 4, static_cast<size_t>(cols) * 4,
                             static_cast<size_t>(rows), cudaMemcpyDeviceToDevice, g_stream));
  return 0;
}

int kc_d_binary(int op, const float* a, const float* b, int64_t len, float* out) {
  if (len <= 0) return 0;
  binary_kernel<<<grid_for(len, 256), 256, 0, g_stream>>>(op, a, b, len, out);
  KC_LAUNCHED();
  return 0;
}

int kc_d_rope(float* x, const int32_t* geom, const int32_t* positions, const float* cos, const float* sin) {
  const int m = geom[0], nHeads = geom[1], headStride = geom[2], rowStride = geom[3], offset = geom[4], dim = geom[5], interleaved = geom[6];
  if (m <= 0 || nHeads <= 0) return 0;
  rope_kernel<<<static_cast<unsigned>(m) * nHeads, 64, static_cast<size_t>(dim) * 4, g_stream>>>(x, nHeads, headStride, rowStride, offset, dim, interleaved, cos, sin,
                                                                                      positions);
  KC_LAUNCHED();
  return 0;
}

int kc_d_attention(const float* q, const float* k, const float* v, float* out, const int32_t* geom, float scale) {
  std::lock_guard<std::mutex> lock(g_mu);
  return attention_launch(q, k, v, out, geom, scale);
}

int kc_d_moe_route(const float* logits, int64_t m, int32_t n_experts, const int32_t* cfg, const float* bias, float scaling, int32_t* idx, float* weight,
                   float* scores) {
  const int E = n_experts, topK = cfg[0], scoring = cfg[1], method = cfg[2], nGroup = cfg[3], topkGroup = cfg[4], normTopk = cfg[5];
  if (m <= 0) return 0;
  const size_t smem = static_cast<size_t>(2 * E + std::max(nGroup, 1)) * 4;
  moe_route_kernel<<<static_cast<unsigned>(m), 128, smem, g_stream>>>(logits, E, topK, scoring, method, std::max(nGroup, 1), topkGroup, normTopk, scaling, bias, idx,
                                                            weight, scores);
  KC_LAUNCHED();
  return 0;
}

kc_moe_group* kc_moe_group_create(const kc_weight* const* experts, int32_t n_experts) {
  if (!ready()) {
    set_err("kc_init has not succeeded");
    return nullptr;
  }
  if (n_experts <= 0) {
    set_err("moe_group_create: no experts");
    return nullptr;
  }
  std::vector<WDev> tab(static_cast<size_t>(n_experts) * 3);
  const WDev& g0 = experts[0]->h;
  const WDev& d0 = experts[2]->h;
  for (int e = 0; e < n_experts; ++e) {
    const WDev& g = experts[3 * e]->h;
    const WDev& u = experts[3 * e + 1]->h;
    const WDev& d = experts[3 * e + 2]->h;
    if (g.fmt != g0.fmt || u.fmt != g0.fmt || d.fmt != d0.fmt || g.n != g0.n || u.n != g0.n || u.k != g0.k || g.k != g0.k || d.n != d0.n || d.k != g0.n ||
        d.n != g0.k) {
      set_err("moe_group_create: the routed experts differ in format or shape; the grouped launch needs them alike");
      return nullptr;
    }
    tab[3 * static_cast<size_t>(e)] = g;
    tab[3 * static_cast<size_t>(e) + 1] = u;
    tab[3 * static_cast<size_t>(e) + 2] = d;
  }
  auto* grp = new kc_moe_group{};
  std::vector<int> ident(2 * kRowsPerTile);
  std::vector<Tile> itiles(2 * 2 * kRowsPerTile, Tile{0, 0, 0});
  for (int i = 0; i < 2 * kRowsPerTile; ++i) ident[static_cast<size_t>(i)] = i;
  for (int m = 1; m <= 2 * kRowsPerTile; ++m) {
    Tile* t = &itiles[static_cast<size_t>(m - 1) * 2];
    t[0] = Tile{0, 0, std::min(m, kRowsPerTile)};
    if (m > kRowsPerTile) t[1] = Tile{0, kRowsPerTile, m - kRowsPerTile};
  }
  if (cudaMalloc(&grp->ident, ident.size() * sizeof(int)) != cudaSuccess || cudaMalloc(&grp->identTiles, itiles.size() * sizeof(Tile)) != cudaSuccess ||
      cudaMemcpy(grp->ident, ident.data(), ident.size() * sizeof(int), cudaMemcpyHostToDevice) != cudaSuccess ||
      cudaMemcpy(grp->identTiles, itiles.data(), itiles.size() * sizeof(Tile), cudaMemcpyHostToDevice) != cudaSuccess) {
    set_err("moe_group_create: out of device memory");
    cudaFree(grp->ident);
    cudaFree(grp->identTiles);
    delete grp;
    return nullptr;
  }
  grp->nExperts = n_experts;
  grp->fmtGU = g0.fmt;
  grp->fmtD = d0.fmt;
  grp->inter = g0.n;
  grp->h = g0.k;
  if (cudaMalloc(&grp->tab, tab.size() * sizeof(WDev)) != cudaSuccess ||
      cudaMemcpy(grp->tab, tab.data(), tab.size() * sizeof(WDev), cudaMemcpyHostToDevice) != cudaSuccess) {
    set_err("moe_group_create: out of device memory");
    cudaFree(grp->tab);
    cudaFree(grp->ident);
    cudaFree(grp->identTiles);
    delete grp;
    return nullptr;
  }
  return grp;
}

void kc_moe_group_release(kc_moe_group* g) {
  if (!g) return;
  cudaFree(g->tab);
  cudaFree(g->ident);
  cudaFree(g->identTiles);
  delete g;
}

int kc_d_moe_experts(const float* x, int64_t m, int64_t h, const kc_moe_group* g, const int32_t* idx, const float* weight, int32_t top_k, float* out) {
  return kc_d_moe_experts_acc(x, m, h, g, idx, weight, top_k, out, 0);
}

int kc_d_moe_experts_acc(const float* x, int64_t m, int64_t h, const kc_moe_group* g, const int32_t* idx, const float* weight, int32_t top_k, float* out,
                         int accumulate) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (m <= 0) return 0;
  if (h != g->h) return set_err("moeExperts: hidden size " + std::to_string(h) + " does not match the experts' " + std::to_string(g->h));
  if (top_k <= 0) {
    if (!accumulate) KC_CHECK(cudaMemsetAsync(out, 0, static_cast<size_t>(m * h) * 4, g_stream));
    return 0;
  }
  const int64_t slots = m * top_k;
  // at most ceil(slots/8) full tiles plus one partial tile per expert in use
  const int64_t maxTiles = (slots + kRowsPerTile - 1) / kRowsPerTile + std::min<int64_t>(g->nExperts, slots);
  if (maxTiles > 65535) return set_err("moeExperts: too many rows for one launch");
  KC_WS(dRow, int, S_I0, slots);
  KC_WS(dPos, int, S_I1, slots);
  KC_WS(dTiles, Tile, S_I2, maxTiles);
  moe_tiles_kernel<<<1, 256, static_cast<size_t>(2 * g->nExperts) * 4, g_stream>>>(idx, static_cast<int>(slots), top_k, g->nExperts, static_cast<int>(maxTiles), dRow,
                                                                         dPos, dTiles);
  KC_LAUNCHED();
  float* dY = nullptr;
  KC_TRY(experts_launch(x, h, g->tab, g->fmtGU, g->fmtD, g->inter, dRow, dTiles, static_cast<int>(maxTiles), slots, &dY));
  combine_kernel<<<grid_for(m * h, 256), 256, 0, g_stream>>>(dY, dPos, weight, m, h, top_k, out, accumulate);
  KC_LAUNCHED();
  return 0;
}

int kc_d_linear_grouped(const float* x, int64_t m, int64_t ldx, int32_t groups, int64_t x_group_stride, const kc_weight* w, float* out, int64_t ldo,
                        int64_t out_group_stride) {
  if (m <= 0 || groups <= 0) return 0;
  if (w->h.n % groups != 0) return set_err("linear_grouped: weight rows are not a multiple of the group count");
  const int64_t n = w->h.n / groups;
  const dim3 grid(static_cast<unsigned>((n + kWarpsPerBlock - 1) / kWarpsPerBlock), static_cast<unsigned>(groups));
  grouped_rows_kernel<<<grid, kWarpsPerBlock * 32, 0, g_stream>>>(w->d, n, x, static_cast<int>(m), ldx, x_group_stride, out, ldo, out_group_stride);
  KC_LAUNCHED();
  return 0;
}

int kc_d_linear_add(const float* x, int64_t m, const kc_weight* w, const float* bias, float* out) {
  std::lock_guard<std::mutex> lock(g_mu);
  return d_linear_impl(x, m, w, bias, out, 1);
}

int kc_d_mla_prep(const float* q, const float* kva, const int32_t* geom, const float* norm_w, float eps, const float* cos, const float* sin,
                  const int32_t* positions, const int32_t* base, float* cache, float* q_abs) {
  const int T = geom[0], nHeads = geom[1], dq = geom[2], nope = geom[3], rope = geom[4], kvl = geom[5];
  if (T <= 0) return 0;
  if (rope % 2 != 0 || rope <= 0) return set_err("mla_prep: rope dims must be even and positive");
  if (static_cast<int64_t>(nHeads + 1) * rope * 4 > 48 * 1024) return set_err("mla_prep: (nHeads + 1) * rope floats exceed 48 KB of shared memory");
  mla_prep_kernel<<<static_cast<unsigned>(T), 256, static_cast<size_t>(nHeads + 1) * rope * 4, g_stream>>>(q, kva, nHeads, dq, nope, rope, kvl, norm_w, eps,
                                                                                                          cos, sin, positions, base, cache, q_abs);
  KC_LAUNCHED();
  return 0;
}

int kc_d_mlp(const float* x, int64_t m, const kc_moe_group* g, float* out, int accumulate) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (m <= 0) return 0;
  if (g->nExperts != 1) return set_err("mlp: needs a group of one expert (gate, up, down)");
  if (m > 2 * kRowsPerTile) return set_err("mlp: at most 16 rows per call");
  float* dY = nullptr;
  const int nTiles = m > kRowsPerTile ? 2 : 1;
  return experts_launch(x, g->h, g->tab, g->fmtGU, g->fmtD, g->inter, g->ident, g->identTiles + (m - 1) * 2, nTiles, m, &dY, out, accumulate);
}

int kc_d_argmax(const float* x, int64_t m, int64_t n, int32_t* out) {
  if (m <= 0) return 0;
  argmax_kernel<<<static_cast<unsigned>(m), 256, 0, g_stream>>>(x, n, out);
  KC_LAUNCHED();
  return 0;
}

int kc_d_attention_at(const float* q, const float* k, const float* v, float* out, const int32_t* geom, float scale, const int32_t* base, int32_t max_tk) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!base || max_tk <= 0) return set_err("attention_at: needs a device base and max_tk > 0");
  return attention_launch(q, k, v, out, geom, scale, base, max_tk);
}

int kc_d_append_rows(float* cache, int64_t width, const float* src, int64_t rows, const int32_t* base) {
  if (rows <= 0 || width <= 0) return 0;
  append_rows_kernel<<<grid_for(rows * width, 256), 256, 0, g_stream>>>(cache, width, src, rows, base);
  KC_LAUNCHED();
  return 0;
}

uint64_t kc_ws_epoch(void) { return g_ws_epoch; }

int kc_set_q8_activations(int quantize) {
  std::lock_guard<std::mutex> lock(g_mu);
  // graphs captured in the other mode would replay it: bumping the epoch makes them stale
  if (g_q8_quantize_act != (quantize != 0)) ++g_ws_epoch;
  g_q8_quantize_act = quantize != 0;
  return 0;
}

int kc_profiler(int on) {
  KC_CHECK(on ? cudaProfilerStart() : cudaProfilerStop());
  return 0;
}

int kc_graph_begin(void) {
  g_capture_epoch = g_ws_epoch;
  KC_CHECK(cudaStreamBeginCapture(g_stream, cudaStreamCaptureModeRelaxed));
  return 0;
}

int kc_graph_end(kc_graph** out) {
  *out = nullptr;
  cudaGraph_t g = nullptr;
  KC_CHECK(cudaStreamEndCapture(g_stream, &g));
  if (g_capture_epoch != g_ws_epoch) {
    // a workspace moved during the capture: nodes captured before that hold freed addresses
    cudaGraphDestroy(g);
    return set_err("graph_end: a workspace moved during the capture; run the step once without a graph, then capture again");
  }
  cudaGraphExec_t x = nullptr;
  const cudaError_t e = cudaGraphInstantiate(&x, g, 0);
  cudaGraphDestroy(g);
  if (e != cudaSuccess) return set_err(std::string("graph instantiate: ") + cudaGetErrorString(e));
  *out = new kc_graph{x, g_ws_epoch};
  return 0;
}

int kc_graph_launch(const kc_graph* g) {
  if (g->epoch != g_ws_epoch) return set_err("graph_launch: the graph is stale (a workspace moved since it was captured); capture it again");
  KC_CHECK(cudaGraphLaunch(g->exec, g_stream));
  return 0;
}

void kc_graph_release(kc_graph* g) {
  if (!g) return;
  cudaGraphExecDestroy(g->exec);
  delete g;
}

double kc_d_copy_bandwidth(size_t bytes, int reps) {
  void *a = nullptr, *b = nullptr;
  cudaEvent_t e0, e1;
  if (cudaMalloc(&a, bytes) != cudaSuccess) return -1;
  if (cudaMalloc(&b, bytes) != cudaSuccess) {
    cudaFree(a);
    return -1;
  }
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);  // warm-up
  cudaEventRecord(e0);
  for (int i = 0; i < reps; ++i) cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
  cudaEventRecord(e1);
  cudaEventSynchronize(e1);
  float ms = 0.f;
  cudaEventElapsedTime(&ms, e0, e1);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaFree(a);
  cudaFree(b);
  // a copy reads and writes every byte
  return ms > 0.f ? 2.0 * static_cast<double>(bytes) * reps / (static_cast<double>(ms) * 1e6) : -1;
}

// ---- host-array ops

#define KC_READY()                                        \
  std::lock_guard<std::mutex> lock(g_mu);                 \
  if (!ready()) return set_err("kc_init has not succeeded")

int kc_linear(const float* x, int64_t m, const kc_weight* w, const float* bias, float* out) {
  KC_READY();
  if (m <= 0) return 0;
  const int64_t n = w->h.n, k = w->h.k;
  KC_WS(dx, float, S_A, m * k);
  KC_WS(dout, float, S_OUT, m * n);
  float* db = nullptr;
  if (bias) {
    KC_WS(t, float, S_B, n);
    KC_TRY(up(t, bias, n * 4));
    db = t;
  }
  KC_TRY(up(dx, x, m * k * 4));
  KC_TRY(d_linear_impl(dx, m, w, db, dout));
  return down(out, dout, m * n * 4);
}

int kc_rmsnorm(const float* x, int64_t m, int64_t n, const float* weight, float eps, float* out) {
  KC_READY();
  if (m <= 0 || n <= 0) return 0;
  KC_WS(dx, float, S_A, m * n);
  KC_WS(dw, float, S_B, n);
  KC_WS(dout, float, S_OUT, m * n);
  KC_TRY(up(dx, x, m * n * 4));
  KC_TRY(up(dw, weight, n * 4));
  rmsnorm_kernel<<<static_cast<unsigned>(m), 256, 0, g_stream>>>(dx, n, n, dw, eps, dout, n);
  KC_LAUNCHED();
  return down(out, dout, m * n * 4);
}

int kc_layernorm(const float* x, int64_t m, int64_t n, const float* weight, const float* bias, float eps, float* out) {
  KC_READY();
  if (m <= 0 || n <= 0) return 0;
  KC_WS(dx, float, S_A, m * n);
  KC_WS(dw, float, S_B, n);
  KC_WS(db, float, S_C, n);
  KC_WS(dout, float, S_OUT, m * n);
  KC_TRY(up(dx, x, m * n * 4));
  KC_TRY(up(dw, weight, n * 4));
  KC_TRY(up(db, bias, n * 4));
  layernorm_kernel<<<static_cast<unsigned>(m), 256, 0, g_stream>>>(dx, n, dw, db, eps, dout);
  KC_LAUNCHED();
  return down(out, dout, m * n * 4);
}

int kc_unary(int op, const float* x, int64_t len, float* out) {
  KC_READY();
  if (len <= 0) return 0;
  KC_WS(dx, float, S_A, len);
  KC_TRY(up(dx, x, len * 4));
  unary_kernel<<<grid_for(len, 256), 256, 0, g_stream>>>(op, dx, len, dx);
  KC_LAUNCHED();
  return down(out, dx, len * 4);
}

int kc_binary(int op, const float* a, const float* b, int64_t len, float* out) {
  KC_READY();
  if (len <= 0) return 0;
  KC_WS(da, float, S_A, len);
  KC_WS(db, float, S_B, len);
  KC_TRY(up(da, a, len * 4));
  KC_TRY(up(db, b, len * 4));
  binary_kernel<<<grid_for(len, 256), 256, 0, g_stream>>>(op, da, db, len, da);
  KC_LAUNCHED();
  return down(out, da, len * 4);
}

int kc_softmax(float* x, int64_t m, int64_t n) {
  KC_READY();
  if (m <= 0 || n <= 0) return 0;
  KC_WS(dx, float, S_A, m * n);
  KC_TRY(up(dx, x, m * n * 4));
  softmax_kernel<<<static_cast<unsigned>(m), 256, 0, g_stream>>>(dx, n);
  KC_LAUNCHED();
  return down(x, dx, m * n * 4);
}

int kc_embedding(const kc_weight* table, const int32_t* ids, int64_t m, float* out) {
  KC_READY();
  if (m <= 0) return 0;
  for (int64_t i = 0; i < m; ++i)
    if (ids[i] < 0 || ids[i] >= table->h.n) return set_err("embedding: token id " + std::to_string(ids[i]) + " outside [0, " + std::to_string(table->h.n) + ")");
  const int64_t k = table->h.k;
  KC_WS(dids, int32_t, S_I0, m);
  KC_WS(dout, float, S_OUT, m * k);
  KC_TRY(up(dids, ids, m * 4));
  embedding_kernel<<<static_cast<unsigned>(m), 256, 0, g_stream>>>(table->d, dids, dout);
  KC_LAUNCHED();
  return down(out, dout, m * k * 4);
}

int kc_rope(float* x, int64_t xlen, const int32_t* geom, const int32_t* positions, const float* cos, const float* sin, int64_t max_pos) {
  KC_READY();
  const int m = geom[0], nHeads = geom[1], headStride = geom[2], rowStride = geom[3], offset = geom[4], dim = geom[5], interleaved = geom[6];
  if (m <= 0 || nHeads <= 0) return 0;
  const int half = dim / 2;
  // Gather the table rows of the positions in use, so only m rows cross the bus.
  std::vector<float> cs(static_cast<size_t>(m) * half), sn(static_cast<size_t>(m) * half);
  for (int r = 0; r < m; ++r) {
    const int64_t p = positions[r];
    if (p < 0 || p >= max_pos) return set_err("rope: position " + std::to_string(p) + " outside the table [0, " + std::to_string(max_pos) + ")");
    std::memcpy(&cs[static_cast<size_t>(r) * half], cos + p * half, static_cast<size_t>(half) * 4);
    std::memcpy(&sn[static_cast<size_t>(r) * half], sin + p * half, static_cast<size_t>(half) * 4);
  }
  KC_WS(dx, float, S_A, xlen);
  KC_WS(dc, float, S_B, cs.size());
  KC_WS(ds, float, S_C, sn.size());
  KC_TRY(up(dx, x, xlen * 4));
  KC_TRY(up(dc, cs.data(), cs.size() * 4));
  KC_TRY(up(ds, sn.data(), sn.size() * 4));
  rope_kernel<<<static_cast<unsigned>(m) * nHeads, 64, static_cast<size_t>(dim) * 4, g_stream>>>(dx, nHeads, headStride, rowStride, offset, dim, interleaved, dc, ds, nullptr);
  KC_LAUNCHED();
  return down(x, dx, xlen * 4);
}

int kc_attention(const float* q, int64_t qlen, const float* k, int64_t klen, const float* v, int64_t vlen, float* out, int64_t outlen,
                 const int32_t* geom, float scale) {
  KC_READY();
  if (geom[0] <= 0 || geom[2] <= 0) return 0;
  KC_WS(dq, float, S_A, qlen);
  KC_WS(dk, float, S_B, klen);
  KC_WS(dvv, float, S_C, vlen);
  KC_WS(dout, float, S_OUT, outlen);
  KC_TRY(up(dq, q, qlen * 4));
  KC_TRY(up(dk, k, klen * 4));
  KC_TRY(up(dvv, v, vlen * 4));
  // rows of out not written by this call (strided views) must keep their contents
  KC_TRY(up(dout, out, outlen * 4));
  KC_TRY(attention_launch(dq, dk, dvv, dout, geom, scale));
  return down(out, dout, outlen * 4);
}

int kc_moe_route(const float* logits, int64_t m, int32_t n_experts, const int32_t* cfg, const float* bias, float scaling, int32_t* idx, float* weight,
                 float* scores) {
  KC_READY();
  const int E = n_experts, topK = cfg[0], scoring = cfg[1], method = cfg[2], nGroup = cfg[3], topkGroup = cfg[4], normTopk = cfg[5];
  if (m <= 0) return 0;
  KC_WS(dl, float, S_A, m * E);
  KC_WS(ds, float, S_B, m * E);
  KC_WS(dw, float, S_C, m * topK);
  KC_WS(di, int32_t, S_I0, m * topK);
  float* db = nullptr;
  if (bias) {
    KC_WS(t, float, S_D, E);
    KC_TRY(up(t, bias, static_cast<size_t>(E) * 4));
    db = t;
  }
  KC_TRY(up(dl, logits, m * E * 4));
  const size_t smem = static_cast<size_t>(2 * E + std::max(nGroup, 1)) * 4;
  moe_route_kernel<<<static_cast<unsigned>(m), 128, smem, g_stream>>>(dl, E, topK, scoring, method, std::max(nGroup, 1), topkGroup, normTopk, scaling, db, di, dw, ds);
  KC_LAUNCHED();
  KC_TRY(down(idx, di, m * topK * 4));
  KC_TRY(down(weight, dw, m * topK * 4));
  return down(scores, ds, m * E * 4);
}

int kc_moe_experts(const float* x, int64_t m, int64_t h, const kc_weight* const* experts, int32_t n_experts, const int32_t* idx, const float* weight,
                   int32_t top_k, float* out) {
  KC_READY();
  if (m <= 0) return 0;
  const int64_t slots = m * top_k;
  // the grouped launch needs one format per projection and one intermediate size
  int64_t inter = -1;
  int fmtGU = -1, fmtD = -1;
  std::vector<int> count(static_cast<size_t>(n_experts), 0);
  for (int64_t s = 0; s < slots; ++s) {
    const int e = idx[s];
    if (e < 0 || e >= n_experts) return set_err("moeExperts: expert index " + std::to_string(e) + " outside [0, " + std::to_string(n_experts) + ")");
    ++count[static_cast<size_t>(e)];
  }
  std::vector<WDev> tab(static_cast<size_t>(n_experts) * 3);
  for (int e = 0; e < n_experts; ++e) {
    const kc_weight* g = experts[3 * e];
    const kc_weight* u = experts[3 * e + 1];
    const kc_weight* d = experts[3 * e + 2];
    tab[3 * static_cast<size_t>(e)] = g->h;
    tab[3 * static_cast<size_t>(e) + 1] = u->h;
    tab[3 * static_cast<size_t>(e) + 2] = d->h;
    if (count[static_cast<size_t>(e)] == 0) continue;
    if (fmtGU < 0) {
      fmtGU = g->h.fmt;
      fmtD = d->h.fmt;
      inter = g->h.n;
    }
    if (g->h.fmt != fmtGU || u->h.fmt != fmtGU || d->h.fmt != fmtD || g->h.n != inter || u->h.n != inter || d->h.k != inter || g->h.k != h ||
        u->h.k != h || d->h.n != h)
      return set_err("moeExperts: the routed experts differ in format or shape; the grouped launch needs them alike");
  }
  // counting sort of the slots by expert: logical row t = the t-th (expert, slot) pair
  if (fmtGU < 0) {  // top_k == 0: nothing is routed
    std::memset(out, 0, static_cast<size_t>(m * h) * 4);
    return 0;
  }
  std::vector<int> start(static_cast<size_t>(n_experts) + 1, 0);
  for (int e = 0; e < n_experts; ++e) start[static_cast<size_t>(e) + 1] = start[static_cast<size_t>(e)] + count[static_cast<size_t>(e)];
  std::vector<int> fill(start.begin(), start.end() - 1);
  std::vector<int> rowIdx(static_cast<size_t>(slots)), pos(static_cast<size_t>(slots));
  for (int64_t s = 0; s < slots; ++s) {
    const int t = fill[static_cast<size_t>(idx[s])]++;
    rowIdx[static_cast<size_t>(t)] = static_cast<int>(s / top_k);
    pos[static_cast<size_t>(s)] = t;
  }
  std::vector<Tile> tiles;
  for (int e = 0; e < n_experts; ++e)
    for (int o = 0; o < count[static_cast<size_t>(e)]; o += kRowsPerTile)
      tiles.push_back(Tile{e, start[static_cast<size_t>(e)] + o, std::min(kRowsPerTile, count[static_cast<size_t>(e)] - o)});
  if (tiles.size() > 65535) return set_err("moeExperts: too many rows for one launch");

  KC_WS(dx, float, S_A, m * h);
  KC_WS(dwt, float, S_B, slots);
  KC_WS(dout, float, S_OUT, m * h);
  KC_WS(dRow, int, S_I0, slots);
  KC_WS(dPos, int, S_I1, slots);
  KC_WS(dTiles, Tile, S_I2, tiles.size());
  KC_WS(dTab, WDev, S_W, tab.size());
  KC_TRY(up(dx, x, m * h * 4));
  KC_TRY(up(dwt, weight, slots * 4));
  KC_TRY(up(dRow, rowIdx.data(), slots * 4));
  KC_TRY(up(dPos, pos.data(), slots * 4));
  KC_TRY(up(dTiles, tiles.data(), tiles.size() * sizeof(Tile)));
  KC_TRY(up(dTab, tab.data(), tab.size() * sizeof(WDev)));
  float* dY = nullptr;
  KC_TRY(experts_launch(dx, h, dTab, fmtGU, fmtD, inter, dRow, dTiles, static_cast<int>(tiles.size()), slots, &dY));
  combine_kernel<<<grid_for(m * h, 256), 256, 0, g_stream>>>(dY, dPos, dwt, m, h, top_k, dout, 0);
  KC_LAUNCHED();
  return down(out, dout, m * h * 4);
}

}  // extern "C"
