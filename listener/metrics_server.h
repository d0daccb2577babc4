// MetricsServer: the HTTP endpoint of `kck listen --metrics HOST:PORT`, on
// the daemon's libuv loop. GET /metrics answers with the Prometheus text of
// listener/metrics.h; any other path is 404, any other method 405. One
// request per connection (Connection: close); a client that sends no
// complete request head within 5 s, or one over 8 KiB, is dropped. Meant
// for a loopback or private address: it has no authentication.
#pragma once

#include <uv.h>

#include <functional>
#include <set>
#include <string>

#include "common/status.h"

namespace kck {

// "127.0.0.1:9187" or "[::1]:9187" as a socket address; port 0 picks one.
StatusOr<sockaddr_storage> ParseListenAddress(const std::string& address);

class MetricsServer {
 public:
  // `render` gives the body of GET /metrics when a scrape arrives.
  MetricsServer(uv_loop_t* loop, std::function<std::string()> render);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Binds and listens; fails naming the address and the reason.
  Status Listen(const std::string& address);
  // The address it listens on ("127.0.0.1:40123"), once listening.
  const std::string& bound() const { return bound_; }
  // Stops listening and drops the clients; the loop finishes the closes.
  void Close();

 private:
  struct Client;
  static void OnConnection(uv_stream_t* server, int status);
  void Respond(Client* client);
  void Drop(Client* client);

  uv_loop_t* loop_;
  std::function<std::string()> render_;
  uv_tcp_t* tcp_ = nullptr;  // freed by its close callback
  std::set<Client*> clients_;
  std::string bound_;
};

}  // namespace kck
