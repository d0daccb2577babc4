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
  req["change"] = {{"table", change.table}, {"op", std::string(1, change.op)}, {"old", ParsedJson(change.old_row)},
                   {"new", ParsedJson(change.new_row)}};
  auto reply = co_await worker_->Call(std::move(req));
  if (!reply.ok() && reply.status().message() == kDeclined) co_return Result();
  if (!reply.ok()) co_return reply.status();
  if (!reply->contains("value")) co_return Status::Runtime("augment reply has no value");
  co_return Result((*reply)["value"].dump());
}

}  // namespace kck
