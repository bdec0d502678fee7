#pragma once
// Many WebSocket clients on one Reactor. Per client: connect, HTTP upgrade (the 101 and its
// Sec-WebSocket-Accept are checked), then frames parsed in place from one shared 64 KiB read
// buffer. Only a frame cut by a read boundary is copied into the client's own buffer, so an
// idle client holds no buffers. Pings are answered with masked pongs; a close frame is echoed
// and the socket closed. What a message means is left to the WsHandler.

#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/deflate_codec.hpp"

#include "reactor.hpp"

struct ssl_st;

namespace loadgen {

enum class Protocol {
  realtime,  // Boundary Realtime: the first frame after the 101 must be {"type":"connected",...}
  plain,     // any RFC 6455 server: open as soon as the 101 arrives
  socketio,  // Socket.IO v4 (Engine.IO v4, websocket transport only): open on the `40` connect
             // reply; pings answered; `42["message",X]` events deliver X (see deliver_socketio)
  pusher,    // the Pusher protocol 7 (/app/<key>): open on pusher:connection_established; every
             // later frame goes to the handler as it is (its data is a JSON string)
};

struct WsClient {
  enum class State : std::uint8_t { idle, connecting, handshaking, awaiting_connected, open, closed };
  int fd = -1;
  ssl_st* ssl = nullptr;    // --tls: the client's TLS state, null when plain
  State state = State::idle;
  bool tls_ready = false;   // --tls: handshake done
  bool want_write = false;  // EPOLLOUT registered
  bool fragmented = false;  // a text/binary message continues in `assembly`
  bool deflate = false;     // permessage-deflate negotiated (--compression)
  bool native = false;      // speaks the realtime protocol whatever the pool's (a Pusher run's publisher)
  std::uint16_t close_code = 0;  // from the server's close frame, 0 when none came
  std::uint32_t index = 0;
  Nanos started = 0;             // connect() time
  std::string in;                // handshake bytes, or a frame cut by a read boundary
  std::string out;               // bytes the socket did not take yet
  std::string assembly;          // fragments of a message
  // Delivery bookkeeping, owned by the scenario.
  bool acked = false;  // subscribe confirmed
  std::int64_t last_seq = -1;
  std::uint64_t received = 0;
  std::vector<std::uint64_t> seen;  // bitset of delivered message indexes
};

class WsHandler {
 public:
  virtual ~WsHandler() = default;
  virtual void on_open(WsClient& c, Nanos now) = 0;
  // A whole text (or binary) message. `now` is read once per read() call: every message in one
  // read arrived together as far as this process can tell, and a clock read per message would
  // only add cost.
  virtual void on_message(WsClient& c, std::string_view payload, Nanos now) = 0;
  // The client failed before it opened (connect, upgrade, handshake) or closed after.
  virtual void on_failed(WsClient& c, const std::string& why) = 0;
  virtual void on_closed(WsClient& c, const std::string& why) = 0;
};

struct WsTarget {
  // Client i connects to addresses[i % size] (several nodes of one cluster), with the matching
  // Host header ("host:port").
  std::vector<sockaddr_in> addresses;
  std::vector<std::string> host_headers;
  Protocol protocol = Protocol::realtime;
  std::uint32_t source_ips = 0;  // rotate over 127.0.0.1..N (0: let the kernel choose)
  bool tls = false;              // wss://: a TLS handshake before the upgrade
  bool compression = false;      // offer permessage-deflate and require it in the answer
};

class WsPool {
 public:
  WsPool(Reactor& reactor, WsTarget target, WsHandler& handler, std::size_t count);
  ~WsPool();

  std::size_t size() const noexcept { return clients_.size(); }
  WsClient& client(std::size_t i) noexcept { return clients_[i]; }

  // Starts connecting client i; the upgrade request asks for `request_target` (e.g. /ws?token=..).
  // Failures are reported through WsHandler::on_failed, possibly before this returns.
  void start(std::size_t i, std::string request_target, Nanos now);

  void send_text(WsClient& c, std::string_view payload);
  void close(WsClient& c);  // silently: no handler call
  void on_event(std::uint32_t index, std::uint32_t events);

  std::uint64_t bytes_received() const noexcept { return bytes_received_; }

 private:
  void finish_connect(WsClient& c);
  void continue_tls_handshake(WsClient& c);
  void on_readable(WsClient& c);
  void read_once(WsClient& c);
  // Plain write or SSL_write: bytes taken, or -errno (-EPIPE for a TLS failure).
  long write_bytes(WsClient& c, std::string_view bytes);
  void on_handshake_bytes(WsClient& c, Nanos now);
  std::size_t process(WsClient& c, std::string_view bytes, Nanos now);
  bool handle_frame(WsClient& c, bool fin, std::uint8_t opcode, std::string_view payload, Nanos now);
  void deliver(WsClient& c, std::string_view message, Nanos now);
  void deliver_socketio(WsClient& c, std::string_view packet, Nanos now);
  void send_raw(WsClient& c, std::string_view bytes);
  void flush(WsClient& c);
  void set_write_interest(WsClient& c, bool on);
  void fail(WsClient& c, const std::string& why);
  std::array<std::uint8_t, 4> next_mask() noexcept;
  std::string key_for(std::uint32_t index) const;

  Reactor& reactor_;
  WsTarget target_;
  WsHandler& handler_;
  std::vector<WsClient> clients_;
  std::uint64_t rng_;
  std::uint64_t nonce_;
  std::uint64_t bytes_received_ = 0;
  std::array<char, 64 * 1024> buffer_{};
  // --compression: the server sends one message's compressed frame to every client, so the pool
  // inflates each distinct payload once: its clients stand for as many machines, and inflating
  // 10,000 copies would make the generator the bottleneck. Clients read their bursts one after
  // another, so the messages in flight (--window) are kept, not only the last one; the map is
  // cleared when it reaches max_inflated entries.
  boundary::realtime::core::Inflater inflater_;
  std::unordered_map<std::string, std::string> inflated_;
};

}  // namespace loadgen
