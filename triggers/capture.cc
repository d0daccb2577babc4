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

// The outbox parts that take turns (sql/005_outbox_parts.sql).
constexpr int kOutboxParts = 3;

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

// What the body generators share about one table.
struct Gen {
  const CaptureSpec& spec;
  const Quoter& q;
  std::string tbl;                    // the kck.changes.tbl literal
  std::string target;                 // the outbox part written to (kck.changes_N)
  std::vector<std::string> row_cols;  // columns of a row image
  bool whole;                         // images are whole rows

  // Distinct images of the columns rules read in the rows of `from` (a
  // transition table aliased kck_x, maybe filtered), as an array; NULL when
  // there are more than kck_max (see BulkInsert). The distinct rows are
  // materialized once and counted; the array is built only under the cap
  // (an uncorrelated subquery runs when first used).
  std::string Bulk(const std::string& from) const {
    if (whole) return Capped("SELECT DISTINCT to_jsonb(kck_x) AS kck_r FROM " + from, "kck_r");
    if (spec.columns.empty()) return "(SELECT jsonb_build_array('{}'::jsonb))";
    // Distinct by their jsonb values: a DISTINCT over a column of a type
    // without an equality (json, point) would fail the writer's statement,
    // and one under a case-insensitive collation would merge 'A' and 'a',
    // two products.
    std::vector<std::string> values;
    for (const auto& c : spec.columns) values.push_back("to_jsonb(kck_x." + q.ident(c) + ") AS " + q.ident(c));
    return Capped("SELECT DISTINCT " + Join(values, ", ") + " FROM " + from, Image(spec.columns, "kck_s", q, false));
  }
  // The array of `image` over the rows of `distinct` (aliased kck_s), NULL
  // past kck_max rows.
  static std::string Capped(const std::string& distinct, const std::string& image) {
    return "(WITH kck_d AS MATERIALIZED (" + distinct + ") SELECT CASE WHEN (SELECT count(*) FROM kck_d) <= kck_max "
           "THEN (SELECT jsonb_agg(" + image + ") FROM kck_d kck_s) END)";
  }
  // Products whose version did not move are not changes (sql/daemon_write.sql
  // renews a product's snapshot or expiry without a new version when its
  // value is unchanged): products of products skip them.
  bool UnchangedProductsSkipped() const { return spec.qualified() == "kck.cache"; }
  // The rows of one side of an UPDATE as a FROM item aliased kck_x.
  std::string UpdatedRows(const std::string& side, const std::string& other) const {
    if (!UnchangedProductsSkipped()) return side + " kck_x";
    return side + " kck_x WHERE NOT EXISTS (SELECT 1 FROM " + other +
           " kck_y WHERE kck_y.key = kck_x.key AND kck_y.version = kck_x.version)";
  }
  // Aliases are kck_-prefixed so they cannot collide with user column names.
  std::string RowImage(const std::string& alias) const { return Image(row_cols, alias, q, whole); }
  // With no primary key rows cannot be paired: always bulk form.
  bool AlwaysBulk() const { return spec.key_columns.empty(); }
  // Whether a statement touched more than kBulkRows rows (callers handle
  // AlwaysBulk() first).
  std::string IsBulk(const std::string& transition) const {
    return "EXISTS (SELECT 1 FROM " + transition + " OFFSET " + std::to_string(kBulkRows) + ")";
  }
  // The row images of at most kBulkRows + 1 rows of a transition table, in
  // its order: one more than a row change holds tells a bulk statement.
  std::string Images(const std::string& transition, const std::string& alias) const {
    return "ARRAY(SELECT " + RowImage(alias) + " FROM " + transition + " " + alias + " LIMIT " +
           std::to_string(kBulkRows + 1) + ")";
  }
  // Reads every captured column of a transition table and no row.
  std::string Check(const std::string& transition, const std::string& alias) const {
    std::vector<std::string> refs;
    for (const auto& c : row_cols) refs.push_back(alias + "." + q.ident(c));
    return "PERFORM " + Join(refs, ", ") + " FROM " + transition + " " + alias + " LIMIT 0;\n";
  }
};

// The column check: a rename or dropped column makes the capture SQL fail,
// and the trigger runs inside the user's statement, which must not fail.
// The block only reads, so its subtransaction never gets an XID (a writing
// one per statement would overflow the 64-subxid cache of long
// transactions); the degraded change is written after it.
std::string CheckBlock(const Gen& g) {
  if (g.row_cols.empty()) return "";
  return "  BEGIN\n"
         "    IF TG_OP = 'INSERT' THEN\n"
         "      " + g.Check("kck_new", "kck_n") +
         // One side suffices for UPDATE: old and new rows have the same columns.
         "    ELSIF TG_OP = 'UPDATE' THEN\n"
         "      " + g.Check("kck_new", "kck_n") +
         "    ELSIF TG_OP = 'DELETE' THEN\n"
         "      " + g.Check("kck_old", "kck_o") +
         "    END IF;\n"
         "  EXCEPTION WHEN OTHERS THEN\n"
         "    kck_degraded := SQLERRM;\n"
         "  END;\n";
}

