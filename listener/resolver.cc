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

// The keys one query's rule returned become keys of the plan; a failed
// rule stands for every stored product of its primer.
void AddRuleKeys(Plan& plan, const KeysQuery& q, const StatusOr<std::vector<std::string>>& keys) {
  if (!keys.ok()) {
    spdlog::warn("primer \"{}\": depends_on[{}] failed, recomputing all its stored products: {}",
                 q.primer->spec.name, q.rule, pg::Excerpt(keys.status().message(), 500));
    AddWholePrimer(plan, q.primer, q.change);
    return;
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

// Runs queries one at a time: Python rules, and SQL ones that failed together.
Task<Status> RunEach(Plan& plan, const std::vector<const KeysQuery*>& queries, AsyncConnection& compute,
                     WorkerPool* worker) {
  for (const KeysQuery* q : queries) {
    // Not a conditional expression: GCC 12 mishandles co_await inside ?:.
    StatusOr<std::vector<std::string>> keys = Status::Runtime("no keys rule");
    if (q->primer->spec.depends_on[q->rule].python_rule) {
      keys = co_await PythonKeys(*q, worker);
    } else {
      keys = co_await SqlKeys(*q, compute);
    }
    if (!keys.ok() && keys.status().transient()) co_return keys.status().WithContext("keys rule");
    AddRuleKeys(plan, *q, keys);
  }
  co_return Status::Ok();
}

// One SQL keys rule for many row pairs in one statement (Primer::keys_many).
// False when it failed for a reason of its own: the caller runs them one by
// one, so that each row pair gets its own outcome.
Task<StatusOr<bool>> RunTogether(Plan& plan, const std::vector<const KeysQuery*>& queries, AsyncConnection& compute) {
  const KeysQuery& first = *queries.front();
  std::vector<std::optional<std::string>> ordinals, olds, news;
  for (size_t i = 0; i < queries.size(); ++i) {
    ordinals.emplace_back(std::to_string(i));
    olds.push_back(queries[i]->rows.old_row);
    news.push_back(queries[i]->rows.new_row);
  }
  pg::Params params{pg::ArrayLiteral(ordinals), pg::ArrayLiteral(olds), pg::ArrayLiteral(news)};
  auto res = co_await compute.Query(first.primer->keys_many.at(first.rule), std::move(params));
  if (!res.ok() && res.status().transient()) co_return res.status().WithContext("keys rule");
  if (!res.ok()) co_return false;
  std::vector<std::vector<std::string>> keys(queries.size());
  for (int r = 0; r < res->rows(); ++r) {
    const size_t i = ParsedNumber<size_t>(res->get(r, 0));
    if (i < keys.size()) keys[i].emplace_back(res->get(r, 1));
  }
  for (size_t i = 0; i < queries.size(); ++i) AddRuleKeys(plan, *queries[i], keys[i]);
  co_return true;
}

// Keys rules: the row pairs of one SQL rule in one statement, Python rules
// one call per pair.
Task<Status> RunKeysQueries(Plan& plan, AsyncConnection& compute, WorkerPool* worker) {
  std::map<std::pair<const Primer*, size_t>, std::vector<const KeysQuery*>> by_rule;
  std::vector<const KeysQuery*> each;
  for (const auto& q : plan.keys_queries) {
    if (q.primer->spec.depends_on[q.rule].python_rule) {
      each.push_back(&q);
    } else {
      by_rule[{q.primer, q.rule}].push_back(&q);
    }
  }
  for (const auto& [rule, queries] : by_rule) {
    if (queries.size() == 1) {
      each.push_back(queries.front());
      continue;
    }
    auto together = co_await RunTogether(plan, queries, compute);
    if (!together.ok()) co_return together.status();
    if (!*together) each.insert(each.end(), queries.begin(), queries.end());
  }
  co_return co_await RunEach(plan, each, compute, worker);
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
