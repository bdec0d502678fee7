#include "ws_client.hpp"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "core/frame.hpp"
#include "http_head.hpp"
#include "tls.hpp"

namespace loadgen {
namespace core = boundary::realtime::core;

namespace {

constexpr std::size_t no_frame = static_cast<std::size_t>(-1);
// A server message larger than this is treated as a protocol error rather than buffered: the
// generator never sends anything that could come back this big.
constexpr std::uint64_t max_frame_bytes = 16u << 20;
constexpr std::size_t max_handshake_bytes = 16 * 1024;
// --compression: distinct compressed payloads kept inflated (well above any --window).
constexpr std::size_t max_inflated = 4096;

// One server frame at the front of `b`: its size, 0 when incomplete, no_frame when invalid.
// Server frames are never masked (RFC 6455 5.1), so the payload is a view into `b`.
// `rsv1_ok`: permessage-deflate was negotiated; `rsv1` reports a compressed message.
std::size_t parse_frame(std::string_view b, bool& fin, std::uint8_t& opcode, std::string_view& payload,
                        bool rsv1_ok, bool& rsv1) {
  if (b.size() < 2) return 0;
  auto byte = [&](std::size_t i) { return static_cast<std::uint8_t>(b[i]); };
  fin = (byte(0) & 0x80) != 0;
  opcode = byte(0) & 0x0F;
  rsv1 = (byte(0) & 0x40) != 0;
  if ((byte(1) & 0x80) != 0 || (byte(0) & (rsv1_ok ? 0x30 : 0x70)) != 0) return no_frame;
  std::uint64_t length = byte(1) & 0x7F;
  std::size_t header = 2;
  if (length == 126) {
    if (b.size() < 4) return 0;
    length = (std::uint64_t{byte(2)} << 8) | byte(3);
    header = 4;
  } else if (length == 127) {
    if (b.size() < 10) return 0;
    length = 0;
    for (std::size_t i = 2; i < 10; ++i) length = (length << 8) | byte(i);
    header = 10;
  }
  if (length > max_frame_bytes) return no_frame;
  if (b.size() - header < length) return 0;
  payload = b.substr(header, static_cast<std::size_t>(length));
  return header + static_cast<std::size_t>(length);
}

std::string base64(const unsigned char* data, std::size_t n) {
  std::string out(4 * ((n + 2) / 3) + 1, '\0');
  const int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(n));
  out.resize(static_cast<std::size_t>(len));
  return out;
}

std::string accept_for(const std::string& key) {
  const std::string input = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return base64(digest, sizeof digest);
}

}  // namespace

WsPool::WsPool(Reactor& reactor, WsTarget target, WsHandler& handler, std::size_t count)
    : reactor_(reactor), target_(std::move(target)), handler_(handler), clients_(count) {
  std::random_device rd;
  rng_ = (std::uint64_t{rd()} << 32) | rd() | 1;
  nonce_ = (std::uint64_t{rd()} << 32) | rd();
  for (std::size_t i = 0; i < count; ++i) clients_[i].index = static_cast<std::uint32_t>(i);
}

WsPool::~WsPool() {
  for (auto& c : clients_) {
    if (c.ssl) tls_free(c.ssl);
    if (c.fd >= 0) ::close(c.fd);
  }
}

std::array<std::uint8_t, 4> WsPool::next_mask() noexcept {
  rng_ ^= rng_ << 13;  // xorshift64: masks only need to be unpredictable to proxies, not secret
  rng_ ^= rng_ >> 7;
  rng_ ^= rng_ << 17;
  return {static_cast<std::uint8_t>(rng_), static_cast<std::uint8_t>(rng_ >> 8),
          static_cast<std::uint8_t>(rng_ >> 16), static_cast<std::uint8_t>(rng_ >> 24)};
}

std::string WsPool::key_for(std::uint32_t index) const {
  unsigned char raw[16];
  std::memcpy(raw, &nonce_, 8);
  std::memcpy(raw + 8, &index, 4);
  std::memcpy(raw + 12, "lgen", 4);
  return base64(raw, sizeof raw);
}

