// Tests of systemd/kck.service: the keys the daemon's contract relies on
// (Type=notify, the watchdog, the hardening), and `systemd-analyze verify`
// finding nothing to complain about.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

extern char** environ;

namespace kck {
namespace {

namespace fs = std::filesystem;

const fs::path kUnitPath = fs::path(KCK_SOURCE_DIR) / "systemd" / "kck.service";
const fs::path kEnvExamplePath = fs::path(KCK_SOURCE_DIR) / "systemd" / "kck.env.example";
const fs::path kDjangoUnitPath = fs::path(KCK_SOURCE_DIR) / "systemd" / "kck-django@.service";
const fs::path kDjangoEnvExamplePath = fs::path(KCK_SOURCE_DIR) / "systemd" / "kck-django.env.example";
constexpr char kInstalledBinary[] = "/usr/local/bin/kck";

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read \"" + path.string() + "\"");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteFile(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out.flush()) throw std::runtime_error("cannot write \"" + path.string() + "\"");
}

std::string Trim(const std::string& s) {
  size_t begin = s.find_first_not_of(" \t\r");
  if (begin == std::string::npos) return "";
  size_t end = s.find_last_not_of(" \t\r");
  return s.substr(begin, end - begin + 1);
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// A unit file as systemd reads it: section name -> assignments in file order
// (a key may repeat). Comments and blank lines are dropped, continuation
// lines (trailing backslash) are joined with a space.
using UnitFile = std::map<std::string, std::vector<std::pair<std::string, std::string>>>;

UnitFile ParseUnit(const std::string& text) {
  UnitFile unit;
  std::string section;
  std::string pending;
  for (const std::string& raw : Lines(text)) {
    std::string line = Trim(raw);
    if (pending.empty() && (line.empty() || line[0] == '#' || line[0] == ';')) continue;
    if (!line.empty() && line.back() == '\\') {
      line.pop_back();
      pending += line + " ";
      continue;
    }
    line = pending + line;
    pending.clear();
    if (line.front() == '[' && line.back() == ']') {
      section = line.substr(1, line.size() - 2);
      unit[section];
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string::npos) throw std::runtime_error("unit line without '=': " + line);
    unit[section].emplace_back(Trim(line.substr(0, eq)), Trim(line.substr(eq + 1)));
  }
  return unit;
}

// Every value assigned to key in section, in file order.
std::vector<std::string> Values(const UnitFile& unit, const std::string& section,
                                const std::string& key) {
  std::vector<std::string> values;
  auto it = unit.find(section);
  if (it == unit.end()) return values;
  for (const auto& [k, v] : it->second) {
    if (k == key) values.push_back(v);
  }
  return values;
}

TEST(SystemdUnitTest, DeclaresNotifyWatchdogAndHardening) {
  const UnitFile unit = ParseUnit(ReadFile(kUnitPath));
  ASSERT_TRUE(unit.contains("Unit"));
  ASSERT_TRUE(unit.contains("Service"));
  ASSERT_TRUE(unit.contains("Install"));

  const std::vector<std::pair<std::string, std::string>> expected = {
      {"Type", "notify"},
      {"ExecStart", "/usr/local/bin/kck listen $KCK_LISTEN_ARGS"},
      {"ExecReload", "/bin/kill -HUP $MAINPID"},
      {"EnvironmentFile", "/etc/kck/kck.env"},
      {"Restart", "on-failure"},
      {"RestartSec", "2"},
      {"WatchdogSec", "30"},
      {"TimeoutStopSec", "30"},
      {"KillSignal", "SIGTERM"},
      {"User", "kck"},
      {"Group", "kck"},
      {"DynamicUser", "yes"},
      {"UMask", "0077"},
      {"NoNewPrivileges", "yes"},
      {"ProtectSystem", "strict"},
      {"ProtectHome", "yes"},
      {"PrivateTmp", "yes"},
      {"PrivateDevices", "yes"},
      {"ProtectKernelTunables", "yes"},
      {"ProtectKernelModules", "yes"},
      {"ProtectKernelLogs", "yes"},
      {"ProtectControlGroups", "yes"},
      {"ProtectClock", "yes"},
      {"ProtectHostname", "yes"},
      {"RestrictNamespaces", "yes"},
      {"RestrictRealtime", "yes"},
      {"RestrictSUIDSGID", "yes"},
      {"LockPersonality", "yes"},
      {"MemoryDenyWriteExecute", "yes"},
      {"SystemCallArchitectures", "native"},
      {"SystemCallFilter", "@system-service"},
      // Empty: the service keeps no capability at all.
      {"CapabilityBoundingSet", ""},
      {"RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"},
  };
  for (const auto& [key, value] : expected) {
    // Exactly once: a second assignment would add to or reset the first.
    EXPECT_EQ(Values(unit, "Service", key), std::vector<std::string>{value})
        << "[Service] " << key << "=" << value;
  }
}

// kck-django@USER.service runs `manage.py kck_listen` as USER, which execs
// the daemon: the same notify, watchdog and hardening as kck.service.
TEST(SystemdUnitTest, DjangoUnitRunsKckListenWithTheSameHardening) {
  const UnitFile django = ParseUnit(ReadFile(kDjangoUnitPath));
  const UnitFile plain = ParseUnit(ReadFile(kUnitPath));
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"Type", "notify"},
      {"NotifyAccess", "main"},
      {"EnvironmentFile", "/etc/kck/django-%i.env"},
      {"ExecStart", "/usr/bin/env ${KCK_PYTHON} ${KCK_DJANGO_PROJECT}/manage.py kck_listen $KCK_LISTEN_ARGS"},
      {"User", "%i"},
  };
  for (const auto& [key, value] : expected) {
    EXPECT_EQ(Values(django, "Service", key), std::vector<std::string>{value}) << "[Service] " << key;
  }
  // Everything else of kck.service but its user: the application's user
  // replaces the dynamic one.
  for (const auto& [key, value] : plain.at("Service")) {
    if (key == "Type" || key == "EnvironmentFile" || key == "ExecStart" || key == "User" || key == "Group" ||
        key == "DynamicUser") {
      continue;
    }
    EXPECT_EQ(Values(django, "Service", key), std::vector<std::string>{value}) << "[Service] " << key;
  }
  EXPECT_TRUE(Values(django, "Service", "DynamicUser").empty());
  EXPECT_EQ(Values(django, "Install", "WantedBy"), std::vector<std::string>{"multi-user.target"});
}

