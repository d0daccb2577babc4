#include "listener/executor.h"

#include <spdlog/spdlog.h>

#include "sql/embedded.h"

#include <algorithm>
#include <charconv>
#include <chrono>

namespace kck {

bool VisibleInSnapshot(std::string_view snapshot, uint64_t txid) {
  auto number = [](std::string_view s) {
    uint64_t v = 0;
    std::from_chars(s.data(), s.data() + s.size(), v);
    return v;
  };
  size_t c1 = snapshot.find(':');
  size_t c2 = snapshot.find(':', c1 + 1);
  if (c1 == std::string_view::npos || c2 == std::string_view::npos) return false;
  uint64_t xmin = number(snapshot.substr(0, c1));
  uint64_t xmax = number(snapshot.substr(c1 + 1, c2 - c1 - 1));
  if (txid < xmin) return true;
  if (txid >= xmax) return false;
  std::string_view xip = snapshot.substr(c2 + 1);
  while (!xip.empty()) {
    size_t comma = xip.find(',');
    if (number(xip.substr(0, comma)) == txid) return false;
    if (comma == std::string_view::npos) break;
    xip.remove_prefix(comma + 1);
  }
  return true;
}

namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}


std::optional<double> Seconds(const std::optional<std::chrono::seconds>& s) {
  if (!s) return std::nullopt;
  return static_cast<double>(s->count());
}

}  // namespace

struct Executor::Stored {
  std::string value;  // JSON text ("" for NULL)
  std::string snapshot;
};

Executor::Executor(AsyncConnection& main, AsyncConnection& compute, WorkerPool* worker, int batch_size)
    : main_(main), compute_(compute), worker_(worker), batch_size_(batch_size) {}

Task<Status> Executor::Rollback() {
  if (main_.connected()) (void)co_await main_.Script("ROLLBACK");
  co_return Status::Ok();
}

Task<StatusOr<BatchStats>> Executor::RunBatch() {
  std::vector<AsyncConnection::Statement> claim;
  claim.emplace_back("BEGIN", pg::Params{});
  claim.emplace_back(sql::File("daemon_claim.sql"), pg::Params{std::to_string(batch_size_)});
  auto claim_results = co_await main_.Pipeline(std::move(claim));
  if (!claim_results.ok()) {
    co_await Rollback();
    co_return claim_results.status().WithContext("claiming changes");
  }
  const pg::Result* claimed = &(*claim_results)[1];
  std::vector<Change> changes;
  changes.reserve(claimed->rows());
  for (int i = 0; i < claimed->rows(); ++i) {
    Change c;
    c.id = std::stoll(std::string(claimed->get(i, 0)));
    c.tbl = claimed->get(i, 1);
    c.op = claimed->get(i, 2).empty() ? 'U' : claimed->get(i, 2)[0];
    c.old_json = claimed->get(i, 3);
    c.new_json = claimed->get(i, 4);
    c.txid = claimed->get(i, 5);
    changes.push_back(std::move(c));
  }
  std::sort(changes.begin(), changes.end(), [](const Change& a, const Change& b) { return a.id < b.id; });
  Plan plan = PlanChanges(changes, *registry_);
  for (const auto& p : plan.problems) spdlog::warn("{}: skipped", p);
  for (const auto& d : plan.degraded) {
    if (!degraded_warnings_.Allow(d.table, Clock::now())) continue;
    spdlog::warn("table \"{}\": capture degraded: {}; recomputing every product that depends on it (see kck status)",
                 d.table, d.error);
  }
  Status resolved = co_await Resolve(plan);
  if (!resolved.ok()) {
    co_await Rollback();
    co_return resolved;
  }
  co_return co_await Apply(plan, changes);
}

constexpr std::string_view kLockSql = "SELECT kck.lock_keys($1::text[])";
// Values travel only for keys that may be augmented ($2): a recompute does
// not need the old one.
constexpr std::string_view kReadSql =
    "SELECT key, CASE WHEN key = ANY ($2::text[]) THEN value::text END, snapshot::text FROM kck.cache "
    "WHERE key = ANY ($1::text[])";
constexpr std::string_view kOlderSql = "SELECT EXISTS (SELECT 1 FROM kck.changes WHERE id < $1::bigint)";
constexpr std::string_view kPrimerKeysSql = "SELECT key FROM kck.cache WHERE primer = $1";
Task<StatusOr<BatchStats>> Executor::RunScheduled() {
  auto begun = co_await main_.Script("BEGIN");
  if (!begun.ok()) co_return begun.status();
  Plan plan;
  for (const auto& p : registry_->primers()) {
    if (!p->spec.refresh_every) continue;
    pg::Params params = {p->spec.name, std::to_string(p->spec.refresh_every->count()), std::to_string(batch_size_)};
    auto due = co_await main_.Query(sql::File("daemon_due.sql"), std::move(params));
    if (!due.ok()) {
      co_await Rollback();
      co_return due.status().WithContext("finding products due for refresh");
    }
    for (int i = 0; i < due->rows(); ++i) plan.AddKey(std::string(due->get(i, 0)), p.get(), 0, false, true);
  }
  std::vector<Change> none;
  co_return co_await Apply(plan, none);
}

