#include "listener/metrics_server.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <cstring>

namespace kck {
namespace {

constexpr size_t kMaxRequest = 8192;
constexpr uint64_t kClientTimeoutMs = 5000;

std::string HttpResponse(int code, const char* reason, const char* content_type, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\nContent-Type: " + content_type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

bool HeadComplete(const std::string& request) {
  return request.find("\r\n\r\n") != std::string::npos || request.find("\n\n") != std::string::npos;
}

std::string AddressText(const sockaddr_storage& addr) {
  char host[64] = {0};
  int port = 0;
  if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    uv_ip6_name(a, host, sizeof host);
    return fmt::format("[{}]:{}", host, ntohs(a->sin6_port));
  }
  const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
  uv_ip4_name(a, host, sizeof host);
  port = ntohs(a->sin_port);
  return fmt::format("{}:{}", host, port);
}

}  // namespace

StatusOr<sockaddr_storage> ParseListenAddress(const std::string& address) {
  const auto bad = [&](const std::string& why) {
    return Status::Invalid("--metrics \"" + address + "\": " + why);
  };
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return bad("expected HOST:PORT, e.g. 127.0.0.1:9187");
  std::string host = address.substr(0, colon);
  const std::string port_text = address.substr(colon + 1);
  int port = -1;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port < 0 || port > 65535) {
    return bad("port \"" + port_text + "\" is not a number from 0 to 65535");
  }
  sockaddr_storage addr{};
  const bool v6 = host.size() >= 2 && host.front() == '[' && host.back() == ']';
  int rc = v6 ? uv_ip6_addr(host.substr(1, host.size() - 2).c_str(), port, reinterpret_cast<sockaddr_in6*>(&addr))
              : uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(&addr));
  if (rc != 0) return bad("host \"" + host + "\" is not an IPv4 address or a bracketed IPv6 address");
  return addr;
}

struct MetricsServer::Client {
  MetricsServer* server = nullptr;  // null once dropped: callbacks of cancelled requests then do nothing
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_write_t write;
  uv_shutdown_t shutdown;
  bool answered = false;  // later input is read and dropped until the peer closes
  std::string request, response;
  char buf[4096];
  int open_handles = 0;  // closed handles delete the client when this reaches 0

  // The exchange is over (answered, timed out, or the peer went away).
  static void Done(Client* c) {
    if (c->server) c->server->Drop(c);
  }
  static void OnClose(uv_handle_t* h) {
    auto* c = static_cast<Client*>(h->data);
    if (--c->open_handles == 0) delete c;
  }
};

MetricsServer::MetricsServer(uv_loop_t* loop, std::function<std::string()> render)
    : loop_(loop), render_(std::move(render)) {}

MetricsServer::~MetricsServer() { Close(); }

Status MetricsServer::Listen(const std::string& address) {
  auto addr = ParseListenAddress(address);
  if (!addr.ok()) return addr.status();
  tcp_ = new uv_tcp_t;
  uv_tcp_init(loop_, tcp_);
  tcp_->data = this;
  int rc = uv_tcp_bind(tcp_, reinterpret_cast<const sockaddr*>(&*addr), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(tcp_), 64, OnConnection);
  if (rc != 0) {
    Close();
    return Status::Invalid("--metrics \"" + address + "\": cannot listen: " + uv_strerror(rc));
  }
  sockaddr_storage bound{};
  int len = sizeof bound;
  uv_tcp_getsockname(tcp_, reinterpret_cast<sockaddr*>(&bound), &len);
  bound_ = AddressText(bound);
  return Status::Ok();
}

void MetricsServer::Close() {
  while (!clients_.empty()) Drop(*clients_.begin());
  if (tcp_ == nullptr) return;
  uv_close(reinterpret_cast<uv_handle_t*>(tcp_), [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
  tcp_ = nullptr;
}

void MetricsServer::OnConnection(uv_stream_t* server, int status) {
  auto* self = static_cast<MetricsServer*>(server->data);
  if (status < 0) return;
  auto* c = new Client;
  c->server = self;
  uv_tcp_init(self->loop_, &c->tcp);
  uv_timer_init(self->loop_, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->open_handles = 2;
  self->clients_.insert(c);
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
    self->Drop(c);
    return;
  }
  uv_timer_start(&c->timer, [](uv_timer_t* t) { Client::Done(static_cast<Client*>(t->data)); }, kClientTimeoutMs, 0);
  auto on_alloc = [](uv_handle_t* h, size_t, uv_buf_t* buf) {
    auto* c = static_cast<Client*>(h->data);
    *buf = uv_buf_init(c->buf, sizeof c->buf);
  };
  auto on_read = [](uv_stream_t* s, ssize_t n, const uv_buf_t*) {
    auto* c = static_cast<Client*>(s->data);
    if (n < 0) return Client::Done(c);
    if (c->answered) return;
    c->request.append(c->buf, static_cast<size_t>(n));
    if (HeadComplete(c->request) || c->request.size() > kMaxRequest) c->server->Respond(c);
  };
  uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp), on_alloc, on_read);
}

// Closing a socket with unread input resets the connection, which can
// destroy the answer before the client reads it: the answer is followed by
// a shutdown, and the client's input is drained until it closes (or the
// timer runs out).
void MetricsServer::Respond(Client* c) {
  c->answered = true;
  const std::string line = c->request.substr(0, c->request.find_first_of("\r\n"));
  const size_t sp1 = line.find(' '), sp2 = line.find(' ', sp1 + 1);
  const std::string method = line.substr(0, sp1);
  std::string path = sp1 == std::string::npos ? "" : line.substr(sp1 + 1, sp2 - sp1 - 1);
  path = path.substr(0, path.find('?'));
  if (c->request.size() > kMaxRequest) {
    c->response = HttpResponse(431, "Request Header Fields Too Large", "text/plain", "request too large\n");
  } else if (method != "GET" && method != "HEAD") {
    c->response = HttpResponse(405, "Method Not Allowed", "text/plain", "only GET\n");
  } else if (path != "/metrics") {
    c->response = HttpResponse(404, "Not Found", "text/plain", "kck serves /metrics\n");
  } else {
    c->response = HttpResponse(200, "OK", "text/plain; version=0.0.4; charset=utf-8", render_());
    if (method == "HEAD") c->response.resize(c->response.find("\r\n\r\n") + 4);
  }
  uv_buf_t buf = uv_buf_init(c->response.data(), static_cast<unsigned>(c->response.size()));
  c->write.data = c;
  auto* stream = reinterpret_cast<uv_stream_t*>(&c->tcp);
  int rc = uv_write(&c->write, stream, &buf, 1, [](uv_write_t* w, int status) {
    auto* c = static_cast<Client*>(w->data);
    if (status < 0) return Client::Done(c);
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, w->handle, [](uv_shutdown_t*, int) {}) != 0) Client::Done(c);
  });
  if (rc != 0) Drop(c);
}

void MetricsServer::Drop(Client* c) {
  if (!clients_.erase(c)) return;  // dropped already: its closes are under way
  c->server = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), Client::OnClose);
  uv_close(reinterpret_cast<uv_handle_t*>(&c->timer), Client::OnClose);
}

}  // namespace kck
