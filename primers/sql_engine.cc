#include "primers/sql_engine.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "primers/augment_chain.h"
#include "primers/key_codec.h"

namespace kck {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// One key's compute statement (the primer's compute with the key's values bound).
StatusOr<AsyncConnection::Statement> OneStatement(const Primer& primer, const std::string& key) {
  auto values = DecodeKey(key, primer.spec.name, primer.spec.params);
  if (!values.ok()) return values.status();
  return AsyncConnection::Statement(primer.compute.sql, BindValues(primer.compute, primer.KeyValues(*values)));
}

// What one key's compute returned: no row, the product does not exist; more
// than one, the primer's error.
StatusOr<Computed> ComputedFrom(const pg::Result& res) {
  Computed c;
  if (res.rows() == 0) {
    c.gone = true;
    return c;
  }
  if (res.rows() != 1) return Status::Runtime("compute returned " + std::to_string(res.rows()) + " rows");
  c.value = res.get_opt(0, 0);
  if (!c.value) c.value = "null";
  c.snapshot = res.get_opt(0, 1);
  return c;
}

// The primer's augment SQL for `change` as a statement of its own.
BoundSql OneAugmentSql(const Primer& primer, const ChangeImage& change) {
  // On its own line: a trailing comment in the SQL must not swallow the parentheses.
  return Embedded("SELECT to_jsonb((", primer.augment.at(change.table).at(change.op), "\n))::text");
}

// One change's augment statement: the primer's augment SQL with the key's
// values, the change's rows and the current value bound.
StatusOr<AsyncConnection::Statement> OneAugmentStatement(const Primer& primer, const std::string& key,
                                                         const ChangeImage& change, std::string_view current) {
  auto values = DecodeKey(key, primer.spec.name, primer.spec.params);
  if (!values.ok()) return values.status();
  const BoundSql sql = OneAugmentSql(primer, change);
  auto args = primer.KeyValues(*values);
  args[std::string("value")] = std::string(current);
  args[std::string("old")] = change.old_row;
  args[std::string("new")] = change.new_row;
  return AsyncConnection::Statement(sql.sql, BindValues(sql, args));
}

// What one augment statement returned.
StatusOr<std::string> AugmentedFrom(const pg::Result& res) {
  if (res.rows() != 1 || res.is_null(0, 0)) return Status::Runtime("augment returned no value");
  return std::string(res.get(0, 0));
}

}  // namespace

Task<StatusOr<Computed>> SqlEngine::Compute(const Primer& primer, const std::string& key) {
  auto statement = OneStatement(primer, key);
  if (!statement.ok()) co_return statement.status();
  auto res = co_await conn_.Query(statement->first, std::move(statement->second));
  if (!res.ok()) co_return InUserSql(res.status(), primer.compute);
  co_return ComputedFrom(*res);
}

Task<StatusOr<std::optional<std::string>>> SqlEngine::Augment(const Primer& primer, const std::string& key,
                                                              const ChangeImage& change, const std::string& current) {
  using Result = std::optional<std::string>;
  auto statement = OneAugmentStatement(primer, key, change, current);
  if (!statement.ok()) co_return statement.status();
  auto res = co_await conn_.Query(statement->first, std::move(statement->second));
  if (!res.ok()) co_return InUserSql(res.status(), OneAugmentSql(primer, change));
  auto value = AugmentedFrom(*res);
  if (!value.ok()) co_return value.status();
  co_return Result(std::move(*value));
}

Task<StatusOr<std::optional<std::string>>> SqlEngine::AugmentAll(const Primer& primer, const std::string& key,
                                                                 std::vector<ChangeImage> changes,
                                                                 std::string current) {
  using Result = std::optional<std::string>;
  if (changes.size() == 1) co_return co_await Augment(primer, key, changes[0], current);
  auto values = DecodeKey(key, primer.spec.name, primer.spec.params);
  if (!values.ok()) co_return values.status();
  const NamedValues key_values = primer.KeyValues(*values);
  for (size_t from = 0; from < changes.size(); from += kMaxChain) {
    std::vector<ChangeImage> part(changes.begin() + from,
                                  changes.begin() + std::min(changes.size(), from + kMaxChain));
    auto statement = ChainAugments(primer, key_values, part, current);
    if (!statement.ok()) co_return statement.status();
    auto res = co_await conn_.QueryOnce(statement->sql, std::move(statement->params));
    if (!res.ok()) co_return InUserSql(res.status(), statement->sql, statement->origins);
    if (res->rows() != 1 || res->is_null(0, 0)) co_return Status::Runtime("augment returned no value");
    current = std::string(res->get(0, 0));
  }
  co_return Result(std::move(current));
}

