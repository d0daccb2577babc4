// kck warm [PRIMER...] [--jobs N]: computes the products that primers' warm
// SQL lists and that are not stored yet (primers/warm.h), dependencies
// first, `jobs` at a time, with a progress line. Interrupted (Ctrl-C), it
// stops after the computes in flight; run again, it resumes where it
// stopped, since stored products are skipped.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <mutex>
#include <thread>

#include "cli/commands.h"
#include "primers/key_codec.h"
#include "primers/products.h"
#include "primers/warm.h"
#include "sql/embedded.h"

namespace kck::cli {
namespace {

using Clock = std::chrono::steady_clock;

std::atomic<bool> interrupted{false};

struct Progress {
  std::atomic<size_t> total{0}, done{0}, failed{0};
  std::atomic<bool> finished{false};
  Clock::time_point start = Clock::now();
  bool tty = isatty(STDOUT_FILENO) != 0;
  std::mutex mu;
  std::vector<std::string> errors;  // the first few, one line each
};

// "warm: 1200/5000 (24%), 350 products/s, about 11 s left"
void PrintProgress(Progress& p, bool last) {
  const size_t done = p.done.load();
  const double s = std::chrono::duration<double>(Clock::now() - p.start).count();
  const double rate = s > 0 ? done / s : 0;
  const double left = rate > 0 ? (p.total.load() - done) / rate : 0;
  const size_t total = p.total.load();
  std::printf("%swarm: %zu/%zu (%.0f%%), %.0f products/s, about %.0f s left%s", p.tty ? "\r\033[K" : "", done, total,
              total ? 100.0 * done / total : 100.0, rate, left, p.tty && !last ? "" : "\n");
  std::fflush(stdout);
}

// Each primer's warm keys; `names` empty: every primer that has warm SQL.
StatusOr<std::map<std::string, std::vector<std::string>>> WantedKeys(pg::Connection& conn, const Registry& registry,
                                                                      const std::vector<std::string>& names) {
  std::map<std::string, std::vector<std::string>> wanted;
  std::vector<std::string> chosen = names;
  if (chosen.empty()) {
    for (const auto& p : registry.primers()) {
      if (p->spec.python_warm) std::printf("warm: python primer \"%s\" is warmed by manage.py kck_warm\n", p->spec.name.c_str());
      if (!p->spec.warm.empty()) chosen.push_back(p->spec.name);
    }
  }
  for (const auto& name : chosen) {
    const Primer* primer = registry.Find(name);
    if (primer == nullptr) return Status::Invalid("unknown primer \"" + name + "\"");
    if (primer->spec.python_warm) {
      return Status::Invalid("primer \"" + name + "\" is a python primer: its warm() runs in Django (manage.py kck_warm)");
    }
    if (primer->spec.warm.empty()) return Status::Invalid("primer \"" + name + "\" has no warm SQL");
    const BoundSql warm = WarmStatement(primer->spec);
    auto rows = conn.Exec(warm.sql);
    if (!rows.ok()) return InUserSql(rows.status(), warm).WithContext("primer \"" + name + "\": warm");
    auto keys = WarmKeys(primer->spec, *rows);
    if (!keys.ok()) return keys.status().WithContext("primer \"" + name + "\"");
    wanted[name] = std::move(*keys);
  }
  return wanted;
}

// The keys of `keys` not stored yet, in their order.
StatusOr<std::vector<std::string>> Missing(pg::Connection& conn, const std::vector<std::string>& keys) {
  auto rows = conn.Exec(std::string(sql::File("warm_missing.sql")), {pg::ArrayLiteral(keys)});
  if (!rows.ok()) return rows.status();
  std::vector<std::string> out;
  for (int i = 0; i < rows->rows(); ++i) out.emplace_back(rows->get(i, 0));
  return out;
}

// Keys of Python primers are computed by the daemon's worker: queued for it.
StatusOr<size_t> QueuePython(pg::Connection& conn, const Registry& registry, std::vector<std::string>& keys) {
  std::vector<std::string> python;
  std::erase_if(keys, [&](const std::string& key) {
    auto name = KeyPrimerName(key);
    const Primer* p = name.ok() ? registry.Find(*name) : nullptr;
    if (p == nullptr || !p->python()) return false;
    python.push_back(key);
    return true;
  });
  if (python.empty()) return size_t{0};
  auto r = conn.Exec(std::string(sql::File("warm_queue_python.sql")), {pg::ArrayLiteral(python)});
  if (!r.ok()) return r.status();
  return python.size();
}

// Computes `keys` of SQL primers, `jobs` connections at a time.
void ComputeAll(const Global& g, const std::shared_ptr<const Registry>& registry, const std::vector<std::string>& keys,
                int jobs, Progress& progress) {
  std::atomic<size_t> next{0};
  auto work = [&] {
    auto conn = Connect(g);
    if (!conn.ok()) {
      std::lock_guard<std::mutex> lock(progress.mu);
      progress.errors.push_back(conn.status().message());
      return;
    }
    Products products(*conn, registry);
    for (size_t i; !interrupted && (i = next++) < keys.size();) {
      auto value = products.Get(keys[i]);
      if (!value.ok()) {
        ++progress.failed;
        std::lock_guard<std::mutex> lock(progress.mu);
        if (progress.errors.size() < 5) progress.errors.push_back(value.status().message());
      }
      ++progress.done;
    }
  };
  std::vector<std::thread> threads;
  for (int j = 0; j < jobs; ++j) threads.emplace_back(work);
  for (auto& t : threads) t.join();
}

// The plan's missing keys by level (Python primers' queued for the daemon).
StatusOr<std::vector<std::vector<std::string>>> MissingLevels(pg::Connection& conn, const Registry& registry,
                                                             const std::vector<std::string>& primers) {
  auto wanted = WantedKeys(conn, registry, primers);
  if (!wanted.ok()) return wanted.status();
  std::vector<std::vector<std::string>> levels;
  size_t queued = 0;
  for (auto& level : PlanWarm(registry, *wanted)) {
    auto missing = Missing(conn, level);
    if (!missing.ok()) return missing.status();
    auto python = QueuePython(conn, registry, *missing);
    if (!python.ok()) return python.status();
    queued += *python;
    levels.push_back(std::move(*missing));
  }
  if (queued) std::printf("warm: %zu products of python primers queued for the daemon\n", queued);
  return levels;
}

}  // namespace

int Warm(const Global& g, const std::vector<std::string>& primers, int jobs) {
  auto conn = Connect(g);
  if (!conn.ok()) return Fail(conn.status());
  auto registry = LoadRegistry(*conn);
  if (!registry.ok()) return Fail(registry.status());
  auto levels = MissingLevels(*conn, **registry, primers);
  if (!levels.ok()) return Fail(levels.status());
  Progress progress;
  for (const auto& level : *levels) progress.total += level.size();
  std::printf("warm: %zu products to compute\n", progress.total.load());
  std::fflush(stdout);  // a pipe or the journal sees the plan now, not with the first progress line
  std::signal(SIGINT, [](int) { interrupted = true; });
  std::thread reporter([&] {
    const auto period = progress.tty ? std::chrono::milliseconds(200) : std::chrono::milliseconds(5000);
    for (auto next = Clock::now() + period; !progress.finished; std::this_thread::sleep_for(std::chrono::milliseconds(50))) {
      if (Clock::now() < next) continue;
      PrintProgress(progress, false);
      next += period;
    }
  });
  for (const auto& level : *levels) {
    if (!interrupted) ComputeAll(g, *registry, level, jobs, progress);
  }
  progress.finished = true;
  reporter.join();
  PrintProgress(progress, true);
  for (const auto& e : progress.errors) std::fprintf(stderr, "kck: %s\n", e.c_str());
  if (interrupted) {
    std::printf("interrupted: run kck warm again to compute the rest\n");
    return 130;
  }
  return progress.failed > 0 ? 1 : 0;
}

}  // namespace kck::cli