void WsPool::start(std::size_t i, std::string request_target, Nanos now) {
  WsClient& c = clients_[i];
  c.started = now;
  // A client may start again after it closed (storm scenario): nothing of the old socket stays.
  std::string().swap(c.in);
  std::string().swap(c.assembly);
  c.fragmented = false;
  c.tls_ready = false;
  c.deflate = false;
  c.close_code = 0;
  std::uint32_t src = 0;
  if (target_.source_ips > 0) src = htonl((127u << 24) | static_cast<std::uint32_t>(1 + i % target_.source_ips));
  const std::size_t node = i % target_.addresses.size();
  const int fd = start_connect(target_.addresses[node], src);
  if (fd < 0) {
    c.state = WsClient::State::closed;
    handler_.on_failed(c, "connect: " + errno_name(-fd));
    return;
  }
  c.fd = fd;
  c.state = WsClient::State::connecting;
  c.out = "GET " + request_target + " HTTP/1.1\r\nHost: " + target_.host_headers[node] +
          "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key_for(c.index) +
          "\r\nSec-WebSocket-Version: 13\r\n" +
          (target_.compression ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" : "") +
          "\r\n";
  c.want_write = true;
  reactor_.add(fd, EPOLLIN | EPOLLOUT, c.index);
}

void WsPool::on_event(std::uint32_t index, std::uint32_t events) {
  WsClient& c = clients_[index];
  if (c.state == WsClient::State::closed || c.state == WsClient::State::idle) return;
  if (c.state == WsClient::State::connecting) return finish_connect(c);
  if (c.ssl && !c.tls_ready) return continue_tls_handshake(c);
  if ((events & EPOLLOUT) != 0) flush(c);
  if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0 && c.state != WsClient::State::closed) on_readable(c);
}

void WsPool::finish_connect(WsClient& c) {
  if (const int err = connect_result(c.fd); err != 0) return fail(c, "connect: " + errno_name(err));
  c.state = WsClient::State::handshaking;
  if (target_.tls) {
    c.ssl = tls_new(c.fd);
    if (!c.ssl) return fail(c, "tls: cannot create a connection");
    return continue_tls_handshake(c);
  }
  flush(c);
}

void WsPool::continue_tls_handshake(WsClient& c) {
  switch (tls_handshake(c.ssl)) {
    case TlsWant::none:
      c.tls_ready = true;
      return flush(c);  // the upgrade request
    case TlsWant::read: return set_write_interest(c, false);
    case TlsWant::write: return set_write_interest(c, true);
    case TlsWant::failed: return fail(c, "tls handshake failed");
  }
}

long WsPool::write_bytes(WsClient& c, std::string_view bytes) {
  if (!c.ssl) return write_some(c.fd, bytes);
  if (!c.tls_ready) return 0;
  TlsWant want;
  const std::size_t n = tls_write(c.ssl, bytes, want);
  if (want == TlsWant::failed) return -EPIPE;
  return static_cast<long>(n);
}

void WsPool::on_readable(WsClient& c) {
  read_once(c);
  // Plaintext OpenSSL still holds (the buffer filled up): epoll will not report it.
  while (c.ssl && c.state != WsClient::State::closed && tls_pending(c.ssl)) read_once(c);
}

void WsPool::read_once(WsClient& c) {
  ssize_t n;
  if (c.ssl) {
    // One SSL_read yields one record: read on until OpenSSL wants the socket, as a plain recv
    // takes everything that arrived (epoll does not report records OpenSSL already holds).
    std::size_t total = 0;
    TlsWant want = TlsWant::none;
    while (total < buffer_.size()) {
      const std::size_t got = tls_read(c.ssl, buffer_.data() + total, buffer_.size() - total, want);
      if (got == 0) break;
      total += got;
    }
    n = static_cast<ssize_t>(total);
    if (n == 0) {
      if (want == TlsWant::failed) return fail(c, "eof");
      if (want == TlsWant::write) set_write_interest(c, true);
      return;
    }
  } else {
    n = ::recv(c.fd, buffer_.data(), buffer_.size(), 0);
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    return fail(c, "read: " + errno_name(errno));
  }
  if (n == 0) return fail(c, "eof");
  bytes_received_ += static_cast<std::uint64_t>(n);
  const Nanos now = now_ns();
  const auto size = static_cast<std::size_t>(n);
  if (c.state == WsClient::State::handshaking) {
    c.in.append(buffer_.data(), size);
    on_handshake_bytes(c, now);
  } else if (c.in.empty()) {
    const std::size_t used = process(c, std::string_view(buffer_.data(), size), now);
    if (used != no_frame && used < size) c.in.assign(buffer_.data() + used, size - used);
  } else {
    c.in.append(buffer_.data(), size);
    const std::size_t used = process(c, c.in, now);
    if (used != no_frame) c.in.erase(0, used);
  }
  // Idle clients keep no buffers: 10k clients x a few KiB of capacity would skew the run.
  if (c.in.empty() || c.state == WsClient::State::closed) std::string().swap(c.in);
  if (c.state == WsClient::State::closed) std::string().swap(c.assembly);
}

