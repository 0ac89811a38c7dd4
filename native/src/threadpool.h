// A small fork-join pool: run(n, fn) executes fn(task, thread) for every task in [0, n) on the workers and the
// calling thread, and returns when all are done. Workers spin briefly between jobs (decode issues many short
// jobs back to back) and then sleep on a condition variable so an idle process costs no CPU.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace kestrel {

class ThreadPool {
 public:
  using Task = std::function<void(int64_t task, int thread)>;

  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  /** Threads that execute tasks, the caller included. */
  int size() const { return static_cast<int>(workers_.size()) + 1; }
  void run(int64_t ntasks, const Task& fn);

 private:
  void worker_loop(int id);
  void work(int thread);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int64_t> next_{0};
  std::atomic<int> busy_{0};
  std::atomic<bool> stop_{false};
  const Task* fn_ = nullptr;
  int64_t ntasks_ = 0;
};

}  // namespace kestrel
