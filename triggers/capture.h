// Capture triggers: the SQL that records changes of a source table in
// kck.changes, generated from what the primers' dependency rules read.
//
// One statement-level trigger per operation, all calling one function per
// table that reads the transition tables. Measured on a 100k-row table
// (docs/DESIGN.md, bench/): a row-level trigger that does nothing already
// costs 1.45x on a bulk UPDATE, a statement-level trigger 1.08x; on
// single-row UPDATEs the two cost about the same. So capture is always
// statement-level, and a statement touching more than kBulkRows rows is
// recorded as one change holding the distinct images of the columns rules
// read (the primary key only when a rule reads it) instead of one change
// per row.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace kck {

// Statements touching more rows than this are captured in bulk form.
inline constexpr int kBulkRows = 100;
// A bulk statement with more distinct images than this on a side (or the
// setting kck.bulk_max_images, 1 to 100000000) is recorded as op 'T',
// every product of the table recomputed (BULK_MAX_IMAGES in
// triggers/capture_module.c).
inline constexpr int kBulkMaxImages = 1000000;

struct CaptureSpec {
  std::string schema;                    // unquoted, e.g. "public"
  std::string name;                      // unquoted, e.g. "store_book"
  std::vector<std::string> key_columns;  // primary key; empty: always bulk form
  std::vector<std::string> columns;      // the columns rules read, sorted; may include key columns
  bool whole_row = false;                // some rule reads the whole row

  // The name recorded in kck.changes.tbl: "schema.name".
  std::string qualified() const { return schema + "." + name; }
  // The columns of a row image: the primary key (to pair UPDATEs), then the
  // other columns rules read. Bulk images hold `columns` only.
  std::vector<std::string> row_columns() const;
};

// libpq's identifier and literal quoting (PQescapeIdentifier/Literal).
struct Quoter {
  std::function<std::string(std::string_view)> ident;
  std::function<std::string(std::string_view)> literal;
};

struct CaptureSql {
  std::string function;   // quoted, schema-qualified function name
  std::string body;       // the function's source (pg_proc.prosrc), to check what is live
  std::string install;    // CREATE OR REPLACE FUNCTION + CREATE OR REPLACE TRIGGER x4
  std::string uninstall;  // DROP TRIGGER x4 + DROP FUNCTION
  bool in_c = false;      // the function is the C capture (triggers/capture_module.c)
};

// The SQL for one table. Deterministic: the same spec gives the same text,
// which the installer compares to skip tables that did not change. With a
// `c_library` (the C module the server loads, e.g. "$libdir/kck_capture")
// a table the C capture can take calls triggers/capture_module.c.
CaptureSql GenerateCapture(const CaptureSpec& spec, const Quoter& q, std::string_view c_library = {});

// Whether the C capture takes `spec`'s table: every table but kck.cache
// (whose UPDATEs the plpgsql capture filters by version) and one whose key
// columns take its row image over 50 columns.
bool CapturableInC(const CaptureSpec& spec);

// The uninstall SQL for a table given its qualified name and function, for
// triggers recorded in kck.triggers whose spec is gone.
std::string GenerateUninstall(std::string_view schema, std::string_view name,
                              std::string_view function, const Quoter& q);

}  // namespace kck