void WsPool::on_handshake_bytes(WsClient& c, Nanos now) {
  const std::size_t end = c.in.find("\r\n\r\n");
  if (end == std::string::npos) {
    if (c.in.size() > max_handshake_bytes) fail(c, "upgrade response headers too large");
    return;
  }
  const std::string_view head(c.in.data(), end + 4);
  if (head.size() < 12 || head.substr(0, 5) != "HTTP/") return fail(c, "upgrade: not an HTTP response");
  const std::string_view status = head.substr(9, 3);
  if (status != "101") {
    std::string body = c.in.substr(end + 4, 120);
    return fail(c, "upgrade refused: HTTP " + std::string(status) + (body.empty() ? "" : " " + body));
  }
  if (header_value(head, "sec-websocket-accept") != accept_for(key_for(c.index)))
    return fail(c, "upgrade: wrong Sec-WebSocket-Accept");
  if (target_.compression) {
    if (header_value(head, "sec-websocket-extensions").find("permessage-deflate") == std::string_view::npos)
      return fail(c, "upgrade: permessage-deflate not negotiated (--compression)");
    c.deflate = true;
  }
  std::string rest = c.in.substr(end + 4);
  std::string().swap(c.in);
  if (target_.protocol == Protocol::plain && !c.native) {
    c.state = WsClient::State::open;
    handler_.on_open(c, now);
  } else {
    c.state = WsClient::State::awaiting_connected;
  }
  if (rest.empty() || c.state == WsClient::State::closed) return;
  const std::size_t used = process(c, rest, now);
  if (used != no_frame && used < rest.size()) c.in.assign(rest, used);
}

std::size_t WsPool::process(WsClient& c, std::string_view bytes, Nanos now) {
  std::size_t offset = 0;
  while (c.state != WsClient::State::closed) {
    bool fin = false;
    std::uint8_t opcode = 0;
    std::string_view payload;
    bool rsv1 = false;
    const std::size_t size = parse_frame(bytes.substr(offset), fin, opcode, payload, c.deflate, rsv1);
    if (size == 0) return offset;
    if (size == no_frame) {
      fail(c, "protocol error: bad frame header from server");
      return no_frame;
    }
    offset += size;
    if (rsv1) {
      if (!fin || opcode != 0x1) {
        fail(c, "compressed frame the server never sends (fragmented or not text)");
        return no_frame;
      }
      auto it = inflated_.find(std::string(payload));
      if (it == inflated_.end()) {
        if (inflated_.size() >= max_inflated) inflated_.clear();
        std::string text;
        if (inflater_.inflate(payload, max_frame_bytes, text, true) != core::Inflater::Result::ok) {
          fail(c, "compressed frame does not inflate");
          return no_frame;
        }
        it = inflated_.emplace(std::string(payload), std::move(text)).first;
      }
      payload = it->second;
    }
    if (!handle_frame(c, fin, opcode, payload, now)) return no_frame;
  }
  return no_frame;
}

bool WsPool::handle_frame(WsClient& c, bool fin, std::uint8_t opcode, std::string_view payload, Nanos now) {
  switch (opcode) {
    case 0x1:
    case 0x2:  // binary: plain echo servers (Node `ws`) relay text as binary
      if (c.fragmented) {
        fail(c, "protocol error: new message inside a fragmented one");
        return false;
      }
      if (!fin) {
        c.assembly.assign(payload);
        c.fragmented = true;
        return true;
      }
      deliver(c, payload, now);
      break;
    case 0x0:
      if (!c.fragmented) {
        fail(c, "protocol error: unexpected continuation");
        return false;
      }
      c.assembly.append(payload);
      if (fin) {
        c.fragmented = false;
        deliver(c, c.assembly, now);
        std::string().swap(c.assembly);
      }
      break;
    case 0x8: {
      c.close_code = payload.size() >= 2
                         ? static_cast<std::uint16_t>((static_cast<std::uint8_t>(payload[0]) << 8) |
                                                      static_cast<std::uint8_t>(payload[1]))
                         : 1005;
      const std::string reason(payload.size() > 2 ? payload.substr(2) : std::string_view{});
      send_raw(c, core::encode_client_frame(core::Opcode::close, payload.substr(0, 2), next_mask()));
      fail(c, "close " + std::to_string(c.close_code) + (reason.empty() ? "" : " (" + reason + ")"));
      return false;
    }
    case 0x9: send_raw(c, core::encode_client_frame(core::Opcode::pong, payload, next_mask())); break;
    case 0xA: break;
    default: fail(c, "protocol error: opcode " + std::to_string(opcode)); return false;
  }
  return c.state != WsClient::State::closed;
}

void WsPool::deliver(WsClient& c, std::string_view message, Nanos now) {
  if (target_.protocol == Protocol::socketio && !c.native) return deliver_socketio(c, message, now);
  if (c.state == WsClient::State::awaiting_connected) {
    const std::string_view first = target_.protocol == Protocol::pusher && !c.native
                                       ? R"("event":"pusher:connection_established")"
                                       : R"("type":"connected")";
    if (message.find(first) == std::string_view::npos)
      return fail(c, "first frame was not 'connected': " + std::string(message.substr(0, 120)));
    c.state = WsClient::State::open;
    return handler_.on_open(c, now);
  }
  handler_.on_message(c, message, now);
}

