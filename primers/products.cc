#include "primers/products.h"

#include <chrono>

#include "primers/import_fetch.h"

namespace kck {

StatusOr<std::shared_ptr<const Registry>> LoadRegistry(pg::Connection& conn) {
  auto rows = conn.Exec(kRegistrySql);
  if (!rows.ok()) return rows.status().WithContext("reading kck.primers (did kck install run?)");
  return Registry::FromRows(*rows);
}

StatusOr<std::pair<const Primer*, std::vector<std::string>>> Products::Resolve(std::string_view key) {
  auto name = KeyPrimerName(key);
  if (!name.ok()) return name.status();
  const Primer* primer = registry_->Find(*name);
  if (primer == nullptr) return Status::Invalid("unknown primer \"" + *name + "\" in key \"" + std::string(key) + "\"");
  auto values = DecodeKey(key, primer->spec.name, primer->spec.params);
  if (!values.ok()) return values.status();
  return std::make_pair(primer, std::move(*values));
}

namespace {

std::optional<std::string> Interval(const std::optional<std::chrono::seconds>& s) {
  if (!s) return std::nullopt;
  return std::to_string(s->count()) + " seconds";
}

}  // namespace

// Inside ComputeAndStore's transaction: the compute found nothing, so the
// product does not exist; a stored value of it goes too.
Status Products::Gone(const std::string& key, const Primer& primer) {
  auto deleted = conn_.Exec("DELETE FROM kck.cache WHERE key = $1", {key});
  Status s = deleted.ok() ? conn_.ExecScript("COMMIT") : deleted.status();
  if (!s.ok()) {
    (void)conn_.ExecScript("ROLLBACK");
    return s;
  }
  return Status::Runtime("product \"" + pg::Excerpt(key, 200) + "\" does not exist (primer \"" + primer.spec.name +
                         "\" computed no row)");
}

StatusOr<Computed> Products::Compute(const Primer& primer, const std::vector<std::string>& values,
                                     const std::string& where) {
  Computed c;
  if (IsImportKind(primer.spec.engine)) {
    auto fetched = FetchImport(primer.spec, primer.KeyValues(values), {});
    if (!fetched.ok()) return fetched.status().WithContext(where + ": import failed");
    c.value = fetched->json;
    return c;
  }
  auto computed = conn_.Exec(primer.compute.sql, BindValues(primer.compute, primer.KeyValues(values)));
  if (!computed.ok()) return InUserSql(computed.status(), primer.compute).WithContext(where + ": compute failed");
  if (computed->rows() > 1) {
    return Status::Runtime(where + ": compute returned " + std::to_string(computed->rows()) + " rows");
  }
  c.gone = computed->rows() == 0;
  if (!c.gone) {
    c.value = computed->get_opt(0, 0);
    c.snapshot = computed->get_opt(0, 1);
  }
  return c;
}

StatusOr<std::pair<std::string, long long>> Products::ComputeAndStore(std::string_view key, const Primer& primer,
                                                                      const std::vector<std::string>& values,
                                                                      bool force) {
  const std::string where = "primer \"" + primer.spec.name + "\": key \"" + std::string(key) + "\"";
  if (primer.python()) {
    return Status::Runtime(where + ": a python primer is computed by Django or by kck listen --python-worker");
  }
  KCK_RETURN_IF_ERROR(conn_.ExecScript("BEGIN"));
  auto rollback = [&](Status s) {
    (void)conn_.ExecScript("ROLLBACK");
    return s;
  };
  std::string k(key);
  auto locked = conn_.Exec("SELECT kck.lock_keys(ARRAY[$1])", {k});
  if (!locked.ok()) return rollback(locked.status());
  // Someone may have stored it while we waited for the lock.
  auto row = conn_.Exec(
      "SELECT value::text, version, hard_expire IS NOT NULL AND hard_expire <= now() FROM kck.cache WHERE key = $1",
      {k});
  if (!row.ok()) return rollback(row.status());
  std::optional<std::string> expected;
  if (row->rows() == 1) {
    expected = row->get_opt(0, 1);
    if (!force && row->get(0, 2) != "t") {
      std::pair<std::string, long long> out{row->get_opt(0, 0).value_or("null"), std::stoll(*expected)};
      KCK_RETURN_IF_ERROR(conn_.ExecScript("COMMIT"));
      return out;
    }
  }
  auto t0 = std::chrono::steady_clock::now();
  auto computed = Compute(primer, values, where);
  if (!computed.ok()) return rollback(computed.status());
  if (computed->gone) return Gone(k, primer);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  auto stored = conn_.Exec(
      "SELECT value::text, version FROM kck.store($1, $2, $3::jsonb, $4::pg_snapshot, $5::float8, $6::interval, "
      "$7::interval, $8::bigint)",
      {k, primer.spec.name, computed->value.value_or("null"), computed->snapshot, std::to_string(ms),
       Interval(primer.spec.soft_expire), Interval(primer.spec.hard_expire), expected});
  if (!stored.ok()) return rollback(stored.status().WithContext(where + ": storing"));
  std::pair<std::string, long long> out{stored->get_opt(0, 0).value_or("null"), std::stoll(std::string(stored->get(0, 1)))};
  KCK_RETURN_IF_ERROR(conn_.ExecScript("COMMIT"));
  return out;
}

StatusOr<std::string> Products::Get(std::string_view key) {
  auto resolved = Resolve(key);
  if (!resolved.ok()) return resolved.status();
  auto [primer, values] = *resolved;
  auto row = conn_.Exec(
      "SELECT value::text, soft_expire IS NOT NULL AND soft_expire <= now(), "
      "hard_expire IS NOT NULL AND hard_expire <= now() FROM kck.cache WHERE key = $1",
      {std::string(key)});
  if (!row.ok()) return row.status();
  if (row->rows() == 1 && row->get(0, 2) != "t") {
    if (row->get(0, 1) == "t") {
      auto q = conn_.Exec("SELECT kck.queue_refresh(ARRAY[$1])", {std::string(key)});
      if (!q.ok()) return q.status();
    }
    return row->get_opt(0, 0).value_or("null");
  }
  auto stored = ComputeAndStore(key, *primer, values, false);
  if (!stored.ok()) return stored.status();
  return stored->first;
}

StatusOr<long long> Products::Refresh(std::string_view key) {
  auto resolved = Resolve(key);
  if (!resolved.ok()) return resolved.status();
  auto stored = ComputeAndStore(key, *resolved->first, resolved->second, true);
  if (!stored.ok()) return stored.status();
  return stored->second;
}

}  // namespace kck