namespace {

// The compute_many statement of `keys` (those that decode), listed in *sent.
AsyncConnection::Statement ManyStatement(const Primer& primer, const std::vector<std::string>& keys,
                                         std::vector<std::string>* sent) {
  std::vector<std::vector<std::string>> columns(primer.spec.params.size());
  for (const auto& key : keys) {
    auto values = DecodeKey(key, primer.spec.name, primer.spec.params);
    if (!values.ok()) continue;
    sent->push_back(key);
    for (size_t i = 0; i < values->size(); ++i) columns[i].push_back((*values)[i]);
  }
  pg::Params params{pg::ArrayLiteral(*sent)};
  for (const auto& c : columns) params.push_back(pg::ArrayLiteral(c));
  return {primer.compute_many, std::move(params)};
}

// What compute_many returned. A key with several rows is left out: computed
// alone, it gets its error.
void TakeMany(const pg::Result& res, double each, std::map<std::string, Computed>* out) {
  std::set<std::string> repeated;
  for (int i = 0; i < res.rows(); ++i) {
    std::string key(res.get(i, 0));
    Computed c{res.get_opt(i, 1), res.get_opt(i, 2), each, res.get(i, 3) != "t"};
    if (!out->emplace(key, std::move(c)).second) repeated.insert(key);
  }
  for (const auto& key : repeated) out->erase(key);
}

// What one key's compute returned; nothing when it is an error: computed
// alone, it gets it.
void TakeOne(const std::string& key, const pg::Result& res, double ms, std::map<std::string, Computed>* out) {
  auto c = ComputedFrom(res);
  if (!c.ok()) return;
  c->ms = ms;
  (*out)[key] = std::move(*c);
}

}  // namespace

Task<void> SqlEngine::ComputeAhead(const KeysByPrimer& keys, const std::vector<OneAugment>& augments,
                                   std::map<std::string, Computed>* out, std::map<std::string, Computed>* augmented) {
  std::vector<AsyncConnection::Statement> statements;
  std::vector<std::vector<std::string>> sent;  // per statement: its keys
  std::vector<bool> many;                      // per statement: compute_many
  size_t count = 0;
  for (const auto& [primer, primer_keys] : keys) {
    std::vector<std::string> listed;
    if (primer_keys.size() == 1) {
      auto statement = OneStatement(*primer, primer_keys[0]);
      if (!statement.ok()) continue;
      listed.push_back(primer_keys[0]);
      statements.push_back(std::move(*statement));
    } else {
      statements.push_back(ManyStatement(*primer, primer_keys, &listed));
    }
    count += listed.size();
    sent.push_back(std::move(listed));
    many.push_back(primer_keys.size() > 1);
  }
  const size_t computes = statements.size();
  std::vector<const OneAugment*> augmenting;
  for (const auto& a : augments) {
    auto statement = OneAugmentStatement(*a.primer, a.key, a.change, a.current);
    if (!statement.ok()) continue;
    statements.push_back(std::move(*statement));
    augmenting.push_back(&a);
  }
  count += augmenting.size();
  if (count == 0) co_return;
  auto t0 = Clock::now();
  auto results = co_await conn_.PipelineEach(std::move(statements));
  if (!results.ok()) co_return;  // the connection: the computes one by one fail the batch
  const double each = MsSince(t0) / static_cast<double>(count);
  for (size_t i = 0; i < computes; ++i) {
    const auto& r = (*results)[i];
    if (!r.ok()) {
      spdlog::debug("computing {} keys one by one: {}", sent[i].size(), pg::Excerpt(r.status().message(), 300));
    } else if (many[i]) {
      TakeMany(*r, each, out);
    } else {
      TakeOne(sent[i][0], *r, each, out);
    }
  }
  for (size_t i = 0; i < augmenting.size(); ++i) {
    const auto& r = (*results)[computes + i];
    auto value = r.ok() ? AugmentedFrom(*r) : StatusOr<std::string>(r.status());
    if (value.ok()) (*augmented)[augmenting[i]->key] = Computed{std::move(*value), std::nullopt, each, false};
  }
}

}  // namespace kck
