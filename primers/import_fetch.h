// Fetching an import (primers/import_spec.h): runs a primer's command, or
// GETs its URL, with the key's parameters bound in, and returns the JSON it
// produced. Blocking: the daemon calls it on libuv's thread pool
// (listener/import_engine.h), `kck get` directly.
//
// Each attempt is bounded by the primer's timeout and max_bytes; failures
// that may pass (a timeout, a connection refused, HTTP 429 or 5xx, a
// command exiting non-zero) are tried again up to `retries` times after
// 200 ms, 400 ms, ... each scaled by a random 0.5-1.5 (jitter). Output that
// is too large or not JSON, HTTP 4xx, and a command that cannot be started
// are not retried. Every error is one line naming what failed.
#pragma once

#include <map>
#include <string>

#include "common/status.h"
#include "primers/config.h"
#include "primers/registry.h"

namespace kck {

// What a previous fetch of the same URL said, for a conditional request.
struct Validators {
  std::string etag, last_modified;
};

struct Fetched {
  std::string json;         // the value (empty when not_modified)
  Validators validators;    // ETag / Last-Modified of the response
  bool not_modified = false;  // HTTP 304: the previous value stands
};

// `values` are the key's parameter values by name (Primer::KeyValues).
StatusOr<Fetched> FetchImport(const PrimerSpec& spec, const NamedValues& values,
                              const Validators& previous);

// RFC 3986 percent-encoding of everything but unreserved characters.
std::string PercentEncode(const std::string& text);

}  // namespace kck
