#include "primers/import_fetch.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "pg/connection.h"

extern char** environ;

namespace kck {
namespace {

using Clock = std::chrono::steady_clock;

// One attempt: its outcome, and whether trying again may help.
struct Attempt {
  StatusOr<Fetched> result;
  bool retryable = false;
};

Attempt Fail(std::string message, bool retryable) { return {Status::Runtime(std::move(message)), retryable}; }

std::string Identity(const std::string& s) { return s; }

// An excerpt of output for a one-line error: line breaks and tabs become
// spaces, trailing whitespace goes.
std::string OneLine(const std::string& text, size_t max) {
  std::string out = pg::Excerpt(text, max);
  for (char& c : out) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  out.erase(out.find_last_not_of(' ') + 1);
  return out;
}

Status CheckJson(const std::string& text, const char* what) {
  if (nlohmann::json::accept(text)) return Status::Ok();
  return Status::Runtime(std::string(what) + " is not JSON: " + OneLine(text, 120));
}

// ------------------------------------------------------------------ command

struct Pipes {
  int out[2] = {-1, -1}, err[2] = {-1, -1};
  ~Pipes() {
    for (int fd : {out[0], out[1], err[0], err[1]}) {
      if (fd >= 0) close(fd);
    }
  }
};

// Reads the child's stdout and stderr until both close, the deadline passes
// or stdout exceeds `max`. Returns "" or why it stopped early.
std::string Drain(Pipes& p, std::string& out, std::string& err, size_t max, Clock::time_point deadline) {
  pollfd fds[2] = {{p.out[0], POLLIN, 0}, {p.err[0], POLLIN, 0}};
  char buf[65536];
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return "timeout";
    if (poll(fds, 2, static_cast<int>(left)) < 0 && errno != EINTR) return "poll failed";
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        fds[i].fd = -1;
        continue;
      }
      std::string& to = i == 0 ? out : err;
      if (i == 1 && to.size() > 4096) continue;  // enough stderr for an error line
      to.append(buf, static_cast<size_t>(n));
      if (i == 0 && out.size() > max) return "too large";
    }
  }
  return "";
}

Attempt RunCommandOnce(const PrimerSpec& spec, const NamedValues& values) {
  std::vector<std::string> args;
  for (const auto& a : spec.import.argv) args.push_back(Substitute(a, values, Identity));
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  Pipes p;
  if (pipe2(p.out, O_CLOEXEC) != 0 || pipe2(p.err, O_CLOEXEC) != 0) return Fail("cannot create pipes", true);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, p.out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, p.err[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);  // the daemon ignores it; the command must not
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);  // its own group: a kill reaches what it starts
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, argv[0], &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return Fail("cannot run \"" + args[0] + "\": " + std::strerror(rc), false);
  close(p.out[1]);
  close(p.err[1]);
  p.out[1] = p.err[1] = -1;
  std::string out, err;
  const std::string stopped = Drain(p, out, err, spec.import.max_bytes, Clock::now() + spec.import.timeout);
  if (!stopped.empty()) kill(-pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  if (stopped == "timeout") return Fail("command timed out after " + std::to_string(spec.import.timeout.count()) + " s", true);
  if (stopped == "too large") return Fail("command output is larger than max_bytes (" + std::to_string(spec.import.max_bytes) + ")", false);
  if (WIFSIGNALED(status)) return Fail("command killed by signal " + std::to_string(WTERMSIG(status)), true);
  if (WEXITSTATUS(status) != 0) {
    return Fail("command exited with status " + std::to_string(WEXITSTATUS(status)) + ": " + OneLine(err, 300), true);
  }
  Status json = CheckJson(out, "command output");
  if (!json.ok()) return {json, false};
  return {Fetched{out, {}, false}, false};
}

// --------------------------------------------------------------------- http

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

struct Response {
  std::string body;
  size_t max = 0;
  bool too_large = false;
  Validators validators;
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Response*>(user);
  if (r->body.size() + size * n > r->max) {
    r->too_large = true;
    return 0;  // aborts the transfer
  }
  r->body.append(data, size * n);
  return size * n;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Response*>(user);
  std::string line(data, size * n);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
  const size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    if (name == "etag") r->validators.etag = value;
    if (name == "last-modified") r->validators.last_modified = value;
  }
  return size * n;
}