Task<Status> Executor::Resolve(Plan& plan) {
  // Keys rules: SQL given :old and :new, or the Python worker.
  for (const auto& q : plan.keys_queries) {
    std::vector<std::string> keys;
    const DependsRule& rule = q.primer->spec.depends_on[q.rule];
    if (rule.python_rule) {
      if (worker_ == nullptr) {
        plan.problems.push_back("primer \"" + q.primer->spec.name + "\": keys rule needs the python worker");
        continue;
      }
      nlohmann::json req;
      req["op"] = std::string("keys");
      req["primer"] = q.primer->spec.name;
      req["rule"] = *rule.python_rule;
      req["old"] = q.rows.old_row ? nlohmann::json::parse(*q.rows.old_row) : nlohmann::json();
      req["new"] = q.rows.new_row ? nlohmann::json::parse(*q.rows.new_row) : nlohmann::json();
      auto reply = co_await worker_->Call(std::move(req));
      if (!reply.ok() && reply.status().kind() == Status::Kind::kUnavailable) co_return reply.status();
      if (!reply.ok()) {
        spdlog::warn("primer \"{}\": keys rule failed: {}", q.primer->spec.name, reply.status().message());
        continue;
      }
      for (const auto& k : (*reply)["keys"]) {
        if (k.is_string()) keys.push_back(k.get<std::string>());
      }
    } else {
      const BoundSql& sql = q.primer->keys.at(q.rule);
      NamedValues args;
      args[std::string("old")] = q.rows.old_row;
      args[std::string("new")] = q.rows.new_row;
      auto res = co_await compute_.Query(sql.sql, BindValues(sql, args));
      if (!res.ok()) {
        spdlog::warn("primer \"{}\": depends_on[{}].keys failed: {}", q.primer->spec.name, q.rule,
                     res.status().message());
        continue;
      }
      for (int i = 0; i < res->rows(); ++i) {
        if (!res->is_null(i, 0)) keys.emplace_back(res->get(i, 0));
      }
    }
    for (const auto& key : keys) {
      auto values = DecodeKey(key, q.primer->spec.name, q.primer->spec.params);
      if (!values.ok()) {
        spdlog::warn("depends_on[{}].keys returned a bad key: {}", q.rule, values.status().message());
        continue;
      }
      plan.AddKey(key, q.primer, q.change, q.row_change);
    }
  }
  // Partial matches: stored keys of the primer that agree on fixed params.
  std::map<const Primer*, std::vector<const PartialMatch*>> by_primer;
  for (const auto& m : plan.partial) by_primer[m.primer].push_back(&m);
  for (const auto& [primer, matches] : by_primer) {
    pg::Params params{primer->spec.name};
    auto res = co_await main_.Query(kPrimerKeysSql, std::move(params));
    if (!res.ok()) co_return res.status().WithContext("listing products of primer \"" + primer->spec.name + "\"");
    for (int i = 0; i < res->rows(); ++i) {
      std::string key(res->get(i, 0));
      auto values = DecodeKey(key, primer->spec.name, primer->spec.params);
      if (!values.ok()) continue;
      for (const PartialMatch* m : matches) {
        if (Plan::Matches(*m, *values)) plan.AddKey(key, primer, m->change, false);
      }
    }
  }
  co_return Status::Ok();
}

Task<void> Executor::ComputeMany(const Primer& primer, const std::vector<std::string>& keys,
                                 std::map<std::string, Computed>* out) {
  std::vector<std::vector<std::string>> columns(primer.spec.params.size());
  std::vector<std::string> decoded_keys;
  for (const auto& key : keys) {
    auto values = DecodeKey(key, primer.spec.name, primer.spec.params);
    if (!values.ok()) continue;
    decoded_keys.push_back(key);
    for (size_t i = 0; i < values->size(); ++i) columns[i].push_back((*values)[i]);
  }
  pg::Params params{pg::ArrayLiteral(decoded_keys)};
  for (const auto& c : columns) params.push_back(pg::ArrayLiteral(c));
  auto t0 = Clock::now();
  auto res = co_await compute_.Query(primer.compute_many, std::move(params));
  if (!res.ok()) {
    // One failing key fails the statement: compute them one by one, so
    // each error lands on its own key.
    spdlog::debug("primer \"{}\": computing {} keys one by one: {}", primer.spec.name, keys.size(),
                  res.status().message());
    co_return;
  }
  double each = MsSince(t0) / std::max(1, res->rows());
  for (int i = 0; i < res->rows(); ++i) {
    (*out)[std::string(res->get(i, 0))] = Computed{res->get_opt(i, 1), res->get_opt(i, 2), each};
  }
}

