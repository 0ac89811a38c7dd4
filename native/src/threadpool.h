// A small fork-join pool: run(n, fn) executes fn(task, thread) for every task in [0, n) on the workers and the
// calling thread, and returns when all tasks are done. Tasks are claimed one at a time from a counter tagged
// with the job number, so the caller never waits for a worker that has not woken up yet (on a loaded machine
// a descheduled worker simply claims nothing), only for tasks already claimed. Idle workers spin briefly
// (decode issues many short jobs back to back) and then sleep on a condition variable.
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
  /** Not re-entrant: one run at a time (the Engine's mutex guarantees it). */
  void run(int64_t ntasks, const Task& fn);

 private:
  void worker_loop(int id);
  void work(uint64_t job, int thread);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  // high 32 bits: job number; low 32 bits: next task index of that job
  std::atomic<uint64_t> claim_{0};
  std::atomic<uint64_t> job_{0};
  std::atomic<int64_t> done_{0};
  std::atomic<int64_t> ntasks_{0};
  std::atomic<const Task*> fn_{nullptr};
  std::atomic<bool> stop_{false};
};

}  // namespace kestrel
