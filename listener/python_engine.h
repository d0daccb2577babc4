// Python primers: computed and augmented by the Django worker the daemon
// supervises (listener/worker_pool.h), one JSON request each.
#pragma once

#include "listener/worker_pool.h"
#include "primers/engine.h"

namespace kck {

class PythonEngine : public Engine {
 public:
  // `worker` may be null (no --python-worker): every request then fails.
  explicit PythonEngine(WorkerPool* worker) : worker_(worker) {}

  Task<StatusOr<Computed>> Compute(const Primer& primer, const std::string& key) override;
  Task<StatusOr<std::optional<std::string>>> Augment(const Primer& primer, const std::string& key,
                                                     const ChangeImage& change, const std::string& current) override;

 private:
  WorkerPool* worker_;
};

}  // namespace kck