TEST(SystemdUnitTest, DjangoEnvExampleSetsPythonProjectAndSettings) {
  const std::string text = ReadFile(kDjangoEnvExamplePath);
  for (const std::string key : {"KCK_PYTHON=", "KCK_DJANGO_PROJECT=", "DJANGO_SETTINGS_MODULE="}) {
    bool set = false;
    for (const std::string& line : Lines(text)) set |= line.starts_with(key) && line.size() > key.size();
    EXPECT_TRUE(set) << kDjangoEnvExamplePath << " has no uncommented " << key << "...";
  }
}

TEST(SystemdUnitTest, EnvExampleSetsTheDatabaseUrl) {
  const std::string text = ReadFile(kEnvExamplePath);
  bool sets_url = false;
  bool mentions_args = false;
  for (const std::string& line : Lines(text)) {
    if (line.starts_with("KCK_DATABASE_URL=") && line.size() > std::strlen("KCK_DATABASE_URL=")) {
      sets_url = true;
    }
    if (line.find("KCK_LISTEN_ARGS=") != std::string::npos) mentions_args = true;
  }
  EXPECT_TRUE(sets_url) << kEnvExamplePath << " has no uncommented KCK_DATABASE_URL=...";
  EXPECT_TRUE(mentions_args) << kEnvExamplePath << " does not show KCK_LISTEN_ARGS";
}