// The request headers: the primer's (env: values resolved) and the conditional ones.
StatusOr<std::unique_ptr<curl_slist, CurlDeleter>> RequestHeaders(const PrimerSpec& spec, const Validators& previous) {
  std::vector<std::string> lines = {"Accept: application/json"};
  for (const auto& [name, value] : spec.import.headers) {
    std::string v = value;
    if (v.rfind("env:", 0) == 0) {
      const char* env = std::getenv(v.c_str() + 4);
      if (env == nullptr) return Status::Runtime("headers." + name + ": environment variable " + v.substr(4) + " is not set");
      v = env;
    }
    lines.push_back(name + ": " + v);
  }
  if (!previous.etag.empty()) lines.push_back("If-None-Match: " + previous.etag);
  if (!previous.last_modified.empty()) lines.push_back("If-Modified-Since: " + previous.last_modified);
  curl_slist* list = nullptr;
  for (const auto& line : lines) list = curl_slist_append(list, line.c_str());
  return std::unique_ptr<curl_slist, CurlDeleter>(list);
}

Attempt HttpOnce(const PrimerSpec& spec, const NamedValues& values, const Validators& previous) {
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  const std::string url = Substitute(spec.import.url, values, PercentEncode);
  auto headers = RequestHeaders(spec, previous);
  if (!headers.ok()) return {headers.status(), false};
  std::unique_ptr<CURL, CurlDeleter> c(curl_easy_init());
  Response r;
  r.max = spec.import.max_bytes;
  curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(c.get(), CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c.get(), CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c.get(), CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c.get(), CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(c.get(), CURLOPT_TIMEOUT_MS, static_cast<long>(spec.import.timeout.count() * 1000));
  curl_easy_setopt(c.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c.get(), CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(c.get(), CURLOPT_USERAGENT, "kck/" KCK_VERSION);
  curl_easy_setopt(c.get(), CURLOPT_HTTPHEADER, headers->get());
  curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &r);
  curl_easy_setopt(c.get(), CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(c.get(), CURLOPT_HEADERDATA, &r);
  const CURLcode rc = curl_easy_perform(c.get());
  const std::string where = " (GET " + pg::Excerpt(url, 200) + ")";
  if (r.too_large) return Fail("response is larger than max_bytes (" + std::to_string(r.max) + ")" + where, false);
  if (rc == CURLE_TOO_MANY_REDIRECTS) return Fail(std::string(curl_easy_strerror(rc)) + where, false);
  if (rc != CURLE_OK) return Fail(std::string(curl_easy_strerror(rc)) + where, true);
  long code = 0;
  curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &code);
  if (code == 304) return {Fetched{"", r.validators, true}, false};
  if (code < 200 || code > 299) {
    return Fail("HTTP " + std::to_string(code) + where + ": " + OneLine(r.body, 120), code == 429 || code >= 500);
  }
  Status json = CheckJson(r.body, "response");
  if (!json.ok()) return {json.WithContext("GET " + pg::Excerpt(url, 200)), false};
  return {Fetched{std::move(r.body), r.validators, false}, false};
}

// 200 ms, 400 ms, ... times a random 0.5-1.5.
std::chrono::milliseconds Backoff(int attempt) {
  thread_local std::mt19937 rng{std::random_device{}()};
  std::uniform_real_distribution<double> jitter(0.5, 1.5);
  return std::chrono::milliseconds(static_cast<long>(200.0 * (1 << std::min(attempt, 6)) * jitter(rng)));
}

}  // namespace

std::string PercentEncode(const std::string& text) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

StatusOr<Fetched> FetchImport(const PrimerSpec& spec, const NamedValues& values,
                              const Validators& previous) {
  for (int attempt = 0;; ++attempt) {
    Attempt a = spec.engine == "http" ? HttpOnce(spec, values, previous) : RunCommandOnce(spec, values);
    if (a.result.ok() || !a.retryable || attempt >= spec.import.retries) {
      if (!a.result.ok() && attempt > 0) return a.result.status().WithContext(std::to_string(attempt + 1) + " attempts");
      return a.result;
    }
    std::this_thread::sleep_for(Backoff(attempt));
  }
}

}  // namespace kck