// kck.bulk_max_images when it is a number from 1 to 100000000, else
// kBulkMaxImages (as triggers/capture_module.c reads it).
std::string MaxImagesSql() {
  const std::string setting = "current_setting('kck.bulk_max_images', true)";
  return "coalesce(CASE WHEN " + setting + " ~ '^[0-9]{1,9}$' THEN CASE WHEN " + setting +
         "::int BETWEEN 1 AND 100000000 THEN " + setting + "::int END END, " + std::to_string(kBulkMaxImages) + ")";
}

// The change of a bulk statement, at `indent`, from the SQL of its sides'
// images (Gen::Bulk; empty for a side the statement has not), kept only
// `where` it holds: op 'T', which recomputes every product of the table,
// when a side holds more than kck_max distinct images (an array of them
// would take the writer's backend hundreds of megabytes, and past 1 GB fail
// the statement). OFFSET 0 keeps the images computed once: pulled up, the
// subquery's expressions would run once per reference.
std::string BulkInsert(const Gen& g, const std::string& indent, char op, const std::string& old_images,
                       const std::string& new_images, const std::string& where = "") {
  std::vector<std::string> past;
  if (!old_images.empty()) past.push_back("kck_b.kck_o IS NULL");
  if (!new_images.empty()) past.push_back("kck_b.kck_n IS NULL");
  const std::string over = Join(past, " OR ");
  return indent + "kck_max := " + MaxImagesSql() + ";\n" + indent + "INSERT INTO " + g.target +
         " (tbl, op, old, new) SELECT " + g.tbl + ", CASE WHEN " + over + " THEN 'T' ELSE '" + op +
         "' END, CASE WHEN " + over + " THEN NULL ELSE kck_b.kck_o END, CASE WHEN " + over +
         " THEN jsonb_build_object('bulk', 'more than ' || kck_max || ' distinct images: every product of the "
         "table') ELSE kck_b.kck_n END FROM (SELECT " + (old_images.empty() ? "NULL::jsonb" : old_images) +
         " AS kck_o, " + (new_images.empty() ? "NULL::jsonb" : new_images) + " AS kck_n OFFSET 0) kck_b" + where +
         ";\n";
}

// INSERT and DELETE have one transition table each and one image column:
// a size test, then the rows' images or the bulk form. (Gathering at most
// kBulkRows + 1 images in one statement, as an UPDATE does, cost a
// single-row INSERT more than this test and a plain INSERT ... SELECT:
// bench/capture_parts.sh.)
std::string OneSided(const Gen& g, const std::string& tg_op, char op, const std::string& column,
                     const std::string& transition, const std::string& alias) {
  const std::string insert = "INSERT INTO " + g.target + " (tbl, op, " + column + ") SELECT " + g.tbl + ", '" + op + "', ";
  const std::string images = g.Bulk(transition + " kck_x");
  auto bulk = [&](const std::string& indent) {
    return column == "old" ? BulkInsert(g, indent, op, images, "") : BulkInsert(g, indent, op, "", images);
  };
  std::string out = "  ELSIF TG_OP = '" + tg_op + "' THEN\n";
  if (g.AlwaysBulk()) return out + bulk("    ");
  return out + "    IF " + g.IsBulk(transition) + " THEN\n" + bulk("      ") +
         "    ELSE\n" +
         "      " + insert + g.RowImage(alias) + " FROM " + transition + " " + alias + ";\n" +
         "    END IF;\n";
}

// The UPDATE of a bulk statement: the distinct images of both sides.
std::string BulkUpdate(const Gen& g, const std::string& indent) {
  const std::string moved_rows = g.UnchangedProductsSkipped() ? " WHERE EXISTS (SELECT FROM " +
                                                                    g.UpdatedRows("kck_new", "kck_old") + ")"
                                                              : "";
  return BulkInsert(g, indent, 'U', g.Bulk(g.UpdatedRows("kck_old", "kck_new")),
                    g.Bulk(g.UpdatedRows("kck_new", "kck_old")), moved_rows);
}

// The rows of an UPDATE of kck.cache paired by its primary key.
std::string PairedByKey(const Gen& g, const std::string& insert) {
  std::vector<std::string> join_on;
  for (const auto& k : g.spec.key_columns) join_on.push_back("kck_o." + g.q.ident(k) + " = kck_n." + g.q.ident(k));
  const std::string moved_pairs =
      g.UnchangedProductsSkipped() ? " WHERE kck_o.version IS DISTINCT FROM kck_n.version" : "";
  return insert + "CASE WHEN kck_o IS NULL THEN NULL ELSE " + g.RowImage("kck_o") +
         " END, CASE WHEN kck_n IS NULL THEN NULL ELSE " + g.RowImage("kck_n") +
         " END FROM kck_old kck_o FULL JOIN kck_new kck_n ON " +
         (join_on.empty() ? std::string("false") : Join(join_on, " AND ")) + moved_pairs + ";\n";
}