std::optional<fs::path> FindOnPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (dir.empty()) continue;
    fs::path candidate = fs::path(dir) / program;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

struct CommandResult {
  int exit_code = -1;  // -1: killed by a signal
  std::string output;  // stdout and stderr, interleaved
};

// Runs argv[0] with stdout and stderr captured in output_file. No shell: the
// arguments are passed as they are. SYSTEMD_* variables of the caller are
// dropped so that a SYSTEMD_LOG_LEVEL=debug in the environment adds no noise.
CommandResult RunCommand(const std::vector<std::string>& argv, const fs::path& output_file) {
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);

  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "SYSTEMD_", 8) != 0) env_storage.emplace_back(*e);
  }
  env_storage.emplace_back("SYSTEMD_LOG_COLOR=0");
  std::vector<char*> env;
  for (std::string& e : env_storage) env.push_back(e.data());
  env.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, output_file.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = 0;
  int spawn_error = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  if (spawn_error != 0) {
    throw std::runtime_error("cannot start \"" + argv[0] + "\": " + std::strerror(spawn_error));
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error(std::string("waitpid: ") + std::strerror(errno));
  }
  CommandResult result;
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  result.output = ReadFile(output_file);
  return result;
}

// Quotes a path for the command position of ExecStart=.
std::string QuoteForExec(const std::string& path) {
  std::string quoted = "\"";
  for (char c : path) {
    if (c == '"' || c == '\\') quoted += '\\';
    if (c == '%') quoted += '%';  // systemd specifier escape
    quoted += c;
  }
  return quoted + "\"";
}

// The shipped unit with ExecStart pointing at the kck binary of this build:
// verify checks that the command exists, and /usr/local/bin/kck need not.
// EnvironmentFile= stays as shipped: verify does not read it, so a machine
// without /etc/kck/kck.env is fine.
std::string UnitForVerification() {
  const std::string prefix = std::string("ExecStart=") + kInstalledBinary;
  std::string out;
  int replaced = 0;
  for (const std::string& line : Lines(ReadFile(kUnitPath))) {
    if (line.starts_with(prefix + " ")) {
      out += "ExecStart=" + QuoteForExec(KCK_BINARY) + line.substr(prefix.size()) + "\n";
      ++replaced;
    } else {
      out += line + "\n";
    }
  }
  if (replaced != 1) {
    throw std::runtime_error("expected one \"" + prefix + " ...\" line in the unit, found " +
                             std::to_string(replaced));
  }
  return out;
}

// Inserts a line right after "[Service]".
std::string WithServiceLine(const std::string& unit_text, const std::string& line) {
  const std::string header = "\n[Service]\n";
  size_t at = unit_text.find(header);
  if (at == std::string::npos) throw std::runtime_error("unit has no [Service] section");
  std::string out = unit_text;
  out.insert(at + header.size(), line + "\n");
  return out;
}

std::string Replaced(std::string text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  if (at == std::string::npos) throw std::runtime_error("\"" + from + "\" not in the unit");
  return text.replace(at, from.size(), to);
}

