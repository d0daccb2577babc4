// Python primers: computed and augmented by the Django worker the daemon
// supervises (listener/worker_pool.h), one JSON request each (a key's
// augments of a batch: one request together).
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
  // A key's changes in one request to a worker of protocol 2 (the value
  // crosses the pipe once, not once per change); one by one otherwise.
  Task<StatusOr<std::optional<std::string>>> AugmentAll(const Primer& primer, const std::string& key,
                                                        std::vector<ChangeImage> changes,
                                                        std::string current) override;

 private:
  WorkerPool* worker_;
};

}  // namespace kck
