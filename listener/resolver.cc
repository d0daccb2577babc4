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
  if (!res.ok()) co_return InUserSql(res.status(), sql);
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

// The keys of each row pair from a worker's answer to a "pairs" request;
// false when it is not one result per pair (a worker of protocol 1 would
// answer with "keys").
bool TakePairResults(Plan& plan, const std::vector<const KeysQuery*>& chunk, const nlohmann::json& reply) {
  const auto results = reply.find("results");
  if (results == reply.end() || !results->is_array() || results->size() != chunk.size()) return false;
  for (const auto& r : *results) {
    const bool keys = r.is_object() && r.contains("keys") && r["keys"].is_array();
    if (!keys && !(r.is_object() && r.contains("error"))) return false;
  }
  for (size_t i = 0; i < chunk.size(); ++i) {
    const nlohmann::json& r = (*results)[i];
    StatusOr<std::vector<std::string>> keys = std::vector<std::string>{};
    if (r.contains("error")) {
      keys = Status::Runtime(r["error"].is_string() ? r["error"].get<std::string>() : r["error"].dump());
    } else {
      for (const auto& k : r["keys"]) {
        if (k.is_string()) keys->push_back(k.get<std::string>());
      }
    }
    AddRuleKeys(plan, *chunk[i], keys);
  }
  return true;
}

// One Python keys rule for many row pairs: one worker call per
// kPairsPerCall pairs (protocol 2's "pairs"). The pairs of a call the
// worker could not answer that way go to `each`, to run one by one.
Task<Status> PythonTogether(Plan& plan, const std::vector<const KeysQuery*>& queries, WorkerPool* worker,
                            std::vector<const KeysQuery*>* each) {
  constexpr size_t kPairsPerCall = 500;
  if (worker == nullptr) {
    each->insert(each->end(), queries.begin(), queries.end());
    co_return Status::Ok();
  }
  const bool ready = co_await worker->Ready();  // its hello says which protocol it speaks
  if (!ready) co_return Status::Unavailable("python worker is not running").WithContext("keys rule");
  if (worker->protocol() < 2) {
    each->insert(each->end(), queries.begin(), queries.end());
    co_return Status::Ok();
  }
  for (size_t start = 0; start < queries.size(); start += kPairsPerCall) {
    const std::vector<const KeysQuery*> chunk(queries.begin() + start,
                                              queries.begin() + std::min(queries.size(), start + kPairsPerCall));
    nlohmann::json req;
    req["op"] = std::string("keys");
    req["primer"] = chunk.front()->primer->spec.name;
    req["rule"] = *chunk.front()->primer->spec.depends_on[chunk.front()->rule].python_rule;
    nlohmann::json pairs = nlohmann::json::array();
    for (const KeysQuery* q : chunk) {
      nlohmann::json pair = nlohmann::json::array();
      pair.push_back(ParsedJson(q->rows.old_row));
      pair.push_back(ParsedJson(q->rows.new_row));
      pairs.push_back(std::move(pair));
    }
    req["pairs"] = std::move(pairs);
    auto reply = co_await worker->Call(std::move(req));
    if (!reply.ok() && reply.status().transient()) co_return reply.status().WithContext("keys rule");
    if (!reply.ok() || !TakePairResults(plan, chunk, *reply)) each->insert(each->end(), chunk.begin(), chunk.end());
  }
  co_return Status::Ok();
}

// The row pairs of one rule, together: SQL in one statement, Python in one
// worker call per 500 pairs; those that cannot go together go to `each`.
Task<Status> RunRule(Plan& plan, const std::vector<const KeysQuery*>& queries, AsyncConnection& compute,
                     WorkerPool* worker, std::vector<const KeysQuery*>* each) {
  const KeysQuery& first = *queries.front();
  if (first.primer->spec.depends_on[first.rule].python_rule) {
    co_return co_await PythonTogether(plan, queries, worker, each);
  }
  auto together = co_await RunTogether(plan, queries, compute);
  if (!together.ok()) co_return together.status();
  if (!*together) each->insert(each->end(), queries.begin(), queries.end());
  co_return Status::Ok();
}

// Keys rules: the row pairs of each rule together, a rule with one pair
// (or pairs that could not go together) one by one.
Task<Status> RunKeysQueries(Plan& plan, AsyncConnection& compute, WorkerPool* worker) {
  std::map<std::pair<const Primer*, size_t>, std::vector<const KeysQuery*>> by_rule;
  for (const auto& q : plan.keys_queries) by_rule[{q.primer, q.rule}].push_back(&q);
  std::vector<const KeysQuery*> each;
  for (const auto& [rule, queries] : by_rule) {
    if (queries.size() == 1) {
      each.push_back(queries.front());
      continue;
    }
    Status s = co_await RunRule(plan, queries, compute, worker, &each);
    if (!s.ok()) co_return s;
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
        if (Plan::Matches(*m, *values)) plan.AddKey(key, primer, m->change, false, m->force);
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
