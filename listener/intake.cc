#include "listener/intake.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>

#include "listener/fault.h"
#include "listener/json_text.h"
#include "pg/connection.h"
#include "sql/embedded.h"

namespace kck {

Change ChangeFromRow(const pg::Result& rows, int i, int at) {
  Change c;
  c.id = ParsedNumber<long long>(rows.get(i, at));
  c.tbl = rows.get(i, at + 1);
  c.op = rows.get(i, at + 2).empty() ? 'U' : rows.get(i, at + 2)[0];
  c.old_json = rows.get(i, at + 3);
  c.new_json = rows.get(i, at + 4);
  c.txid = rows.get(i, at + 5);
  return c;
}

namespace {

std::vector<Change> ChangesFromRows(const pg::Result& rows, int at) {
  std::vector<Change> changes;
  changes.reserve(rows.rows());
  for (int i = 0; i < rows.rows(); ++i) changes.push_back(ChangeFromRow(rows, i, at));
  std::sort(changes.begin(), changes.end(), [](const Change& a, const Change& b) { return a.id < b.id; });
  return changes;
}

}  // namespace

Task<StatusOr<Claimed>> Claim(AsyncConnection& conn, int batch_size) {
  co_await fault::At("claim", conn);
  std::vector<AsyncConnection::Statement> claim;
  claim.emplace_back("BEGIN", pg::Params{});
  claim.emplace_back(sql::File("daemon_generation.sql"), pg::Params{});
  claim.emplace_back(sql::File("daemon_claim.sql"), pg::Params{std::to_string(batch_size)});
  claim.emplace_back("COMMIT", pg::Params{});
  auto results = co_await conn.Pipeline(std::move(claim));
  if (!results.ok()) {
    if (conn.connected()) (void)co_await conn.Script("ROLLBACK");
    co_return results.status().WithContext("claiming changes");
  }
  Claimed out;
  const pg::Result& gen = (*results)[1];
  out.generation = gen.rows() == 1 ? ParsedNumber<int64_t>(gen.get(0, 0)) : -1;
  const pg::Result& rows = (*results)[2];
  if (rows.rows() > 0) out.claim = ParsedNumber<int64_t>(rows.get(0, 0));
  out.changes = ChangesFromRows(rows, 1);
  co_return out;
}

Task<void> Release(AsyncConnection& conn, int64_t claim) {
  if (claim == 0 || !conn.connected()) co_return;
  pg::Params params = {std::to_string(claim)};
  auto r = co_await conn.Query(sql::File("daemon_release.sql"), std::move(params));
  if (!r.ok()) {
    spdlog::warn("could not give claim {} up ({}); it is released once this connection is gone", claim,
                 pg::Excerpt(r.status().message(), 300));
  }
}

Task<StatusOr<Older>> OlderChanges(AsyncConnection& conn, long long before, int limit) {
  pg::Params params = {std::to_string(before), std::to_string(limit)};
  auto rows = co_await conn.Query(sql::File("daemon_older.sql"), std::move(params));
  if (!rows.ok()) co_return rows.status().WithContext("reading older changes");
  Older out;
  for (int i = 0; i < rows->rows(); ++i) {
    out.changes.push_back(ChangeFromRow(*rows, i, 0));
    out.claims.push_back(rows->is_null(i, 6) ? 0 : ParsedNumber<int64_t>(rows->get(i, 6)));
  }
  co_return out;
}

}  // namespace kck
