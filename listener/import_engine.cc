#include "listener/import_engine.h"

#include <chrono>
#include <coroutine>

#include "primers/key_codec.h"

namespace kck {
namespace {

// Runs FetchImport on libuv's thread pool; the awaiting coroutine resumes
// on the loop when it is done.
class FetchOnPool {
 public:
  FetchOnPool(uv_loop_t* loop, const PrimerSpec& spec, NamedValues values, Validators previous)
      : loop_(loop), spec_(spec), values_(std::move(values)), previous_(std::move(previous)) {}
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    waiter_ = h;
    work_.data = this;
    int rc = uv_queue_work(
        loop_, &work_, [](uv_work_t* w) { static_cast<FetchOnPool*>(w->data)->Run(); },
        [](uv_work_t* w, int) { static_cast<FetchOnPool*>(w->data)->waiter_.resume(); });
    if (rc != 0) {
      result_ = Status::Runtime(std::string("cannot queue the fetch: ") + uv_strerror(rc));
      h.resume();
    }
  }
  StatusOr<Fetched> await_resume() { return std::move(result_); }

 private:
  void Run() { result_ = FetchImport(spec_, values_, previous_); }

  uv_loop_t* loop_;
  const PrimerSpec spec_;  // a copy: the registry may be reloaded while the fetch runs
  NamedValues values_;
  Validators previous_;
  uv_work_t work_{};
  std::coroutine_handle<> waiter_;
  StatusOr<Fetched> result_ = Status::Runtime("not fetched");
};

}  // namespace

Task<StatusOr<Computed>> ImportEngine::Compute(const Primer& primer, const std::string& key) {
  auto decoded = DecodeKey(key, primer.spec.name, primer.spec.params);
  if (!decoded.ok()) co_return decoded.status();
  auto known = remembered_.find(key);
  Validators previous = known == remembered_.end() ? Validators{} : known->second.validators;
  auto t0 = std::chrono::steady_clock::now();
  auto fetched = co_await FetchOnPool(loop_, primer.spec, primer.KeyValues(*decoded), std::move(previous));
  if (!fetched.ok()) co_return fetched.status();  // Runtime: the primer's error, the value is kept
  Computed c;
  c.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  known = remembered_.find(key);
  if (fetched->not_modified && known != remembered_.end()) {
    c.value = known->second.json;
    co_return c;
  }
  c.value = fetched->json;
  if (remembered_.size() > 10000) remembered_.clear();
  if (!fetched->validators.etag.empty() || !fetched->validators.last_modified.empty()) {
    remembered_[key] = {fetched->validators, fetched->json};
  }
  co_return c;
}

}  // namespace kck
