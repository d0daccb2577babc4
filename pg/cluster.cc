#include "pg/cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "common/quote.h"
#include "pg/connection.h"

namespace kck::pg {
namespace {

constexpr const char* kFallbackBindir = "/usr/lib/postgresql/15/bin";
constexpr const char* kServerUser = "postgres";
// Lines of output quoted in an error message.
constexpr int kTailLines = 3;

// Owns one file descriptor.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

std::string Errno() { return std::strerror(errno); }

// Which user a child process runs as.
struct Identity {
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

// Runs argv[0] (a full path) with stdin on /dev/null and stdout and stderr on
// out_fd, in directory cwd, as `who`. Returns the exit code, or 128 + signal.
StatusOr<int> RunProcess(const std::vector<std::string>& argv, int out_fd, const std::string& cwd,
                         const Identity& who) {
  // Everything the child needs is prepared here: between fork and exec only
  // async-signal-safe calls are allowed.
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  const std::string chdir_failed = "kck: could not change directory to " + QuoteForError(cwd) + "\n";
  const std::string switch_failed = "kck: could not switch to user " + std::string(kServerUser) + "\n";
  const std::string exec_failed = "kck: could not execute " + QuoteForError(argv[0]) + "\n";
  auto fail = [](const std::string& msg) {
    ssize_t ignored = write(STDERR_FILENO, msg.data(), msg.size());
    (void)ignored;
    _exit(127);
  };

  Fd devnull(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (devnull.get() < 0) return Status::Runtime("could not open \"/dev/null\": " + Errno());
  pid_t pid = fork();
  if (pid < 0) return Status::Runtime("could not fork for " + QuoteForError(argv[0]) + ": " + Errno());
  if (pid == 0) {
    if (dup2(devnull.get(), STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 ||
        dup2(out_fd, STDERR_FILENO) < 0) {
      _exit(127);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (chdir(cwd.c_str()) != 0) fail(chdir_failed);
    if (who.switch_user) {
      gid_t gid = who.gid;
      if (setgroups(1, &gid) != 0 || setgid(who.gid) != 0 || setuid(who.uid) != 0) fail(switch_failed);
    }
    // The server outlives this call: it must not hold our sockets or pipes.
    if (close_range(3, ~0U, 0) != 0) {
      for (int fd = 3; fd < 4096; ++fd) close(fd);
    }
    execv(cargv[0], cargv.data());
    fail(exec_failed);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return Status::Runtime("could not wait for " + QuoteForError(argv[0]) + ": " + Errno());
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

bool IsExecutable(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

// The directory `pg_config --bindir` names, or empty.
std::string PgConfigBindir() {
  std::string pg_config;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (!dir.empty() && IsExecutable(dir + "/pg_config")) {
      pg_config = dir + "/pg_config";
      break;
    }
  }
  if (pg_config.empty()) return "";
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return "";
  Fd read_end(fds[0]);
  Fd write_end(fds[1]);
  // One short line: it fits in the pipe, so waiting before reading is safe.
  StatusOr<int> code = RunProcess({pg_config, "--bindir"}, write_end.get(), "/", Identity{});
  write_end.Reset();
  if (!code.ok() || *code != 0) return "";
  std::string out;
  char buf[512];
  for (ssize_t n; (n = read(read_end.get(), buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  return Trim(out);
}

StatusOr<std::string> FindBindir(const std::string& requested) {
  std::vector<std::string> candidates;
  if (!requested.empty()) {
    candidates.push_back(requested);
  } else {
    if (std::string dir = PgConfigBindir(); !dir.empty()) candidates.push_back(dir);
    candidates.push_back(kFallbackBindir);
  }
  for (const auto& dir : candidates) {
    if (IsExecutable(dir + "/initdb") && IsExecutable(dir + "/pg_ctl")) return dir;
  }
  return Status::Invalid("PostgreSQL binaries not found: no initdb and pg_ctl in " + QuoteForError(candidates.front()) +
                         (candidates.size() > 1 ? " or " + QuoteForError(candidates.back()) : ""));
}

// A port number no TCP listener uses right now. The server listens on a unix
// socket in its own directory only, so the number just names the socket file;
// a distinct one keeps logs and conninfo strings of parallel clusters apart.
int ChoosePort() {
  Fd sock(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (sock.get() >= 0) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        getsockname(sock.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      return ntohs(addr.sin_port);
    }
  }
  return 20000 + static_cast<int>(getpid() % 20000);
}

// A postgresql.conf string literal.
std::string ConfQuote(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out.push_back(c);
    out.push_back(c);
  }
  return out + "'";
}

// "name=value" as a postgresql.conf line; a value already in single quotes is
// kept as written.
StatusOr<std::string> ConfLine(const std::string& setting) {
  size_t eq = setting.find('=');
  std::string name = Trim(setting.substr(0, eq == std::string::npos ? 0 : eq));
  bool valid_name = !name.empty();
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.') valid_name = false;
  }
  if (eq == std::string::npos || !valid_name) {
    return Status::Invalid("server setting " + QuoteForError(setting) + " is not name=value");
  }
  std::string value = Trim(setting.substr(eq + 1));
  bool quoted = value.size() >= 2 && value.front() == '\'' && value.back() == '\'';
  return name + " = " + (quoted ? value : ConfQuote(value));
}

// A libpq conninfo value, quoted only when it has to be.
std::string ConnQuote(const std::string& value) {
  bool plain = !value.empty() && value.find_first_of(" \t\n'\\") == std::string::npos;
  if (plain) return value;
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "'";
}

off_t FileSize(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_size : 0;
}

std::string ReadFrom(const std::string& path, off_t offset) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(offset);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The last non-empty lines of `text` on one line, joined by " | ", without
// the server's default log_line_prefix ("%m [%p] ").
std::string Tail(const std::string& text) {
  static const std::regex prefix(R"(^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? \S+ \[\d+\] )");
  std::vector<std::string> lines;
  std::stringstream ss(text);
  for (std::string line; std::getline(ss, line);) {
    line = Trim(std::regex_replace(line, prefix, ""));
    if (!line.empty()) lines.push_back(line);
  }
  std::string out;
  size_t first = lines.size() > kTailLines ? lines.size() - kTailLines : 0;
  for (size_t i = first; i < lines.size(); ++i) out += (out.empty() ? "" : " | ") + lines[i];
  return OneLine(out);
}

}  // namespace

TempCluster::TempCluster(std::string dir, std::string bindir, bool quiet)
    : dir_(std::move(dir)), bindir_(std::move(bindir)), quiet_(quiet) {}

StatusOr<std::unique_ptr<TempCluster>> TempCluster::Start(const Options& options) {
  auto started = std::chrono::steady_clock::now();
  StatusOr<std::string> bindir = FindBindir(options.bindir);
  if (!bindir.ok()) return bindir.status();
  std::vector<std::string> conf_lines;
  for (const auto& setting : options.settings) {
    StatusOr<std::string> line = ConfLine(setting);
    if (!line.ok()) return line.status();
    conf_lines.push_back(*line);
  }

  // PostgreSQL refuses to run as root: hand everything to the postgres user.
  bool switch_user = geteuid() == 0;
  uid_t uid = 0;
  gid_t gid = 0;
  if (switch_user) {
    struct passwd pw;
    struct passwd* found = nullptr;
    char buf[4096];
    if (getpwnam_r(kServerUser, &pw, buf, sizeof buf, &found) != 0 || found == nullptr) {
      return Status::Runtime("user \"postgres\" not found: PostgreSQL cannot run as root without it");
    }
    uid = pw.pw_uid;
    gid = pw.pw_gid;
  }

  const char* tmpdir = std::getenv("TMPDIR");
  std::string base = tmpdir && *tmpdir ? tmpdir : "/tmp";
  std::string templ = base + "/kck-pg-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) {
    return Status::Runtime("could not create cluster directory in " + QuoteForError(base) + ": " + Errno());
  }
  // From here on the destructor removes the directory, whatever fails.
  std::unique_ptr<TempCluster> cluster(new TempCluster(templ, *bindir, options.quiet));
  cluster->run_as_ = {switch_user, uid, gid};
  if (switch_user && chown(cluster->dir_.c_str(), uid, gid) != 0) {
    return Status::Runtime("cluster " + QuoteForError(cluster->dir_) + ": could not give directory to user \"postgres\": " +
                           Errno());
  }
  cluster->port_ = ChoosePort();

  KCK_RETURN_IF_ERROR(cluster->InitDb());
  KCK_RETURN_IF_ERROR(cluster->WriteConfig(conf_lines));
  KCK_RETURN_IF_ERROR(cluster->StartServer());
  if (!options.quiet) {
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::fprintf(stderr, "kck: cluster %s ready on port %d in %.2fs\n", cluster->dir_.c_str(), cluster->port_,
                 seconds);
  }
  return cluster;
}

TempCluster::~TempCluster() {
  try {
    const char* keep_env = std::getenv("KCK_KEEP_CLUSTER");
    bool keep = keep_env != nullptr && std::string(keep_env) == "1";
    std::error_code ec;
    // The pid file is there whenever a server may run, including after a
    // failed or timed-out start.
    if (std::filesystem::exists(data_dir() + "/postmaster.pid", ec)) {
      Status stopped = Stop(keep ? "fast" : "immediate");
      if (!stopped.ok()) std::fprintf(stderr, "kck: %s\n", stopped.message().c_str());
    }
    if (keep) {
      std::fprintf(stderr, "kck: keeping cluster directory %s\n", dir_.c_str());
    } else {
      std::filesystem::remove_all(dir_, ec);
      if (ec) std::fprintf(stderr, "kck: could not remove cluster directory %s: %s\n", dir_.c_str(),
                           ec.message().c_str());
    }
  } catch (...) {
    // A destructor must not throw; the worst case is a leftover directory.
  }
}

std::string TempCluster::ConnInfo(const std::string& dbname) const {
  return "host=" + ConnQuote(dir_) + " port=" + std::to_string(port_) + " dbname=" + ConnQuote(dbname) +
         " user=postgres";
}

Status TempCluster::CreateDatabase(const std::string& name) {
  std::string context = "create database " + QuoteForError(name);
  StatusOr<Connection> conn = Connection::Open(ConnInfo());
  if (!conn.ok()) return conn.status().WithContext(context);
  StatusOr<Result> res = conn->Exec("CREATE DATABASE " + conn->QuoteIdent(name));
  if (!res.ok()) return res.status().WithContext(context);
  return Status::Ok();
}

Status TempCluster::Stop(const std::string& mode) {
  KCK_RETURN_IF_ERROR(RunTool("stop server", "pg_ctl", {"stop", "-w", "-t", "60", "-D", data_dir(), "-m", mode},
                              /*server_log_tail=*/false));
  running_ = false;
  return Status::Ok();
}

Status TempCluster::Restart() {
  if (running_) return Status::Invalid("cluster " + QuoteForError(dir_) + ": server is already running");
  return StartServer();
}

Status TempCluster::InitDb() {
  if (!quiet_) std::fprintf(stderr, "kck: initdb %s\n", data_dir().c_str());
  return RunTool("create data directory", "initdb",
                 {"-D", data_dir(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync",
                  "--no-instructions"},
                 /*server_log_tail=*/false);
}

Status TempCluster::WriteConfig(const std::vector<std::string>& settings) {
  std::string path = data_dir() + "/postgresql.conf";
  std::ofstream conf(path, std::ios::app);
  conf << "\n# kck TempCluster: unix socket in the cluster directory only\n"
       << "listen_addresses = ''\n"
       << "port = " << port_ << "\n"
       << "unix_socket_directories = " << ConfQuote(dir_) << "\n"
       << "max_connections = 100\n"
       // Crash recovery (after Stop("immediate") or a killed server) starts by
       // syncing the data directory; initdb --no-sync leaves it all dirty, and
       // one syncfs is seconds faster than fsync of every file. Commits still
       // fsync as usual.
       << "recovery_init_sync_method = syncfs\n";
  if (!settings.empty()) conf << "# TempCluster::Options::settings\n";
  for (const auto& line : settings) conf << line << "\n";
  conf.close();
  if (!conf) return Status::Runtime("cluster " + QuoteForError(dir_) + ": could not write " + QuoteForError(path));
  return Status::Ok();
}

Status TempCluster::StartServer() {
  if (!quiet_) std::fprintf(stderr, "kck: starting postgres on %s port %d\n", dir_.c_str(), port_);
  KCK_RETURN_IF_ERROR(RunTool("start server", "pg_ctl",
                              {"start", "-w", "-t", "60", "-D", data_dir(), "-l", server_log()},
                              /*server_log_tail=*/true));
  running_ = true;
  return Status::Ok();
}

Status TempCluster::RunTool(const std::string& step, const std::string& tool, const std::vector<std::string>& args,
                            bool server_log_tail) {
  std::vector<std::string> argv{bindir_ + "/" + tool};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string context = "cluster " + QuoteForError(dir_) + ": " + step;
  off_t tool_from = FileSize(tool_log());
  off_t server_from = FileSize(server_log());
  Fd out(open(tool_log().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (out.get() < 0) return Status::Runtime(context + ": could not open " + QuoteForError(tool_log()) + ": " + Errno());
  StatusOr<int> code =
      RunProcess(argv, out.get(), dir_, Identity{run_as_.switch_user, run_as_.uid, run_as_.gid});
  if (!code.ok()) return code.status().WithContext(context);
  if (*code == 0) return Status::Ok();
  std::string tail = server_log_tail ? Tail(ReadFrom(server_log(), server_from)) : "";
  if (tail.empty()) tail = Tail(ReadFrom(tool_log(), tool_from));
  return Status::Runtime(context + ": " + tool + " exited with code " + std::to_string(*code) +
                         (tail.empty() ? "" : ": " + tail));
}

}  // namespace kck::pg
