#include "listener/python_engine.h"

#include "listener/json_text.h"

namespace kck {
namespace {

// What the worker answers for an augment it declines (CannotAugment).
constexpr std::string_view kDeclined = "cannot augment";

}  // namespace

Task<StatusOr<Computed>> PythonEngine::Compute(const Primer& primer, const std::string& key) {
  (void)primer;  // the worker knows its primers by the key's name
  if (worker_ == nullptr) co_return Status::Runtime("python primer needs kck listen --python-worker");
  nlohmann::json req;
  req["op"] = std::string("compute");
  req["key"] = key;
  auto reply = co_await worker_->Call(std::move(req));
  if (!reply.ok()) co_return reply.status();
  Computed c;
  if (auto gone = reply->find("gone"); gone != reply->end() && *gone == true) {
    c.gone = true;
    co_return c;
  }
  if (!reply->contains("value")) co_return Status::Runtime("python worker replied without a value");
  c.value = (*reply)["value"].dump();
  if (reply->contains("snapshot") && (*reply)["snapshot"].is_string()) {
    c.snapshot = (*reply)["snapshot"].get<std::string>();
  }
  co_return c;
}

namespace {

nlohmann::json ChangeJson(const ChangeImage& change) {
  nlohmann::json j;  // field by field: GCC 12 mishandles braced lists in coroutines
  j["table"] = change.table;
  j["op"] = std::string(1, change.op);
  j["old"] = ParsedJson(change.old_row);
  j["new"] = ParsedJson(change.new_row);
  return j;
}

// The worker's answer to an augment: the new value, nullopt when it
// declined (CannotAugment), or its failure.
StatusOr<std::optional<std::string>> AugmentedValue(const StatusOr<nlohmann::json>& reply) {
  using Result = std::optional<std::string>;
  if (!reply.ok() && reply.status().message() == kDeclined) return Result();
  if (!reply.ok()) return reply.status();
  if (!reply->contains("value")) return Status::Runtime("augment reply has no value");
  return Result((*reply)["value"].dump());
}

}  // namespace

Task<StatusOr<std::optional<std::string>>> PythonEngine::AugmentAll(const Primer& primer, const std::string& key,
                                                                    std::vector<ChangeImage> changes,
                                                                    std::string current) {
  if (worker_ == nullptr) co_return std::optional<std::string>();
  const bool ready = co_await worker_->Ready();  // its hello says which protocol it speaks
  // Not running after Ready's wait: failing now, as Call would, rather than
  // through the one-by-one path, which would wait for it again.
  if (!ready) co_return Status::Unavailable("python worker is not running");
  if (worker_->protocol() < 2 || changes.size() == 1) {
    co_return co_await Engine::AugmentAll(primer, key, std::move(changes), std::move(current));
  }
  nlohmann::json req;
  req["op"] = std::string("augment");
  req["key"] = key;
  req["value"] = ParsedJson(current);
  nlohmann::json list = nlohmann::json::array();
  for (const ChangeImage& change : changes) list.push_back(ChangeJson(change));
  req["changes"] = std::move(list);
  auto reply = co_await worker_->Call(std::move(req));
  co_return AugmentedValue(reply);
}

Task<StatusOr<std::optional<std::string>>> PythonEngine::Augment(const Primer& primer, const std::string& key,
                                                                 const ChangeImage& change,
                                                                 const std::string& current) {
  (void)primer;
  using Result = std::optional<std::string>;
  if (worker_ == nullptr) co_return Result();
  nlohmann::json req;
  req["op"] = std::string("augment");
  req["key"] = key;
  req["value"] = ParsedJson(current);
  req["change"] = ChangeJson(change);
  auto reply = co_await worker_->Call(std::move(req));
  co_return AugmentedValue(reply);
}

}  // namespace kck
