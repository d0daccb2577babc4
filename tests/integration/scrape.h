// Scraping `kck listen --metrics` from a test: a free port, a plain HTTP
// request over a socket, and the value of one sample.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sstream>
#include <string>

namespace kck::testing {

// A listening socket on 127.0.0.1 with a port the kernel picked.
struct LocalSocket {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int port = 0;
  LocalSocket() {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    listen(fd, 1);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~LocalSocket() { close(fd); }
};

inline int FreePort() { return LocalSocket().port; }

// The whole response to `request_line` ("GET /metrics HTTP/1.1"), or "".
inline std::string Http(int port, const std::string& request_line) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    std::string req = request_line + "\r\nHost: 127.0.0.1\r\n\r\n";
    (void)!write(fd, req.data(), req.size());
    char buf[4096];
    for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

// The body of GET /metrics on 127.0.0.1:`port`, or "".
inline std::string ScrapeMetrics(int port) {
  std::string r = Http(port, "GET /metrics HTTP/1.1");
  size_t body = r.find("\r\n\r\n");
  return body == std::string::npos ? "" : r.substr(body + 4);
}

// The value of the sample `series` ("kck_up", "kck_products_total{outcome=\"augmented\"}"); -1 if absent.
inline double Value(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

}  // namespace kck::testing
