// kck explain KEY: why a product is what it is, or stale. Its primer's
// rules, its stored row (version, when and how long its last compute took,
// its error), the changes in the outbox that will touch it (planned with the
// daemon's own planner, listener/planner.h), and the products that depend
// on it.
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/quote.h"
#include "listener/intake.h"
#include "listener/planner.h"
#include "pg/connection.h"
#include "primers/config.h"
#include "primers/key_codec.h"
#include "primers/products.h"
#include "sql/embedded.h"

namespace kck::cli {
namespace {

// The outbox's changes planned at most: more are reported as such.
constexpr int kPlannedChanges = 10000;
// Change ids listed in the output.
constexpr size_t kListedIds = 20;

// The stored row of `key`, or {"stored": false}.
StatusOr<nlohmann::json> StoredRow(pg::Connection& conn, const std::string& key) {
  auto r = conn.Exec(std::string(sql::File("explain_stored.sql")), {key});
  if (!r.ok()) return r.status().WithContext("reading kck.cache");
  if (r->rows() == 0) return nlohmann::json{{"stored", false}};
  auto text = [&](int col) { return r->is_null(0, col) ? nlohmann::json() : nlohmann::json(r->get(0, col)); };
  auto number = [&](int col) {
    return r->is_null(0, col) ? nlohmann::json() : nlohmann::json(std::stod(std::string(r->get(0, col))));
  };
  auto integer = [&](int col) {
    return r->is_null(0, col) ? nlohmann::json() : nlohmann::json(std::stoll(std::string(r->get(0, col))));
  };
  return nlohmann::json{{"stored", true},           {"version", integer(0)},    {"computed_at", text(1)},
                        {"age_s", number(2)},       {"compute_ms", number(3)},  {"error", text(4)},
                        {"value_bytes", integer(5)}, {"soft_expire", text(6)}, {"hard_expire", text(7)}};
}

struct Outbox {
  std::vector<Change> changes;
  std::set<long long> claimed;
  bool cut = false;  // more than kPlannedChanges
};

StatusOr<Outbox> ReadOutbox(pg::Connection& conn) {
  auto rows = conn.Exec(std::string(sql::File("explain_outbox.sql")), {std::to_string(kPlannedChanges + 1)});
  if (!rows.ok()) return rows.status().WithContext("reading kck.changes");
  Outbox out;
  for (int i = 0; i < rows->rows() && i < kPlannedChanges; ++i) {
    out.changes.push_back(ChangeFromRow(*rows, i, 0));
    if (rows->get(i, 6) == "t") out.claimed.insert(out.changes.back().id);
  }
  out.cut = rows->rows() > kPlannedChanges;
  return out;
}

// The indexes of the changes in `plan` that reach `key` of `primer`, and
// how many reach it only if a keys query (run by the daemon) returns it.
void Reaching(const Plan& plan, const Primer& primer, const std::string& key, const std::vector<std::string>& values,
              std::set<size_t>* changes, size_t* maybe) {
  if (auto it = plan.keys.find(key); it != plan.keys.end()) changes->insert(it->second.changes.begin(),
                                                                            it->second.changes.end());
  for (const auto& m : plan.partial) {
    if (m.primer == &primer && Plan::Matches(m, values)) changes->insert(m.change);
  }
  for (const auto& q : plan.keys_queries) *maybe += q.primer == &primer;
}

nlohmann::json Pending(const Outbox& outbox, const Registry& reg, const Primer& primer, const std::string& key,
                       const std::vector<std::string>& values) {
  const Plan plan = PlanChanges(outbox.changes, reg);
  std::set<size_t> reach;
  size_t maybe = 0;
  Reaching(plan, primer, key, values, &reach, &maybe);
  bool degraded = false;
  for (const auto& d : plan.degraded) {
    for (const RuleRef& ref : reg.RulesForTable(d.table)) degraded |= ref.primer == &primer;
  }
  nlohmann::json ids = nlohmann::json::array();
  size_t claimed = 0;
  for (size_t idx : reach) {
    const long long id = outbox.changes[idx].id;
    claimed += outbox.claimed.count(id);
    if (ids.size() < kListedIds) ids.push_back(id);
  }
  return {{"changes", reach.size()}, {"ids", ids},       {"claimed", claimed},
          {"keys_queries", maybe},   {"degraded", degraded}, {"outbox_planned", outbox.changes.size()},
          {"outbox_cut", outbox.cut}};
}

// Products computed from this one: a change of its row, planned.
nlohmann::json Dependents(const Registry& reg, const Primer& primer, const std::string& key) {
  Change c;
  c.tbl = "kck.cache";
  c.op = 'U';
  c.new_json = nlohmann::json{{"key", key}, {"primer", primer.spec.name}}.dump();
  const Plan plan = PlanChanges({c}, reg);
  nlohmann::json keys = nlohmann::json::array(), partial = nlohmann::json::array();
  for (const auto& [k, w] : plan.keys) keys.push_back(k);
  for (const auto& m : plan.partial) {
    nlohmann::json fixed = nlohmann::json::object();
    for (size_t i = 0; i < m.fixed.size(); ++i) {
      fixed[m.primer->spec.params[i].name] = m.fixed[i] ? nlohmann::json(*m.fixed[i]) : nlohmann::json("any");
    }
    partial.push_back({{"primer", m.primer->spec.name}, {"params", fixed}});
  }
  return {{"keys", keys}, {"partial", partial}};
}

StatusOr<nlohmann::json> Explain(pg::Connection& conn, const Registry& reg, const std::string& key) {
  const std::string name = key.substr(0, key.find('/'));
  const Primer* primer = reg.Find(name);
  if (primer == nullptr) {
    return Status::Invalid("key " + QuoteForError(key) + ": no primer " + QuoteForError(name) + " is registered");
  }
  auto values = DecodeKey(key, name, primer->spec.params);
  if (!values.ok()) return values.status().WithContext("key " + QuoteForError(key));
  auto stored = StoredRow(conn, key);
  if (!stored.ok()) return stored.status();
  auto outbox = ReadOutbox(conn);
  if (!outbox.ok()) return outbox.status();
  nlohmann::json rules = PrimerToJson(primer->spec)["depends_on"];
  return nlohmann::json{{"key", key},
                        {"primer", name},
                        {"engine", primer->spec.engine},
                        {"product", *stored},
                        {"rules", rules},
                        {"pending", Pending(*outbox, reg, *primer, key, *values)},
                        {"dependents", Dependents(reg, *primer, key)}};
}

std::string Field(const nlohmann::json& j) { return j.is_null() ? "-" : j.is_string() ? j.get<std::string>() : j.dump(); }

void PrintProduct(const nlohmann::json& p) {
  if (!p["stored"].get<bool>()) {
    std::printf("product:    not stored (computed on the first read)\n");
    return;
  }
  std::printf("product:    version %s, computed %s (%.1f s ago) in %.2f ms, %s bytes\n", Field(p["version"]).c_str(),
              Field(p["computed_at"]).c_str(), p["age_s"].is_null() ? 0.0 : p["age_s"].get<double>(),
              p["compute_ms"].is_null() ? 0.0 : p["compute_ms"].get<double>(), Field(p["value_bytes"]).c_str());
  std::printf("error:      %s\n", Field(p["error"]).c_str());
  if (!p["soft_expire"].is_null() || !p["hard_expire"].is_null()) {
    std::printf("expires:    soft %s, hard %s\n", Field(p["soft_expire"]).c_str(), Field(p["hard_expire"]).c_str());
  }
}

void Print(const nlohmann::json& j) {
  std::printf("key:        %s (primer %s, %s engine)\n", j["key"].get<std::string>().c_str(),
              j["primer"].get<std::string>().c_str(), j["engine"].get<std::string>().c_str());
  PrintProduct(j["product"]);
  for (size_t i = 0; i < j["rules"].size(); ++i) std::printf("rule:       depends_on[%zu] %s\n", i, j["rules"][i].dump().c_str());
  const auto& p = j["pending"];
  std::printf("pending:    %zu change(s) in the outbox touch it (%zu claimed by daemons)%s%s\n",
              p["changes"].get<size_t>(), p["claimed"].get<size_t>(), p["ids"].empty() ? "" : ": ids ",
              p["ids"].empty() ? "" : p["ids"].dump().c_str());
  if (p["keys_queries"].get<size_t>() > 0) {
    std::printf("            and %zu may, if their keys query returns it\n", p["keys_queries"].get<size_t>());
  }
  if (p["degraded"].get<bool>()) std::printf("            a degraded capture: every product of the primer is recomputed\n");
  if (p["outbox_cut"].get<bool>()) std::printf("            (only the first %d changes were planned)\n", kPlannedChanges);
  const auto& d = j["dependents"];
  std::printf("dependents: %s", d["keys"].empty() && d["partial"].empty() ? "none\n" : "");
  if (!d["keys"].empty()) std::printf("%s\n", d["keys"].dump().c_str());
  for (const auto& m : d["partial"]) std::printf("            every stored %s with %s\n",
                                                 m["primer"].get<std::string>().c_str(), m["params"].dump().c_str());
}

}  // namespace

int ExplainCmd(const Global& g, const std::string& key, bool json) {
  auto conn = Connect(g);
  if (!conn.ok()) return Fail(conn.status());
  auto registry = LoadRegistry(*conn);
  if (!registry.ok()) return Fail(registry.status());
  auto j = Explain(*conn, **registry, key);
  if (!j.ok()) return Fail(j.status());
  if (json) {
    std::printf("%s\n", j->dump(2).c_str());
  } else {
    Print(*j);
  }
  return 0;
}

}  // namespace kck::cli