// The rows of an UPDATE paired by position. PostgreSQL appends each updated
// row's old and new images to the two transition tables together, so the
// n-th rows of both are one row's before and after, also when the primary
// key changed. One exception leaves the tables uneven: a row moved to
// another partition whose BEFORE INSERT trigger skipped it has an old image
// only. Then, and for a bulk statement, nothing is inserted here (the bulk
// form is).
std::string PairedByPosition(const Gen& g, const std::string& insert) {
  const std::string most = std::to_string(kBulkRows);
  return insert + "kck_a.kck_uo, kck_a.kck_un FROM (SELECT " + g.Images("kck_old", "kck_o") + " AS kck_os, " +
         g.Images("kck_new", "kck_n") +
         " AS kck_ns OFFSET 0) kck_p, unnest(kck_p.kck_os, kck_p.kck_ns) AS kck_a (kck_uo, kck_un) "
         "WHERE cardinality(kck_p.kck_os) = cardinality(kck_p.kck_ns) AND cardinality(kck_p.kck_ns) <= " +
         most + ";\n";
}

// UPDATE: rows paired by position, or, for a bulk statement and for uneven
// transition tables, the distinct images of both sides. Products of
// products pair by key (a text), as their pairs filter on the version.
std::string Update(const Gen& g) {
  const std::string insert = "INSERT INTO " + g.target + " (tbl, op, old, new) SELECT " + g.tbl + ", 'U', ";
  if (g.AlwaysBulk()) return "  ELSE\n" + BulkUpdate(g, "    ");
  if (g.UnchangedProductsSkipped()) {
    return "  ELSE\n"
           "    IF " + g.IsBulk("kck_new") + " THEN\n" +
           BulkUpdate(g, "      ") +
           "    ELSE\n" +
           "      " + PairedByKey(g, insert) +
           "    END IF;\n";
  }
  // Uneven tables are not paired by key: that needs the key type's
  // equality, which may fail the statement (an extension's type).
  return "  ELSE\n"
         "    " + PairedByPosition(g, insert) +
         "    IF NOT FOUND AND EXISTS (SELECT FROM kck_old) THEN\n" +
         BulkUpdate(g, "      ") +
         "    END IF;\n";
}

// The changes of one statement, written to the part g.target.
std::string Inserts(const Gen& g) {
  std::string body;
  body += "  IF kck_degraded IS NOT NULL THEN\n";
  body += "    -- Recompute every product of the table: what cannot be mapped is never left stale.\n";
  body += "    INSERT INTO " + g.target + " (tbl, op, new) VALUES (" + g.tbl + ", 'T', jsonb_build_object('error', "
          "kck_degraded));\n";
  body += "  ELSIF TG_OP = 'TRUNCATE' THEN\n";
  body += "    INSERT INTO " + g.target + " (tbl, op) VALUES (" + g.tbl + ", 'T');\n";
  body += OneSided(g, "INSERT", 'I', "new", "kck_new", "kck_n");
  body += OneSided(g, "DELETE", 'D', "old", "kck_old", "kck_o");
  body += Update(g);
  body += "  END IF;\n";
  return body;
}

std::string Indented(const std::string& text) {
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    end = end == std::string::npos ? text.size() : end + 1;
    out += "  " + text.substr(start, end - start);
    start = end;
  }
  return out;
}

std::string Body(const Gen& g) {
  std::string body;
  body += "DECLARE\n";
  body += "  kck_degraded text;  -- why the captured columns cannot be read\n";
  body += "  kck_max int;  -- distinct images a bulk change holds at most\n";
  body += "BEGIN\n";
  body += CheckBlock(g);
  body += "  -- The outbox part of the transaction's start time, kck.outbox_part() inlined\n";
  body += "  -- (sql/005_outbox_parts.sql); plpgsql plans only the branch it runs.\n";
  body += "  CASE (floor(date_part('epoch', now()) / 2)::bigint % 3)::int\n";
  for (int part = 0; part < kOutboxParts; ++part) {
    Gen in_part = g;
    in_part.target = "kck.changes_" + std::to_string(part);
    body += part + 1 < kOutboxParts ? "  WHEN " + std::to_string(part) + " THEN\n" : std::string("  ELSE\n");
    body += Indented(Inserts(in_part));
  }
  body += "  END CASE;\n";
  body += "  -- At most one wake-up per statement, and only while a daemon may wait:\n";
  body += "  -- kck.must_notify() inlined (sql/006_wake_flag.sql), as a function call,\n";
  body += "  -- which plpgsql evaluates without starting an executor.\n";
  body += "  IF FOUND AND pg_sequence_last_value('kck.daemon_waiting') = 1 THEN\n";
  body += "    PERFORM pg_notify('kck', '');\n";
  body += "  END IF;\n";
  body += "  RETURN NULL;\n";
  body += "END\n";
  return body;
}

