#include "listener/intake.h"

#include <algorithm>
#include <string>

#include "listener/fault.h"
#include "listener/json_text.h"
#include "sql/embedded.h"

namespace kck {
namespace {

// Columns id, tbl, op, old, new, txid, as every intake query returns them.
Change ChangeFromRow(const pg::Result& rows, int i) {
  Change c;
  c.id = ParsedNumber<long long>(rows.get(i, 0));
  c.tbl = rows.get(i, 1);
  c.op = rows.get(i, 2).empty() ? 'U' : rows.get(i, 2)[0];
  c.old_json = rows.get(i, 3);
  c.new_json = rows.get(i, 4);
  c.txid = rows.get(i, 5);
  return c;
}

std::vector<Change> ChangesFromRows(const pg::Result& rows) {
  std::vector<Change> changes;
  changes.reserve(rows.rows());
  for (int i = 0; i < rows.rows(); ++i) changes.push_back(ChangeFromRow(rows, i));
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
  auto results = co_await conn.Pipeline(std::move(claim));
  if (!results.ok()) co_return results.status().WithContext("claiming changes");
  Claimed out;
  const pg::Result& gen = (*results)[1];
  out.generation = gen.rows() == 1 ? ParsedNumber<int64_t>(gen.get(0, 0)) : -1;
  out.changes = ChangesFromRows((*results)[2]);
  co_return out;
}

Task<StatusOr<std::vector<Change>>> OlderChanges(AsyncConnection& conn, long long before, int limit) {
  pg::Params params = {std::to_string(before), std::to_string(limit)};
  auto rows = co_await conn.Query(sql::File("daemon_older.sql"), std::move(params));
  if (!rows.ok()) co_return rows.status().WithContext("reading older changes");
  co_return ChangesFromRows(*rows);
}

}  // namespace kck