Task<StatusOr<BatchStats>> Executor::Apply(Plan& plan, const std::vector<Change>& changes) {
  BatchStats stats;
  stats.changes = changes.size();
  if (plan.keys.empty()) {
    auto done = co_await main_.Script("COMMIT");
    if (!done.ok()) co_return done.status().WithContext("committing batch");
    co_return stats;
  }

  std::vector<std::string> keys;
  for (const auto& [k, w] : plan.keys) keys.push_back(k);
  const std::string key_array = pg::ArrayLiteral(keys);
  std::vector<std::string> augmentable;
  for (const auto& [k, w] : plan.keys) {
    if (w.augmentable) augmentable.push_back(k);
  }
  // The read runs after the lock is granted (the server takes the pipelined
  // statements in order), so it sees every product stored before.
  std::vector<AsyncConnection::Statement> lock_and_read;
  lock_and_read.emplace_back(kLockSql, pg::Params{key_array});
  lock_and_read.emplace_back(kReadSql, pg::Params{key_array, pg::ArrayLiteral(augmentable)});
  auto locked = co_await main_.Pipeline(std::move(lock_and_read));
  if (!locked.ok()) {
    co_await Rollback();
    co_return locked.status().WithContext("locking and reading products");
  }
  const pg::Result* rows = &(*locked)[1];
  std::map<std::string, Stored> stored;
  for (int i = 0; i < rows->rows(); ++i) {
    stored[std::string(rows->get(i, 0))] = {std::string(rows->get(i, 1)), std::string(rows->get(i, 2))};
  }
  // Augments apply changes in id order; with older changes still held by
  // another daemon that order is not ours to keep, so recompute instead.
  bool augment_allowed = !changes.empty();
  bool any_augment = false;
  for (const auto& [k, w] : plan.keys) any_augment |= w.augmentable && stored.count(k);
  if (any_augment) {
    pg::Params first{std::to_string(changes.front().id)};
    auto older = co_await main_.Query(kOlderSql, first);
    if (!older.ok()) {
      co_await Rollback();
      co_return older.status();
    }
    augment_allowed = older->get(0, 0) != "t";
  }

  // Keys of one SQL primer that will be recomputed are computed together:
  // one statement instead of one round trip each.
  std::map<const Primer*, std::vector<std::string>> recompute;
  for (const auto& [key, work] : plan.keys) {
    auto it = stored.find(key);
    if ((it == stored.end() && !work.force) || work.primer->compute_many.empty()) continue;
    bool may_augment = work.augmentable && augment_allowed && it != stored.end() && !it->second.value.empty();
    if (!may_augment) recompute[work.primer].push_back(key);
  }
  std::map<std::string, Computed> precomputed;
  for (const auto& [primer, keys] : recompute) {
    if (keys.size() > 1) co_await ComputeMany(*primer, keys, &precomputed);
  }

  std::vector<std::optional<std::string>> w_key, w_primer, w_value, w_snapshot, w_ms, w_soft, w_hard;
  std::vector<std::string> e_key, e_error;
  for (auto& [key, work] : plan.keys) {
    const Primer& primer = *work.primer;
    auto it = stored.find(key);
    if (it == stored.end() && !work.force) continue;  // not stored: primed lazily on read
    auto values = DecodeKey(key, primer.spec.name, primer.spec.params);
    if (!values.ok()) continue;
    auto named = primer.KeyValues(*values);
    auto t0 = Clock::now();
    std::optional<std::string> value, snapshot;
    std::string error;
    bool augmented = false;

    if (work.augmentable && augment_allowed && it != stored.end() && !it->second.value.empty()) {
      std::string current = it->second.value;
      bool ok = true;
      for (size_t idx : work.changes) {
        const Change& c = changes[idx];
        uint64_t txid = std::stoull(c.txid);
        if (!it->second.snapshot.empty() && VisibleInSnapshot(it->second.snapshot, txid)) continue;
        bool bulk = false;
        auto pairs = RowPairs(c, &bulk);
        if (!pairs.ok() || pairs->size() != 1) {
          ok = false;
          break;
        }
        const RowPair& rp = pairs->front();
        if (primer.python()) {
          nlohmann::json change;
          change["table"] = c.tbl;
          change["op"] = std::string(1, c.op);
          change["old"] = rp.old_row ? nlohmann::json::parse(*rp.old_row) : nlohmann::json();
          change["new"] = rp.new_row ? nlohmann::json::parse(*rp.new_row) : nlohmann::json();
          if (worker_ == nullptr) {
            ok = false;
            break;
          }
          nlohmann::json req;
          req["op"] = std::string("augment");
          req["key"] = key;
          req["value"] = nlohmann::json::parse(current);
          req["change"] = change;
          auto reply = co_await worker_->Call(std::move(req));
          if (!reply.ok() && reply.status().kind() == Status::Kind::kUnavailable) {
            co_await Rollback();
            co_return reply.status().WithContext("batch rolled back");
          }
          if (!reply.ok() || !(*reply).contains("value")) {
            ok = false;
            break;
          }
          current = (*reply)["value"].dump();
        } else {
          const BoundSql& sql = primer.augment.at(c.tbl).at(c.op);
          auto args = named;
          args[std::string("value")] = current;
          args[std::string("old")] = rp.old_row;
          args[std::string("new")] = rp.new_row;
          auto res = co_await compute_.Query("SELECT to_jsonb((" + sql.sql + "))::text", BindValues(sql, args));
          if (!res.ok() || res->rows() != 1 || res->is_null(0, 0)) {
            if (!res.ok()) spdlog::info("key \"{}\": augment failed, recomputing: {}", key, res.status().message());
            ok = false;
            break;
          }
          current = std::string(res->get(0, 0));
        }
      }
      if (ok) {
        value = current;
        augmented = true;
      }
    }
    auto pre = precomputed.find(key);
    if (!augmented && pre != precomputed.end()) {
      value = pre->second.value ? pre->second.value : std::optional<std::string>("null");
      snapshot = pre->second.snapshot;
    } else if (!augmented) {
      if (primer.python()) {
        if (worker_ == nullptr) {
          error = "python primer needs kck listen --python-worker";
        } else {
          nlohmann::json req;
          req["op"] = std::string("compute");
          req["key"] = key;
          auto reply = co_await worker_->Call(std::move(req));
          if (!reply.ok() && reply.status().kind() == Status::Kind::kUnavailable) {
            co_await Rollback();
            co_return reply.status().WithContext("batch rolled back");
          }
          if (!reply.ok()) {
            error = reply.status().message();
          } else {
            value = (*reply)["value"].dump();
            if ((*reply).contains("snapshot") && (*reply)["snapshot"].is_string()) {
              snapshot = (*reply)["snapshot"].get<std::string>();
            }
          }
        }
      } else {
        auto res = co_await compute_.Query(primer.compute.sql, BindValues(primer.compute, named));
        if (!res.ok()) {
          error = res.status().message();
        } else if (res->rows() != 1) {
          error = "compute returned " + std::to_string(res->rows()) + " rows";
        } else {
          value = res->get_opt(0, 0);
          if (!value) value = "null";
          snapshot = res->get_opt(0, 1);
        }
      }
    }
    if (!error.empty()) {
      ++stats.errors;
      spdlog::error("primer \"{}\": key \"{}\": compute failed, keeping the stored value: {}", primer.spec.name, key,
                    error);
      if (it != stored.end()) {
        e_key.push_back(key);
        e_error.push_back(error);
      }
      continue;
    }
    ++stats.keys;
    if (augmented) ++stats.augmented;
    w_key.push_back(key);
    w_primer.push_back(primer.spec.name);
    w_value.push_back(value);
    w_snapshot.push_back(augmented ? std::nullopt : snapshot);
    w_ms.push_back(std::to_string(pre != precomputed.end() ? pre->second.ms : MsSince(t0)));
    auto soft = Seconds(primer.spec.soft_expire), hard = Seconds(primer.spec.hard_expire);
    w_soft.push_back(soft ? std::optional<std::string>(std::to_string(*soft)) : std::nullopt);
    w_hard.push_back(hard ? std::optional<std::string>(std::to_string(*hard)) : std::nullopt);
  }

  // Values, errors and COMMIT in one round trip.
  std::vector<AsyncConnection::Statement> writes;
  if (!w_key.empty()) {
    writes.emplace_back(sql::File("daemon_write.sql"),
                        pg::Params{pg::ArrayLiteral(w_key), pg::ArrayLiteral(w_primer), pg::ArrayLiteral(w_value),
                                   pg::ArrayLiteral(w_snapshot), pg::ArrayLiteral(w_ms), pg::ArrayLiteral(w_soft),
                                   pg::ArrayLiteral(w_hard)});
  }
  if (!e_key.empty()) {
    writes.emplace_back(sql::File("daemon_errors.sql"), pg::Params{pg::ArrayLiteral(e_key), pg::ArrayLiteral(e_error)});
  }
  writes.emplace_back("COMMIT", pg::Params{});
  auto written = co_await main_.Pipeline(std::move(writes));
  if (!written.ok()) {
    co_await Rollback();
    co_return written.status().WithContext("writing products");
  }
  co_return stats;
}

}  // namespace kck
