// The torture writer: a thread that streams random inserts, updates and
// deletes into the torture schema until stopped, riding through server
// restarts and terminated connections by reconnecting.
#pragma once

#include <atomic>
#include <random>
#include <string>
#include <thread>

#include "tests/torture/torture_helpers.h"

namespace kck::torture {

class Writer {
 public:
  // `authors`: author ids are 1..authors. `seed` fixes the sequence of
  // statements (not their interleaving with the daemons).
  Writer(std::string conninfo, int authors, uint64_t seed)
      : conninfo_(std::move(conninfo)), authors_(authors), rng_(seed) {}
  ~Writer() { Stop(); }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  void Start() {
    stop_ = false;
    rows_only_ = false;
    thread_ = std::thread([this] { Run(); });
  }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // From now until the next Start(), no bulk statements: the last changes
  // before a drain are then row changes, which augment applies, so a
  // change augmented twice or lost under the faults shows in the counts
  // (a bulk change recomputes every product it touches and would hide it).
  void RowsOnly() { rows_only_ = true; }
  long statements() const { return statements_; }  // sent and succeeded
  long failures() const { return failures_; }       // failed (server away, ...)

 private:
  void Run() {
    pg::Connection conn = ConnectRetrying(conninfo_);
    while (!stop_) {
      std::string sql = NextStatement();
      Status s = conn.ExecScript(sql);
      if (s.ok()) {
        ++statements_;
      } else {
        ++failures_;
        Recover(conn);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(Uniform(rng_, 0, 4)));
    }
  }

  // After a failed statement: leave any aborted transaction, or reconnect.
  void Recover(pg::Connection& conn) {
    if (PQstatus(conn.raw()) == CONNECTION_OK && conn.ExecScript("ROLLBACK").ok()) return;
    while (!stop_) {
      auto fresh = pg::Connection::Open(conninfo_);
      if (fresh.ok()) { conn = std::move(fresh).value(); return; }
      std::this_thread::sleep_for(100ms);
    }
  }

  std::string Author() { return std::to_string(Uniform(rng_, 1, authors_)); }
  std::string Num(int lo, int hi) { return std::to_string(Uniform(rng_, lo, hi)); }

  // One statement (or transaction) chosen at random: one in eight is a
  // bulk statement (more than 100 rows, captured as one bulk change).
  std::string NextStatement() {
    return Uniform(rng_, 0, 7) == 0 && !rows_only_ ? BulkStatement() : SingleStatement();
  }

  std::string SingleStatement() {
    const std::string a = Author(), b = Author();
    switch (Uniform(rng_, 0, 10)) {
      case 0: case 1:
        return "INSERT INTO store_book (author_id, title) VALUES (" + a + ", 'w" + Num(0, 1 << 30) + "')";
      case 2:
        return "UPDATE store_book SET title = 'u" + Num(0, 1 << 30) + "' WHERE id = (SELECT id FROM store_book"
               " WHERE author_id = " + a + " ORDER BY id LIMIT 1)";
      case 3:  // a row moving between keys
        return "UPDATE store_book SET author_id = " + b + " WHERE id = (SELECT max(id) FROM store_book WHERE author_id = " + a + ")";
      case 4:
        return "UPDATE store_book SET author_id = 2 WHERE id = (SELECT min(id) FROM store_book WHERE author_id = 1)";
      case 5: case 6:
        return "DELETE FROM store_book WHERE id = (SELECT max(id) FROM store_book WHERE author_id = " + a + ")";
      case 7:
        return "BEGIN; INSERT INTO store_book (author_id, title) VALUES (" + a + ", 'tx');"
               " INSERT INTO store_review (author_id, stars) VALUES (" + b + ", " + Num(1, 5) + ");"
               " DELETE FROM store_book WHERE id = (SELECT min(id) FROM store_book WHERE author_id = " + b + "); COMMIT";
      case 8:
        return "INSERT INTO store_review (author_id, stars) VALUES (" + a + ", " + Num(1, 5) + ")";
      case 9:
        return "DELETE FROM store_review WHERE id = (SELECT max(id) FROM store_review WHERE author_id = " + a + ")";
      default:  // rolled back: no change may reach the outbox
        return "BEGIN; INSERT INTO store_book (author_id, title) VALUES (" + a + ", 'ghost');"
               " UPDATE store_book SET author_id = " + b + " WHERE id % 5 = 0;"
               " DELETE FROM store_review WHERE author_id = " + a + "; ROLLBACK";
    }
  }

  std::string BulkStatement() {
    const std::string a = Author(), n = std::to_string(authors_);
    switch (Uniform(rng_, 0, 4)) {
      case 0:  // over many authors
        return "INSERT INTO store_book (author_id, title) SELECT 1 + (i * 7 + " + a + ") % " + n +
               ", 'bulk' || i FROM generate_series(1, " + Num(101, 180) + ") i";
      case 1:  // every author, no key moves
        return "UPDATE store_book SET price = price + 1 WHERE id % 3 = " + Num(0, 2);
      case 2:  // rows moving between keys
        return "UPDATE store_book SET author_id = 1 + (author_id + " + a + ") % " + n + " WHERE id % 4 = " + Num(0, 3);
      case 3:
        return "DELETE FROM store_book WHERE id IN (SELECT id FROM store_book WHERE id % 7 = " + Num(0, 6) +
               " ORDER BY id LIMIT " + Num(101, 140) + ")";
      default:
        return "INSERT INTO store_review (author_id, stars) SELECT 1 + i % " + n + ", 1 + i % 5"
               " FROM generate_series(1, " + Num(101, 150) + ") i; DELETE FROM store_review WHERE id IN"
               " (SELECT id FROM store_review ORDER BY id LIMIT 110)";
    }
  }

  std::string conninfo_;
  int authors_;
  std::mt19937_64 rng_;  // used only by the writer thread
  std::atomic<bool> stop_{false}, rows_only_{false};
  std::atomic<long> statements_{0}, failures_{0};
  std::thread thread_;
};

}  // namespace kck::torture
