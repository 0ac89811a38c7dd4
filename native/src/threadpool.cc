#include "threadpool.h"

#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KESTREL_PAUSE() _mm_pause()
#else
#define KESTREL_PAUSE() std::this_thread::yield()
#endif

namespace kestrel {

namespace {
// How long an idle worker polls for the next job before it sleeps: enough to bridge the gaps between the ops
// of one decode step, short enough not to burn a shared machine's CPU while the model is idle.
constexpr auto kSpin = std::chrono::microseconds(100);
}  // namespace

ThreadPool::ThreadPool(int threads) {
  if (threads < 1) threads = 1;
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
    job_.fetch_add(1);
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

// Claim and run tasks of `job` until none are left or a newer job replaced it. A successful claim of job J
// means J is not complete yet (that task is not done), so fn_/ntasks_ still describe J.
void ThreadPool::work(uint64_t job, int thread) {
  for (;;) {
    uint64_t v = claim_.load(std::memory_order_acquire);
    if ((v >> 32) != (job & 0xffffffffu)) return;
    const int64_t idx = static_cast<int64_t>(v & 0xffffffffu);
    if (idx >= ntasks_.load(std::memory_order_acquire)) return;
    if (!claim_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel)) continue;
    (*fn_.load(std::memory_order_acquire))(idx, thread);
    done_.fetch_add(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::worker_loop(int id) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t job = job_.load(std::memory_order_acquire);
    if (job == seen) {
      const auto until = std::chrono::steady_clock::now() + kSpin;
      int polls = 0;
      while ((job = job_.load(std::memory_order_acquire)) == seen) {
        KESTREL_PAUSE();
        if (++polls % 64 == 0 && std::chrono::steady_clock::now() > until) break;
      }
      if (job == seen) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return job_.load(std::memory_order_acquire) != seen; });
        job = job_.load(std::memory_order_acquire);
      }
    }
    seen = job;
    if (stop_.load()) return;
    work(job, id);
  }
}

void ThreadPool::run(int64_t ntasks, const Task& fn) {
  if (ntasks <= 0) return;
  if (workers_.empty() || ntasks == 1) {
    for (int64_t t = 0; t < ntasks; ++t) fn(t, 0);
    return;
  }
  const uint64_t job = job_.load(std::memory_order_relaxed) + 1;
  fn_.store(&fn, std::memory_order_relaxed);
  ntasks_.store(ntasks, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  claim_.store((job & 0xffffffffu) << 32, std::memory_order_release);
  {
    // Publishing under the mutex pairs with the sleepers' predicate check, so no wake-up is lost.
    std::lock_guard<std::mutex> lock(mu_);
    job_.store(job, std::memory_order_release);
  }
  cv_.notify_all();
  work(job, 0);
  int polls = 0;
  while (done_.load(std::memory_order_acquire) != ntasks) {
    // A claimed task runs on a thread that may be descheduled on a busy machine: yield rather than spin.
    if (++polls < 256) KESTREL_PAUSE();
    else std::this_thread::yield();
  }
}

}  // namespace kestrel
