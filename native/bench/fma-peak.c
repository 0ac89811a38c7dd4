/* fp32 FMA peak of this machine: each thread runs 12 independent chains of vector FMAs (enough to cover FMA
 * latency x ports) for a fixed time; prints one JSON line with GFLOP/s per thread and in total. The widest ISA the
 * CPU has is picked at run time (AVX-512F, else AVX2+FMA).
 * build: cc -O2 -pthread -o /tmp/fma-peak native/bench/fma-peak.c   run: /tmp/fma-peak [THREADS] [SECONDS] */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static double seconds = 1.0;
static int use512 = 0;
static volatile float sink;
/* distinct starting values, read through a volatile, so the compiler cannot merge the identical chains into one */
static volatile float seed[12] = {1.00f, 1.01f, 1.02f, 1.03f, 1.04f, 1.05f, 1.06f, 1.07f, 1.08f, 1.09f, 1.10f, 1.11f};

__attribute__((target("avx512f"))) static double run512(void) {
  __m512 a0 = _mm512_set1_ps(seed[0]), a1 = _mm512_set1_ps(seed[1]), a2 = _mm512_set1_ps(seed[2]), a3 = _mm512_set1_ps(seed[3]),
         a4 = _mm512_set1_ps(seed[4]), a5 = _mm512_set1_ps(seed[5]), a6 = _mm512_set1_ps(seed[6]), a7 = _mm512_set1_ps(seed[7]),
         a8 = _mm512_set1_ps(seed[8]), a9 = _mm512_set1_ps(seed[9]), a10 = _mm512_set1_ps(seed[10]), a11 = _mm512_set1_ps(seed[11]);
  const __m512 b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  long n = 0; double t0 = now(), t;
  do {
    for (int i = 0; i < 4096; i++) {
      a0 = _mm512_fmadd_ps(a0, b, c); a1 = _mm512_fmadd_ps(a1, b, c); a2 = _mm512_fmadd_ps(a2, b, c); a3 = _mm512_fmadd_ps(a3, b, c);
      a4 = _mm512_fmadd_ps(a4, b, c); a5 = _mm512_fmadd_ps(a5, b, c); a6 = _mm512_fmadd_ps(a6, b, c); a7 = _mm512_fmadd_ps(a7, b, c);
      a8 = _mm512_fmadd_ps(a8, b, c); a9 = _mm512_fmadd_ps(a9, b, c); a10 = _mm512_fmadd_ps(a10, b, c); a11 = _mm512_fmadd_ps(a11, b, c);
    }
    n += 4096; t = now();
  } while (t - t0 < seconds);
  __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)), _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
  s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
  sink = _mm512_reduce_add_ps(s);
  return n * 12.0 * 16 * 2 / (t - t0);
}

__attribute__((target("avx2,fma"))) static double run256(void) {
  __m256 a0 = _mm256_set1_ps(seed[0]), a1 = _mm256_set1_ps(seed[1]), a2 = _mm256_set1_ps(seed[2]), a3 = _mm256_set1_ps(seed[3]),
         a4 = _mm256_set1_ps(seed[4]), a5 = _mm256_set1_ps(seed[5]), a6 = _mm256_set1_ps(seed[6]), a7 = _mm256_set1_ps(seed[7]),
         a8 = _mm256_set1_ps(seed[8]), a9 = _mm256_set1_ps(seed[9]), a10 = _mm256_set1_ps(seed[10]), a11 = _mm256_set1_ps(seed[11]);
  const __m256 b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  long n = 0; double t0 = now(), t;
  do {
    for (int i = 0; i < 4096; i++) {
      a0 = _mm256_fmadd_ps(a0, b, c); a1 = _mm256_fmadd_ps(a1, b, c); a2 = _mm256_fmadd_ps(a2, b, c); a3 = _mm256_fmadd_ps(a3, b, c);
      a4 = _mm256_fmadd_ps(a4, b, c); a5 = _mm256_fmadd_ps(a5, b, c); a6 = _mm256_fmadd_ps(a6, b, c); a7 = _mm256_fmadd_ps(a7, b, c);
      a8 = _mm256_fmadd_ps(a8, b, c); a9 = _mm256_fmadd_ps(a9, b, c); a10 = _mm256_fmadd_ps(a10, b, c); a11 = _mm256_fmadd_ps(a11, b, c);
    }
    n += 4096; t = now();
  } while (t - t0 < seconds);
  __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)), _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
  s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
  float o[8]; _mm256_storeu_ps(o, s); sink = o[0];
  return n * 12.0 * 8 * 2 / (t - t0);
}

static void* worker(void* out) { *(double*)out = use512 ? run512() : run256(); return NULL; }

int main(int argc, char** argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  if (argc > 2) seconds = atof(argv[2]);
  if (threads < 1 || threads > 256) threads = 1;
  __builtin_cpu_init();
  use512 = __builtin_cpu_supports("avx512f");
  if (!use512 && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) { printf("{\"error\":\"no AVX2/FMA\"}\n"); return 1; }
  pthread_t th[256]; double r[256]; double total = 0;
  for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, worker, &r[i]);
  for (int i = 0; i < threads; i++) { pthread_join(th[i], NULL); total += r[i]; }
  printf("{\"isa\":\"%s\",\"threads\":%d,\"seconds\":%.2f,\"fp32_fma_gflops\":%.1f,\"per_thread_gflops\":%.1f}\n",
         use512 ? "avx512f" : "avx2+fma", threads, seconds, total / 1e9, total / 1e9 / threads);
  return 0;
}