// Whether images are whole rows: some rule reads them, or more columns
// than jsonb_build_object takes.
bool WholeRows(const CaptureSpec& spec) { return spec.whole_row || spec.columns.size() > kMaxBuiltColumns; }

// The C capture's trigger arguments (triggers/capture_module.c): the
// table's name, the number of key columns, a letter per captured column
// ('b': bulk images hold it) or "*" for whole rows, the captured columns.
std::string CArguments(const CaptureSpec& spec, const Quoter& q) {
  const std::vector<std::string> cols = spec.row_columns();
  std::string bulk;
  if (WholeRows(spec)) {
    bulk = "*";
  } else {
    for (const auto& c : cols) {
      bulk += std::find(spec.columns.begin(), spec.columns.end(), c) != spec.columns.end() ? 'b' : '-';
    }
  }
  std::vector<std::string> args = {q.literal(spec.qualified()), q.literal(std::to_string(spec.key_columns.size())),
                                   q.literal(bulk)};
  for (const auto& c : cols) args.push_back(q.literal(c));
  return Join(args, ", ");
}

// The four statement-level triggers calling `call`.
std::string Triggers(const std::string& table, const std::string& call) {
  return "CREATE OR REPLACE TRIGGER kck_capture_ins AFTER INSERT ON " + table +
         " REFERENCING NEW TABLE AS kck_new FOR EACH STATEMENT EXECUTE FUNCTION " + call + ";\n" +
         "CREATE OR REPLACE TRIGGER kck_capture_upd AFTER UPDATE ON " + table +
         " REFERENCING OLD TABLE AS kck_old NEW TABLE AS kck_new FOR EACH STATEMENT EXECUTE FUNCTION " + call +
         ";\n" + "CREATE OR REPLACE TRIGGER kck_capture_del AFTER DELETE ON " + table +
         " REFERENCING OLD TABLE AS kck_old FOR EACH STATEMENT EXECUTE FUNCTION " + call + ";\n" +
         "CREATE OR REPLACE TRIGGER kck_capture_trunc AFTER TRUNCATE ON " + table +
         " FOR EACH STATEMENT EXECUTE FUNCTION " + call + ";\n";
}

// SECURITY DEFINER: the application's role writes its tables and needs no
// privilege on kck.changes; the fixed search_path makes that safe.
constexpr const char* kDefiner = "SECURITY DEFINER SET search_path = pg_catalog, pg_temp";

}  // namespace

bool CapturableInC(const CaptureSpec& spec) {
  // The plpgsql capture images rows whole but bulk column by column when
  // the key columns take the row image over kMaxBuiltColumns: that table
  // stays plpgsql, so that both write the same rows everywhere.
  const bool mixed = !WholeRows(spec) && spec.row_columns().size() > kMaxBuiltColumns;
  return spec.qualified() != "kck.cache" && !mixed;
}

CaptureSql GenerateCapture(const CaptureSpec& spec, const Quoter& q, std::string_view c_library) {
  CaptureSql out;
  out.function = FunctionName(spec, q);
  const std::string table = q.ident(spec.schema) + "." + q.ident(spec.name);
  out.uninstall = GenerateUninstall(spec.schema, spec.name, out.function, q);
  if (!c_library.empty() && CapturableInC(spec)) {
    out.in_c = true;
    out.body = "kck_capture";
    // Neither SECURITY DEFINER nor a fixed search_path: it converts values
    // as the writer and acts as its owner only to write the outbox
    // (triggers/capture_module.c).
    out.install = "CREATE OR REPLACE FUNCTION " + out.function + "() RETURNS trigger\n  LANGUAGE c AS " +
                  q.literal(c_library) + ", 'kck_capture';\n" +
                  Triggers(table, out.function + "(" + CArguments(spec, q) + ")");
    return out;
  }
  const Gen gen{spec, q, q.literal(spec.qualified()), "kck.changes", spec.row_columns(), WholeRows(spec)};
  const std::string body = Body(gen);

  out.body = "\n" + body;
  out.install += "CREATE OR REPLACE FUNCTION " + out.function + "() RETURNS trigger\n";
  out.install += "  LANGUAGE plpgsql " + std::string(kDefiner) + " AS $kck$\n" + body + "$kck$;\n";
  out.install += Triggers(table, out.function + "()");
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
