#include "listener/fault.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace kck::fault {
namespace {

struct Plan {
  std::string cut_step;
  int cut_nth = 0;  // 0: no cut
  std::string pause_step, pause_file;
  int cut_seen = 0;
  bool paused = false;
};

Plan& Config() {
  static Plan plan = [] {
    Plan p;
    if (const char* cut = std::getenv("KCK_FAULT_CUT")) {
      std::string spec = cut;
      size_t colon = spec.find(':');
      p.cut_step = spec.substr(0, colon);
      p.cut_nth = colon == std::string::npos ? 1 : std::max(1, std::atoi(spec.c_str() + colon + 1));
    }
    const char* pause = std::getenv("KCK_FAULT_PAUSE");
    const char* file = std::getenv("KCK_FAULT_PAUSE_FILE");
    if (pause && file) {
      p.pause_step = pause;
      p.pause_file = file;
    }
    return p;
  }();
  return plan;
}

Task<void> Pause(uv_loop_t* loop, const std::string& file) {
  spdlog::warn("KCK_FAULT_PAUSE: paused until {} exists", file);
  std::ofstream(file + ".paused") << getpid() << "\n";
  while (access(file.c_str(), F_OK) != 0) co_await Sleep(loop, 10);
  spdlog::warn("KCK_FAULT_PAUSE: resumed");
}

}  // namespace

Task<void> At(std::string_view step, AsyncConnection& conn) {
  Plan& plan = Config();
  if (!plan.pause_step.empty() && !plan.paused && step == plan.pause_step) {
    plan.paused = true;
    co_await Pause(conn.loop(), plan.pause_file);
  }
  if (plan.cut_nth == 0 || step != plan.cut_step || ++plan.cut_seen != plan.cut_nth) co_return;
  spdlog::warn("KCK_FAULT_CUT: cutting the connection at step {} (occurrence {})", step, plan.cut_seen);
  if (step == "commit") {
    conn.CutAfterNextSend();
  } else {
    conn.CutSocket();
  }
}

bool NoPoll() {
  static const bool no_poll = std::getenv("KCK_FAULT_NO_POLL") != nullptr;
  return no_poll;
}

bool AnyComputeIsCheap() {
  static const bool cheap = std::getenv("KCK_FAULT_CHEAP_COMPUTES") != nullptr;
  return cheap;
}

bool RetryErrorsEachSecond() {
  static const bool each = std::getenv("KCK_FAULT_RETRY_ERRORS") != nullptr;
  return each;
}

}  // namespace kck::fault
