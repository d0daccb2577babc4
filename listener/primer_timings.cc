#include "listener/primer_timings.h"

#include <algorithm>
#include <cmath>

namespace kck {

double EstimatedChainMs(size_t short_n, double short_ms, size_t long_n, double long_ms, size_t changes) {
  if (short_n == 0 || long_n <= short_n) return -1;
  const double each = std::max(0.0, (long_ms - short_ms) / static_cast<double>(long_n - short_n));
  return std::max(0.0, short_ms + each * (static_cast<double>(changes) - static_cast<double>(short_n)));
}

void PrimerTimings::Clear() {
  by_primer_.clear();
  changed_.clear();
}

void PrimerTimings::Computed(const std::string& primer, double ms) {
  by_primer_[primer].compute_ms = ms;
  changed_.insert(primer);
}

void PrimerTimings::Augmented(const std::string& primer, double ms, size_t changes) {
  Times& t = by_primer_[primer];
  t.augment_ms = ms;
  changes = std::max<size_t>(changes, 1);
  if (t.short_n == 0 || changes <= t.short_n) {
    t.short_n = changes;
    t.short_ms = ms;
  }
  if (changes >= t.long_n) {
    t.long_n = changes;
    t.long_ms = ms;
  }
  changed_.insert(primer);
}

void PrimerTimings::SeedFromStored(const std::string& primer, double ms, bool augments) {
  Times& t = by_primer_[primer];
  if (!t.compute_ms) t.compute_ms = ms;
  if (augments && !t.augment_ms) t.augment_ms = ms;
}

namespace {

// A published duration: a finite number of ms, at least 0.
std::optional<double> Ms(const nlohmann::json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_number()) return std::nullopt;
  const double ms = it->get<double>();
  if (!std::isfinite(ms) || ms < 0) return std::nullopt;
  return ms;
}

// A published chain length: a whole number of changes, at least 1.
std::optional<size_t> Count(const nlohmann::json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_number_integer() || it->get<long long>() < 1) return std::nullopt;
  return static_cast<size_t>(it->get<long long>());
}

}  // namespace

bool PrimerTimings::Restore(const std::string& primer, const nlohmann::json& published) {
  if (!published.is_object()) return false;
  Times t;
  t.compute_ms = Ms(published, "compute_ms");
  t.augment_ms = Ms(published, "augment_ms");
  if (published.contains("short_n")) {
    auto short_n = Count(published, "short_n");
    auto long_n = Count(published, "long_n");
    auto short_ms = Ms(published, "short_ms");
    auto long_ms = Ms(published, "long_ms");
    if (!short_n || !long_n || !short_ms || !long_ms || *long_n < *short_n) return false;
    t.short_n = *short_n;
    t.short_ms = *short_ms;
    t.long_n = *long_n;
    t.long_ms = *long_ms;
  }
  if (!t.compute_ms && !t.augment_ms && t.short_n == 0) return false;
  by_primer_.try_emplace(primer, t);
  return true;
}

std::optional<double> PrimerTimings::compute_ms(const std::string& primer) const {
  auto it = by_primer_.find(primer);
  return it == by_primer_.end() ? std::nullopt : it->second.compute_ms;
}

std::optional<double> PrimerTimings::augment_ms(const std::string& primer) const {
  auto it = by_primer_.find(primer);
  return it == by_primer_.end() ? std::nullopt : it->second.augment_ms;
}

std::optional<double> PrimerTimings::ChainMs(const std::string& primer, size_t changes) const {
  auto it = by_primer_.find(primer);
  if (it == by_primer_.end()) return std::nullopt;
  const Times& t = it->second;
  const double ms = EstimatedChainMs(t.short_n, t.short_ms, t.long_n, t.long_ms, changes);
  if (ms < 0) return std::nullopt;
  return ms;
}

nlohmann::json PrimerTimings::ToJson(const Times& t) {
  nlohmann::json j = nlohmann::json::object();
  if (t.compute_ms) j["compute_ms"] = *t.compute_ms;
  if (t.augment_ms) j["augment_ms"] = *t.augment_ms;
  if (t.short_n > 0) {
    j["short_n"] = t.short_n;
    j["short_ms"] = t.short_ms;
    j["long_n"] = t.long_n;
    j["long_ms"] = t.long_ms;
  }
  return j;
}

std::optional<nlohmann::json> PrimerTimings::TakeChanged() {
  if (changed_.empty()) return std::nullopt;
  nlohmann::json out = nlohmann::json::object();
  for (const auto& primer : changed_) out[primer] = ToJson(by_primer_[primer]);
  changed_.clear();
  return out;
}

void PrimerTimings::PublishFailed(const nlohmann::json& taken) {
  if (!taken.is_object()) return;
  for (const auto& [primer, times] : taken.items()) {
    if (by_primer_.count(primer) > 0) changed_.insert(primer);
  }
}

}  // namespace kck