// One Engine.IO v4 packet (one WebSocket message; the first character is its type) carrying, for
// type 4, a Socket.IO v5 packet (the second character is its type). Handshake: the server's
// `0{...}` open packet is answered with `40` (connect to the main namespace), and the client is
// open when `40{"sid":...}` comes back. Events are not parsed: `42["message",X]` hands X (the
// JSON text between the event name and the closing bracket) to the handler as is.
void WsPool::deliver_socketio(WsClient& c, std::string_view packet, Nanos now) {
  static constexpr std::string_view message_event = R"(42["message",)";
  if (packet.size() > message_event.size() && packet.back() == ']' &&
      packet.compare(0, message_event.size(), message_event) == 0) {
    if (c.state != WsClient::State::open) return;  // an event before the connect reply: not ours
    const std::size_t n = packet.size() - message_event.size() - 1;
    return handler_.on_message(c, packet.substr(message_event.size(), n), now);
  }
  const char engine_type = packet.empty() ? '\0' : packet[0];
  switch (engine_type) {
    case '0':  // open: connect to the main namespace
      if (c.state == WsClient::State::awaiting_connected) send_text(c, "40");
      return;
    case '1': return fail(c, "engine.io close");
    case '2': {  // ping: the pong echoes its payload (none from the server in v4)
      std::string pong(1, '3');
      pong.append(packet.substr(1));
      return send_text(c, pong);
    }
    case '3':    // pong
    case '6':    // noop
      return;
    case '4': break;
    default: return fail(c, "protocol error: engine.io packet '" + std::string(packet.substr(0, 120)) + "'");
  }
  const char socket_type = packet.size() > 1 ? packet[1] : '\0';
  switch (socket_type) {
    case '0':  // connect reply
      if (c.state != WsClient::State::awaiting_connected) return;
      c.state = WsClient::State::open;
      return handler_.on_open(c, now);
    case '1': return fail(c, "socket.io disconnect");
    case '2':  // another event, or an event with a namespace or ack id: its text after `42`
      if (c.state == WsClient::State::open) handler_.on_message(c, packet.substr(2), now);
      return;
    case '4': return fail(c, "socket.io connect error: " + std::string(packet.substr(2, 120)));
    case '3':  // ack
    case '5':  // binary event
    case '6':  // binary ack
      return;
    default: return fail(c, "protocol error: socket.io packet '" + std::string(packet.substr(0, 120)) + "'");
  }
}

void WsPool::send_text(WsClient& c, std::string_view payload) {
  send_raw(c, core::encode_client_frame(core::Opcode::text, payload, next_mask()));
}

void WsPool::send_raw(WsClient& c, std::string_view bytes) {
  if (c.state == WsClient::State::closed) return;
  if (c.state == WsClient::State::connecting || !c.out.empty()) {
    c.out.append(bytes);
    return;
  }
  const long n = write_bytes(c, bytes);
  if (n < 0) return fail(c, "write: " + errno_name(static_cast<int>(-n)));
  if (static_cast<std::size_t>(n) < bytes.size()) {
    c.out.assign(bytes.substr(static_cast<std::size_t>(n)));
    set_write_interest(c, true);
  }
}

void WsPool::flush(WsClient& c) {
  if (!c.out.empty()) {
    const long n = write_bytes(c, c.out);
    if (n < 0) return fail(c, "write: " + errno_name(static_cast<int>(-n)));
    c.out.erase(0, static_cast<std::size_t>(n));
  }
  if (c.out.empty()) {
    std::string().swap(c.out);
    set_write_interest(c, false);
  } else {
    set_write_interest(c, true);
  }
}

void WsPool::set_write_interest(WsClient& c, bool on) {
  if (c.want_write == on) return;
  c.want_write = on;
  reactor_.modify(c.fd, EPOLLIN | (on ? EPOLLOUT : 0u), c.index);
}

void WsPool::close(WsClient& c) {
  if (c.ssl) {
    tls_free(c.ssl);
    c.ssl = nullptr;
  }
  if (c.fd >= 0) {
    reactor_.remove(c.fd);
    ::close(c.fd);
    c.fd = -1;
  }
  c.state = WsClient::State::closed;
  std::string().swap(c.out);
}

void WsPool::fail(WsClient& c, const std::string& why) {
  const bool was_open = c.state == WsClient::State::open;
  close(c);
  if (was_open)
    handler_.on_closed(c, why);
  else
    handler_.on_failed(c, why);
}

}  // namespace loadgen