// Each test gets a directory of its own; the unit under test is always
// written as kck.service there, since verify wants a real unit name.
class SystemdAnalyzeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::optional<fs::path> analyze = FindOnPath("systemd-analyze");
    if (!analyze) GTEST_SKIP() << "systemd-analyze is not installed (Debian package systemd)";
    analyze_ = *analyze;

    std::string templ = (fs::temp_directory_path() / "kck-systemd-XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr) << "mkdtemp: " << std::strerror(errno);
    // Canonical, as systemd-analyze prints the path of the unit it read.
    dir_ = fs::canonical(templ);

    // Older versions lack --recursive-errors; with it, dependencies of the
    // unit (postgresql.service may not be installed) cannot fail the run.
    CommandResult help = RunCommand({analyze_.string(), "--help"}, dir_ / "help.out");
    if (help.output.find("--recursive-errors") != std::string::npos) {
      options_.push_back("--recursive-errors=no");
    }

    // A unit with nothing to complain about tells whether verify works on
    // this machine at all (it needs no running systemd, but a sandbox may
    // still get in its way). What it says then is environmental, not ours.
    CommandResult canary = Verify("[Unit]\nDescription=canary\n\n[Service]\nExecStart=" +
                                  QuoteForExec(KCK_BINARY) + "\n");
    if (canary.exit_code != 0 || !canary.output.empty()) {
      GTEST_SKIP() << "systemd-analyze verify does not work here (exit " << canary.exit_code
                   << " on a trivial unit): " << canary.output;
    }
  }

  void TearDown() override {
    if (dir_.empty()) return;
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  CommandResult Verify(const std::string& unit_text, const std::string& name = "kck.service") {
    const fs::path unit = dir_ / name;
    WriteFile(unit, unit_text);
    std::vector<std::string> argv = {analyze_.string(), "verify", "--man=no"};
    argv.insert(argv.end(), options_.begin(), options_.end());
    argv.push_back(unit.string());
    return RunCommand(argv, dir_ / "verify.out");
  }

  fs::path analyze_;
  fs::path dir_;
  std::vector<std::string> options_;
};

TEST_F(SystemdAnalyzeTest, VerifiesShippedUnitWithoutComplaint) {
  CommandResult result = Verify(UnitForVerification());
  EXPECT_EQ(result.exit_code, 0) << result.output;
  // Verify reports unknown keys and bad values and still exits 0 without
  // --recursive-errors: any output at all is a complaint about the unit.
  EXPECT_EQ(result.output, "");
}

// Proves the test above can fail: each broken copy draws a complaint that
// names the unit file.
TEST_F(SystemdAnalyzeTest, ComplainsAboutBrokenCopies) {
  const std::string good = UnitForVerification();
  const fs::path unit = dir_ / "kck.service";
  const std::vector<std::pair<std::string, std::string>> broken = {
      // {unit text, what the complaint must mention}
      {WithServiceLine(good, "KckNoSuchKey=yes"), "KckNoSuchKey"},
      {Replaced(good, "\nType=notify\n", "\nType=notiffy\n"), "notiffy"},
      {Replaced(good, "\nRestrictAddressFamilies=AF_UNIX",
                "\nRestrictAddressFamilies=AF_NOSUCHFAMILY AF_UNIX"),
       "AF_NOSUCHFAMILY"},
  };
  for (const auto& [text, culprit] : broken) {
    CommandResult result = Verify(text);
    EXPECT_NE(result.output.find(unit.string()), std::string::npos)
        << "no complaint naming " << unit << " for " << culprit << "; output: " << result.output;
    EXPECT_NE(result.output.find(culprit), std::string::npos)
        << "no complaint about " << culprit << "; output: " << result.output;
  }

  // A command that does not exist is an error, not just a warning.
  CommandResult missing =
      Verify(Replaced(good, QuoteForExec(KCK_BINARY), "/nonexistent/kck-not-here"));
  EXPECT_NE(missing.exit_code, 0) << missing.output;
  EXPECT_NE(missing.output.find("/nonexistent/kck-not-here"), std::string::npos) << missing.output;
}

// An instance of the template, as systemctl enable kck-django@app makes it.
TEST_F(SystemdAnalyzeTest, VerifiesDjangoUnitWithoutComplaint) {
  const std::string text = ReadFile(kDjangoUnitPath);
  CommandResult result = Verify(text, "kck-django@app.service");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(result.output, "");
  CommandResult broken = Verify(Replaced(text, "\nType=notify\n", "\nType=notiffy\n"), "kck-django@app.service");
  EXPECT_NE(broken.output.find("notiffy"), std::string::npos) << broken.output;
}

}  // namespace
}  // namespace kck
