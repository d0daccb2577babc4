// Fault injection for tests: cut or pause the daemon at one step of a batch.
//
//   KCK_FAULT_CUT=<step>[:<n>]   the n-th time (default 1) the step is
//                                reached, shut down the socket of the
//                                connection it uses, so the step fails as
//                                on a lost connection
//   KCK_FAULT_PAUSE=<step>       the first time the step is reached, create
//   KCK_FAULT_PAUSE_FILE=<path>  <path>.paused and wait until <path> exists
//
//   KCK_FAULT_NO_POLL=1          no periodic look at the outbox (every 5 s),
//                                so a lost wake-up shows as a stale product
//   KCK_FAULT_CHEAP_COMPUTES=1   every primer counts as cheap for the fast
//                                write (listener/fast_write.cc), however long
//                                its computes took on a loaded test machine
//   KCK_FAULT_RETRY_ERRORS=1     products in error are tried again every
//                                second, a primer whose probe failed after a
//                                second (listener/error_retry.h)
//
// Steps: claim, plan, lock, compute, write, commit (after the writes and
// COMMIT were sent, before their reply); warm_plan (before a warm-up lists
// its keys), warm_queue (before it queues a slice); read_timings (before a
// daemon that loaded its primers reads the timings published,
// Executor::RestoreTimings), plan_ahead (before it plans their statements,
// Executor::Rehearse); publish_timings (on the listening connection, before
// the daemon publishes what it timed, Daemon::PublishTimings). Unset
// variables cost one branch.
#pragma once

#include <string_view>

#include "pg/async_connection.h"
#include "common/task.h"

namespace kck::fault {

// Applies whatever the environment asks for at `step` to `conn`.
Task<void> At(std::string_view step, AsyncConnection& conn);
// Whether KCK_FAULT_NO_POLL is set.
bool NoPoll();
// Whether KCK_FAULT_CHEAP_COMPUTES is set.
bool AnyComputeIsCheap();
// Whether KCK_FAULT_RETRY_ERRORS is set.
bool RetryErrorsEachSecond();

}  // namespace kck::fault
