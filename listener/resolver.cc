#include "listener/resolver.h"

#include <spdlog/spdlog.h>

#include <set>

#include "listener/fault.h"
#include "listener/json_text.h"
#include "pg/connection.h"
#include "sql/embedded.h"

namespace kck {
namespace {

// Every stored product of the primer: what a change maps to when its rule
// cannot say which.
void AddWholePrimer(Plan& plan, const Primer* primer, size_t change) {
  plan.partial.push_back({primer, std::vector<std::optional<std::string>>(primer->spec.params.size()), change});
}


// The keys a Python keys rule returns for one row pair.
Task<StatusOr<std::vector<std::string>>> PythonKeys(const KeysQuery& q, WorkerPool* worker) {
  if (worker == nullptr) co_return Status::Runtime("keys rule needs kck listen --python-worker");
  nlohmann::json req;
  req["op"] = std::string("keys");
  req["primer"] = q.primer->spec.name;
  req["rule"] = *q.primer->spec.depends_on[q.rule].python_rule;
  req["old"] = ParsedJson(q.rows.old_row);
  req["new"] = ParsedJson(q.rows.new_row);
  auto reply = co_await worker->Call(std::move(req));
  if (!reply.ok()) co_return reply.status();
  std::vector<std::string> keys;
  const auto& list = (*reply)["keys"];
  if (list.is_array()) {
    for (const auto& k : list) {
      if (k.is_string()) keys.push_back(k.get<std::string>());
    }
  }
  co_return keys;
}

// The keys a SQL keys rule returns for one row pair.
Task<StatusOr<std::vector<std::string>>> SqlKeys(const KeysQuery& q, AsyncConnection& compute) {
  const BoundSql& sql = q.primer->keys.at(q.rule);
  NamedValues args;
  args[std::string("old")] = q.rows.old_row;
  args[std::string("new")] = q.rows.new_row;
  auto res = co_await compute.Query(sql.sql, BindValues(sql, args));
  if (!res.ok()) co_return res.status();
  std::vector<std::string> keys;
  for (int i = 0; i < res->rows(); ++i) {
    if (!res->is_null(i, 0)) keys.emplace_back(res->get(i, 0));
  }
  co_return keys;
}

Task<Status> RunKeysQueries(Plan& plan, AsyncConnection& compute, WorkerPool* worker) {
  for (const auto& q : plan.keys_queries) {
    // Not a conditional expression: GCC 12 mishandles co_await inside ?:.
    StatusOr<std::vector<std::string>> keys = Status::Runtime("no keys rule");
    if (q.primer->spec.depends_on[q.rule].python_rule) {
      keys = co_await PythonKeys(q, worker);
    } else {
      keys = co_await SqlKeys(q, compute);
    }
    if (!keys.ok() && keys.status().transient()) co_return keys.status().WithContext("keys rule");
    if (!keys.ok()) {
      spdlog::warn("primer \"{}\": depends_on[{}] failed, recomputing all its stored products: {}",
                   q.primer->spec.name, q.rule, pg::Excerpt(keys.status().message(), 500));
      AddWholePrimer(plan, q.primer, q.change);
      continue;
    }
    for (const auto& key : *keys) {
      auto values = DecodeKey(key, q.primer->spec.name, q.primer->spec.params);
      if (!values.ok()) {
        spdlog::warn("primer \"{}\": depends_on[{}] returned a bad key: {}", q.primer->spec.name, q.rule,
                     values.status().message());
        continue;
      }
      plan.AddKey(key, q.primer, q.change, q.row_change);
    }
  }
  co_return Status::Ok();
}

}  // namespace

Task<Status> ListPartialMatches(Plan& plan, AsyncConnection& main, bool lock) {
  std::map<const Primer*, std::vector<const PartialMatch*>> by_primer;
  for (const auto& m : plan.partial) by_primer[m.primer].push_back(&m);
  if (by_primer.empty()) co_return Status::Ok();
  if (lock) {
    std::vector<std::string> names;
    for (const auto& [primer, matches] : by_primer) names.push_back(primer->spec.name);
    pg::Params primers{pg::ArrayLiteral(names)};
    auto locked = co_await main.Query(sql::File("daemon_lock_primers.sql"), std::move(primers));
    if (!locked.ok()) co_return locked.status().WithContext("locking primers");
  }
  for (const auto& [primer, matches] : by_primer) {
    pg::Params name{primer->spec.name};
    auto res = co_await main.Query(sql::File("daemon_primer_keys.sql"), std::move(name));
    if (!res.ok()) co_return res.status().WithContext("listing products of primer \"" + primer->spec.name + "\"");
    for (int i = 0; i < res->rows(); ++i) {
      std::string key(res->get(i, 0));
      auto values = DecodeKey(key, primer->spec.name, primer->spec.params);
      if (!values.ok()) continue;
      // Listed again under the lock, a key already planned has its changes:
      // only the keys stored since are new.
      if (lock && plan.keys.count(key)) continue;
      for (const PartialMatch* m : matches) {
        if (Plan::Matches(*m, *values)) plan.AddKey(key, primer, m->change, false);
      }
    }
  }
  co_return Status::Ok();
}

Task<Status> Resolve(Plan& plan, AsyncConnection& main, AsyncConnection& compute, WorkerPool* worker) {
  co_await fault::At("plan", main);
  if (plan.keys_queries.empty() && plan.partial.empty()) co_return Status::Ok();
  // Keys rules first: a failing one adds a partial match.
  Status s = co_await RunKeysQueries(plan, compute, worker);
  if (!s.ok()) co_return s;
  co_return co_await ListPartialMatches(plan, main, false);
}

}  // namespace kck
