#include "listener/warmer.h"

#include <spdlog/spdlog.h>

#include "listener/fault.h"
#include "listener/json_text.h"
#include "primers/key_codec.h"
#include "primers/warm.h"
#include "sql/embedded.h"

namespace kck {

void Warmer::Loaded(const Registry& registry, Clock::time_point now) {
  due_.clear();
  next_.clear();
  every_.clear();
  levels_.clear();
  for (const auto& p : registry.primers()) {
    if (!p->spec.Warms()) continue;
    due_.push_back(p->spec.name);
    if (p->spec.warm_every) {
      every_[p->spec.name] = *p->spec.warm_every;
      next_[p->spec.name] = now + *p->spec.warm_every;
    }
  }
}

void Warmer::Tick(Clock::time_point now) {
  // A warm-up slower than warm_every ends before the next one is planned:
  // the plan never piles up.
  if (!levels_.empty()) return;
  for (auto& [name, at] : next_) {
    if (now < at) continue;
    at = now + every_[name];
    MarkDue(name);
  }
}

void Warmer::MarkDue(const std::string& name) {
  if (std::find(due_.begin(), due_.end(), name) == due_.end()) due_.push_back(name);
}

void Warmer::PutBack(std::vector<std::string> slice) {
  if (levels_.empty()) levels_.emplace_back();
  auto& level = levels_.front();
  level.insert(level.begin(), std::make_move_iterator(slice.begin()), std::make_move_iterator(slice.end()));
}

Task<StatusOr<std::vector<std::string>>> Warmer::ListKeys(const Primer& primer) {
  if (!primer.python()) {
    const BoundSql warm = WarmStatement(primer.spec);
    auto rows = co_await compute_.Query(warm.sql);
    if (!rows.ok()) co_return InUserSql(rows.status(), warm);
    co_return WarmKeys(primer.spec, *rows);
  }
  if (worker_ == nullptr) co_return Status::Runtime("warm() needs the python worker (kck listen --python-worker)");
  nlohmann::json req;  // built field by field: GCC 12 mishandles literals in a coroutine's braced lists
  req["op"] = std::string("warm");
  req["primer"] = primer.spec.name;
  auto reply = co_await worker_->Call(std::move(req));
  if (!reply.ok()) co_return reply.status();
  std::vector<std::string> keys;
  const nlohmann::json& list = (*reply)["keys"];
  if (!list.is_array()) co_return Status::Runtime("the worker's answer has no \"keys\" list");
  for (const auto& k : list) {
    if (!k.is_string()) co_return Status::Runtime("warm() listed a key that is not a string");
    auto values = DecodeKey(k.get<std::string>(), primer.spec.name, primer.spec.params);
    if (!values.ok()) co_return values.status().WithContext("warm() listed a bad key");
    keys.push_back(k.get<std::string>());
  }
  co_return keys;
}

Task<Status> Warmer::Plan(const Registry& registry) {
  std::map<std::string, std::vector<std::string>> wanted;
  const std::vector<std::string> due = std::exchange(due_, {});
  co_await fault::At("warm_plan", compute_);
  for (const std::string& name : due) {
    const Primer* primer = registry.Find(name);
    if (primer == nullptr) continue;
    auto keys = co_await ListKeys(*primer);
    if (!keys.ok() && keys.status().transient()) {
      for (const std::string& again : due) MarkDue(again);  // the whole plan, on the next try
      co_return keys.status();
    }
    if (!keys.ok()) {
      spdlog::error("primer \"{}\": warm: {}", name, pg::Excerpt(keys.status().message(), 500));
      continue;
    }
    wanted[name] = std::move(*keys);
  }
  size_t planned = 0;
  for (auto& level : PlanWarm(registry, wanted)) {
    planned += level.size();
    levels_.emplace_back(level.begin(), level.end());
  }
  if (planned) spdlog::info("warm-up: {} products planned for {} primers", planned, due.size());
  co_return Status::Ok();
}

std::vector<std::string> Warmer::NextSlice() {
  std::vector<std::string> slice;
  while (!levels_.empty() && levels_.front().empty()) levels_.pop_front();
  if (levels_.empty()) return slice;
  auto& level = levels_.front();
  while (!level.empty() && slice.size() < slice_) {
    slice.push_back(std::move(level.front()));
    level.pop_front();
  }
  return slice;
}

void Warmer::Resize(Clock::time_point now) {
  if (!queued_at_) return;
  // The last slice was computed by now (the outbox is empty).
  const double took = std::chrono::duration<double>(now - *queued_at_).count();
  const double target = std::chrono::duration<double>(kSliceTime).count();
  const double scaled = static_cast<double>(slice_) * target / std::max(took, 1e-3);
  slice_ = std::clamp(static_cast<size_t>(scaled), kMinSlice, std::min(kMaxSlice, 2 * slice_));
  queued_at_.reset();
}

Task<StatusOr<size_t>> Warmer::Step(const Registry& registry) {
  Resize(Clock::now());
  if (!due_.empty()) {
    Status s = co_await Plan(registry);
    if (!s.ok()) co_return s;
  }
  // Slices whose keys are all stored queue nothing: look at a few at once.
  for (int looked = 0; looked < 20 && !levels_.empty(); ++looked) {
    std::vector<std::string> slice = NextSlice();
    if (slice.empty()) break;
    std::vector<AsyncConnection::Statement> queue = {
        {"BEGIN", {}},
        {"SELECT pg_advisory_xact_lock(7037805, 1)", {}},
        {std::string(sql::File("daemon_warm_queue.sql")), {pg::ArrayLiteral(slice)}},
        {"COMMIT", {}}};
    co_await fault::At("warm_queue", queue_);
    auto done = co_await queue_.Pipeline(std::move(queue));
    if (!done.ok()) {
      PutBack(std::move(slice));  // queued on the next try
      (void)co_await queue_.Script("ROLLBACK");
      co_return done.status();
    }
    const size_t queued = ParsedNumber<size_t>((*done)[2].get(0, 0));
    // A slice that queued work ends the step: the next level waits for it.
    if (queued > 0) {
      queued_at_ = Clock::now();
      co_return queued;
    }
  }
  co_return size_t{0};
}

}  // namespace kck
