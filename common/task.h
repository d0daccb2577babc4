// Task<T>: a lazily started C++20 coroutine, so the daemon's multi-step
// work (claim, plan, compute, write) reads top to bottom while the libuv
// loop stays free between steps. A Task runs when awaited; Spawn() starts a
// top-level one. Errors travel as Status values, never as exceptions.
#pragma once

#include <coroutine>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>

namespace kck {

namespace detail {

struct TaskPromiseBase {
  std::coroutine_handle<> continuation;
  struct FinalAwaiter {
    bool await_ready() noexcept { return false; }
    template <typename P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      auto c = h.promise().continuation;
      return c ? c : std::noop_coroutine();
    }
    void await_resume() noexcept {}
  };
  std::suspend_always initial_suspend() noexcept { return {}; }
  FinalAwaiter final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept {
    std::fputs("kck: unexpected exception in a coroutine\n", stderr);
    std::abort();
  }
};

}  // namespace detail

template <typename T = void>
class Task;

namespace detail {

template <typename T>
struct TaskPromise : TaskPromiseBase {
  std::optional<T> value;
  Task<T> get_return_object();
  void return_value(T v) { value = std::move(v); }
};

template <>
struct TaskPromise<void> : TaskPromiseBase {
  Task<void> get_return_object();
  void return_void() {}
};

}  // namespace detail

template <typename T>
class [[nodiscard]] Task {
 public:
  using promise_type = detail::TaskPromise<T>;

  Task(Task&& other) noexcept : h_(std::exchange(other.h_, nullptr)) {}
  Task(const Task&) = delete;
  ~Task() {
    if (h_) h_.destroy();
  }

  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> cont) noexcept {
    h_.promise().continuation = cont;
    return h_;
  }
  T await_resume() {
    if constexpr (!std::is_void_v<T>) return std::move(*h_.promise().value);
  }

 private:
  friend promise_type;
  explicit Task(std::coroutine_handle<promise_type> h) : h_(h) {}
  std::coroutine_handle<promise_type> h_;
};

namespace detail {

template <typename T>
Task<T> TaskPromise<T>::get_return_object() {
  return Task<T>(std::coroutine_handle<TaskPromise<T>>::from_promise(*this));
}

inline Task<void> TaskPromise<void>::get_return_object() {
  return Task<void>(std::coroutine_handle<TaskPromise<void>>::from_promise(*this));
}

}  // namespace detail

namespace detail {
struct Detached {
  struct promise_type {
    Detached get_return_object() { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() {}
    void unhandled_exception() noexcept { std::abort(); }
  };
};
inline Detached RunDetached(Task<void> task, std::function<void()> done) {
  co_await task;
  if (done) done();
}
}  // namespace detail

// Starts `task` now; it runs until its first suspension and continues from
// loop callbacks. `done` runs when it finishes.
inline void Spawn(Task<void> task, std::function<void()> done = {}) {
  detail::RunDetached(std::move(task), std::move(done));
}

// A one-shot point a coroutine waits at until someone calls Set().
class Event {
 public:
  bool await_ready() const noexcept { return set_; }
  void await_suspend(std::coroutine_handle<> h) noexcept { waiter_ = h; }
  void await_resume() noexcept { set_ = false; }
  // Wakes the waiter (now, from the caller's stack) or marks the event set.
  void Set() {
    set_ = true;
    if (auto w = std::exchange(waiter_, nullptr)) w.resume();
  }

 private:
  bool set_ = false;
  std::coroutine_handle<> waiter_;
};

}  // namespace kck
