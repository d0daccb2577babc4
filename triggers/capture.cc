#include "triggers/capture.h"

#include <algorithm>
#include <functional>

namespace kck {

std::vector<std::string> CaptureSpec::row_columns() const {
  std::vector<std::string> out = key_columns;
  for (const auto& c : columns) {
    if (std::find(key_columns.begin(), key_columns.end(), c) == key_columns.end()) out.push_back(c);
  }
  return out;
}

namespace {

constexpr const char* kTriggerNames[] = {"kck_capture_ins", "kck_capture_upd", "kck_capture_del",
                                         "kck_capture_trunc"};

// jsonb_build_object takes at most 100 arguments: 50 columns.
constexpr size_t kMaxBuiltColumns = 50;

std::string FunctionName(const CaptureSpec& spec, const Quoter& q) {
  std::string base = "capture:" + spec.qualified();
  if (base.size() > 63) {
    size_t h = std::hash<std::string>{}(base);
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016zx", h);
    base = base.substr(0, 46) + "~" + hex;
  }
  return "kck." + q.ident(base);
}

std::string Join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

// jsonb image of the given columns of `alias`.
std::string Image(const std::vector<std::string>& cols, const std::string& alias, const Quoter& q,
                  bool whole_row) {
  if (whole_row || cols.size() > kMaxBuiltColumns) return "to_jsonb(" + alias + ")";
  std::vector<std::string> args;
  for (const auto& c : cols) {
    args.push_back(q.literal(c));
    args.push_back(alias + "." + q.ident(c));
  }
  return "jsonb_build_object(" + Join(args, ", ") + ")";
}

}  // namespace

CaptureSql GenerateCapture(const CaptureSpec& spec, const Quoter& q) {
  CaptureSql out;
  out.function = FunctionName(spec, q);
  const std::string table = q.ident(spec.schema) + "." + q.ident(spec.name);
  const std::string tbl = q.literal(spec.qualified());

  const std::vector<std::string> row_cols = spec.row_columns();
  const bool whole = spec.whole_row || spec.columns.size() > kMaxBuiltColumns;

  // Distinct images of the captured columns of a transition table, as an array.
  auto bulk = [&](const std::string& transition) {
    if (whole) {
      return "(SELECT jsonb_agg(kck_r) FROM (SELECT DISTINCT to_jsonb(kck_x) AS kck_r FROM " + transition + " kck_x) kck_s)";
    }
    if (spec.columns.empty()) return std::string("(SELECT jsonb_build_array('{}'::jsonb))");
    std::vector<std::string> quoted;
    for (const auto& c : spec.columns) quoted.push_back(q.ident(c));
    return "(SELECT jsonb_agg(" + Image(spec.columns, "kck_s", q, false) + ") FROM (SELECT DISTINCT " +
           Join(quoted, ", ") + " FROM " + transition + ") kck_s)";
  };
  // Aliases are kck_-prefixed so they cannot collide with user column names.
  auto image = [&](const std::string& alias) { return Image(row_cols, alias, q, whole); };
  // With no primary key rows cannot be paired: always bulk form.
  const std::string is_bulk = spec.key_columns.empty()
                                  ? std::string("true")
                                  : "EXISTS (SELECT 1 FROM %T OFFSET " + std::to_string(kBulkRows) + ")";
  auto bulk_test = [&](const std::string& transition) {
    std::string s = is_bulk;
    if (auto p = s.find("%T"); p != std::string::npos) s.replace(p, 2, transition);
    return s;
  };
  std::vector<std::string> join_on;
  for (const auto& k : spec.key_columns) join_on.push_back("kck_o." + q.ident(k) + " = kck_n." + q.ident(k));

  std::string body;
  body += "BEGIN\n";
  body += "  IF TG_OP = 'TRUNCATE' THEN\n";
  body += "    INSERT INTO kck.changes (tbl, op) VALUES (" + tbl + ", 'T');\n";
  // INSERT and DELETE have one transition table each and one image column.
  auto one_sided = [&](const std::string& tg_op, const std::string& op, const std::string& column,
                       const std::string& transition, const std::string& alias) {
    return "  ELSIF TG_OP = '" + tg_op + "' THEN\n" +
           "    IF " + bulk_test(transition) + " THEN\n" +
           "      INSERT INTO kck.changes (tbl, op, " + column + ") SELECT " + tbl + ", '" + op + "', " +
           bulk(transition) + ";\n" +
           "    ELSE\n" +
           "      INSERT INTO kck.changes (tbl, op, " + column + ") SELECT " + tbl + ", '" + op + "', " +
           image(alias) + " FROM " + transition + " " + alias + ";\n" +
           "    END IF;\n";
  };
  body += one_sided("INSERT", "I", "new", "kck_new", "kck_n");
  body += one_sided("DELETE", "D", "old", "kck_old", "kck_o");
  body += "  ELSE\n";
  body += "    IF " + bulk_test("kck_new") + " THEN\n";
  body += "      INSERT INTO kck.changes (tbl, op, old, new) SELECT " + tbl + ", 'U', " + bulk("kck_old") + ", " +
          bulk("kck_new") + ";\n";
  body += "    ELSE\n";
  body += "      INSERT INTO kck.changes (tbl, op, old, new) SELECT " + tbl + ", 'U', " +
          "CASE WHEN kck_o IS NULL THEN NULL ELSE " + image("kck_o") + " END, CASE WHEN kck_n IS NULL THEN NULL ELSE " +
          image("kck_n") + " END FROM kck_old kck_o FULL JOIN kck_new kck_n ON " +
          (join_on.empty() ? std::string("false") : Join(join_on, " AND ")) + ";\n";
  body += "    END IF;\n";
  body += "  END IF;\n";
  body += "  -- One wake-up per statement; the rows above are what the daemon reads.\n";
  body += "  IF FOUND THEN\n";
  body += "    PERFORM pg_notify('kck', '');\n";
  body += "  END IF;\n";
  body += "  RETURN NULL;\n";
  body += "END\n";

  out.body = "\n" + body;
  out.install += "CREATE OR REPLACE FUNCTION " + out.function + "() RETURNS trigger\n";
  // SECURITY DEFINER: the application's role writes its tables and needs no
  // privilege on kck.changes; the fixed search_path makes that safe.
  out.install += "  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $kck$\n" + body + "$kck$;\n";
  out.install += "CREATE OR REPLACE TRIGGER kck_capture_ins AFTER INSERT ON " + table +
                 " REFERENCING NEW TABLE AS kck_new FOR EACH STATEMENT EXECUTE FUNCTION " + out.function + "();\n";
  out.install += "CREATE OR REPLACE TRIGGER kck_capture_upd AFTER UPDATE ON " + table +
                 " REFERENCING OLD TABLE AS kck_old NEW TABLE AS kck_new FOR EACH STATEMENT EXECUTE FUNCTION " +
                 out.function + "();\n";
  out.install += "CREATE OR REPLACE TRIGGER kck_capture_del AFTER DELETE ON " + table +
                 " REFERENCING OLD TABLE AS kck_old FOR EACH STATEMENT EXECUTE FUNCTION " + out.function + "();\n";
  out.install += "CREATE OR REPLACE TRIGGER kck_capture_trunc AFTER TRUNCATE ON " + table +
                 " FOR EACH STATEMENT EXECUTE FUNCTION " + out.function + "();\n";
  out.uninstall = GenerateUninstall(spec.schema, spec.name, out.function, q);
  return out;
}

std::string GenerateUninstall(std::string_view schema, std::string_view name, std::string_view function,
                              const Quoter& q) {
  const std::string table = q.ident(schema) + "." + q.ident(name);
  std::string sql;
  for (const char* t : kTriggerNames) sql += "DROP TRIGGER IF EXISTS " + std::string(t) + " ON " + table + ";\n";
  sql += "DROP FUNCTION IF EXISTS " + std::string(function) + "();\n";
  return sql;
}

}  // namespace kck
