#include "listener/writer.h"

#include <spdlog/spdlog.h>

#include "listener/fault.h"
#include "listener/json_text.h"
#include "pg/connection.h"
#include "sql/embedded.h"

namespace kck {
namespace {

using Statements = std::vector<AsyncConnection::Statement>;

std::optional<std::string> Number(const std::optional<double>& v) {
  if (!v) return std::nullopt;
  return std::to_string(*v);
}

AsyncConnection::Statement ProductsStatement(const std::vector<ProductWrite>& products) {
  std::vector<std::optional<std::string>> key, primer, value, snapshot, ms, soft, hard;
  for (const auto& p : products) {
    key.emplace_back(p.key);
    primer.emplace_back(p.primer);
    value.emplace_back(p.value);
    snapshot.push_back(p.snapshot);
    ms.emplace_back(std::to_string(p.ms));
    soft.push_back(Number(p.soft));
    hard.push_back(Number(p.hard));
  }
  return {std::string(sql::File("daemon_write.sql")),
          pg::Params{pg::ArrayLiteral(key), pg::ArrayLiteral(primer), pg::ArrayLiteral(value),
                     pg::ArrayLiteral(snapshot), pg::ArrayLiteral(ms), pg::ArrayLiteral(soft),
                     pg::ArrayLiteral(hard)}};
}

// The number daemon_write.sql returns: products whose value was already stored.
size_t Count(const pg::Result& r) {
  return r.rows() == 1 ? ParsedNumber<size_t>(r.get(0, 0)) : 0;
}

// Deletions, errors and fallback counters: small, made of kck's own text,
// never rejected.
void AppendBookkeeping(const Writes& writes, Statements& out) {
  if (!writes.deletes.empty()) {
    out.emplace_back(sql::File("daemon_delete.sql"), pg::Params{pg::ArrayLiteral(writes.deletes)});
  }
  if (!writes.errors.empty()) {
    std::vector<std::string> keys, errors;
    for (const auto& e : writes.errors) {
      keys.push_back(e.key);
      errors.push_back(pg::Excerpt(e.error, 2000));
    }
    out.emplace_back(sql::File("daemon_errors.sql"), pg::Params{pg::ArrayLiteral(keys), pg::ArrayLiteral(errors)});
  }
  if (!writes.fallbacks.empty()) {
    std::vector<std::string> primers, counts, lasts;
    for (const auto& [primer, f] : writes.fallbacks) {  // sorted: daemons lock rows in one order
      primers.push_back(primer);
      counts.push_back(std::to_string(f.count));
      lasts.push_back(pg::Excerpt(f.last, 500));
    }
    out.emplace_back(sql::File("daemon_fallbacks.sql"),
                     pg::Params{pg::ArrayLiteral(primers), pg::ArrayLiteral(counts), pg::ArrayLiteral(lasts)});
  }
}

// One product behind its own savepoint; a rejected one becomes an error.
Task<Status> WriteOne(AsyncConnection& main, ProductWrite& p, Writes& writes, WriteCounts* counts) {
  Statements one;
  one.emplace_back("SAVEPOINT kck_product", pg::Params{});
  one.push_back(ProductsStatement({p}));
  one.emplace_back("RELEASE SAVEPOINT kck_product", pg::Params{});
  auto done = co_await main.Pipeline(std::move(one));
  if (done.ok()) {
    counts->unchanged += Count((*done)[1]);
    co_return Status::Ok();
  }
  if (done.status().transient()) co_return done.status();
  auto back = co_await main.Script("ROLLBACK TO SAVEPOINT kck_product");
  if (!back.ok()) co_return back.status();
  ++counts->rejected;
  spdlog::error("primer \"{}\": key \"{}\": product rejected by PostgreSQL, keeping the stored value: {}", p.primer,
                pg::Excerpt(p.key, 120), pg::Excerpt(done.status().message(), 300));
  writes.errors.push_back({p.key, "product rejected by PostgreSQL: " + done.status().message()});
  co_return Status::Ok();
}

// The slow path, after the batch's writes failed as a whole.
Task<Status> WriteOneByOne(AsyncConnection& main, Writes& writes, WriteCounts* counts) {
  auto back = co_await main.Script("ROLLBACK TO SAVEPOINT kck_write");
  if (!back.ok()) co_return back.status();
  auto products = std::move(writes.products);
  writes.products.clear();
  for (auto& p : products) {
    Status s = co_await WriteOne(main, p, writes, counts);
    if (!s.ok()) co_return s;
  }
  Statements rest;
  AppendBookkeeping(writes, rest);
  rest.emplace_back("COMMIT", pg::Params{});
  co_await fault::At("commit", main);
  auto done = co_await main.Pipeline(std::move(rest));
  co_return done.ok() ? Status::Ok() : done.status();
}

// A failure in WriteAndCommit's `opening` or its generation check (before
// the savepoint) that the caller handles: a key moved, a schema older than
// 10, or primers changed.
bool OpeningFailed(const Status& s) {
  return s.sqlstate() == kProductsMoved || s.sqlstate() == kUndefinedFunction || s.sqlstate() == kPrimersChanged;
}

}  // namespace

Statements GenerationCheck(std::optional<int64_t> generation) {
  Statements check;
  if (generation) check.emplace_back(sql::File("daemon_expect_generation.sql"), pg::Params{std::to_string(*generation)});
  return check;
}

Task<Status> WriteAndCommit(AsyncConnection& main, int64_t claim, std::optional<int64_t> generation, Writes& writes,
                            WriteCounts* counts, Statements opening) {
  co_await fault::At("write", main);
  Statements all = std::move(opening);
  // Before the savepoint: a claim that cannot be consumed fails the batch.
  if (claim != 0) all.emplace_back(sql::File("daemon_consume.sql"), pg::Params{std::to_string(claim)});
  for (auto& check : GenerationCheck(generation)) all.push_back(std::move(check));
  const size_t products_at = all.size() + 1;  // after the savepoint
  const bool any =
      !writes.products.empty() || !writes.deletes.empty() || !writes.errors.empty() || !writes.fallbacks.empty();
  if (any) all.emplace_back("SAVEPOINT kck_write", pg::Params{});
  if (!writes.products.empty()) all.push_back(ProductsStatement(writes.products));
  AppendBookkeeping(writes, all);
  all.emplace_back("COMMIT", pg::Params{});
  co_await fault::At("commit", main);
  auto done = co_await main.Pipeline(std::move(all));
  if (done.ok()) {
    if (!writes.products.empty()) counts->unchanged = Count((*done)[products_at]);
    co_return Status::Ok();
  }
  if (done.status().transient() || !any || OpeningFailed(done.status())) co_return done.status();
  spdlog::warn("writing {} products failed ({}); writing them one by one", writes.products.size(),
               pg::Excerpt(done.status().message(), 300));
  co_return co_await WriteOneByOne(main, writes, counts);
}

}  // namespace kck
