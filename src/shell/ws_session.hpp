#pragma once
// A WebSocket connection after the upgrade: a TCP socket, the core's frame decoder and a
// bounded queue of shared, pre-framed messages. It implements the Connection port for the
// loop's registry.
//
// Memory: while idle it holds no read buffer (reads go to the loop's scratch buffer; only the
// bytes of an incomplete frame are kept) and no write buffer (the queue is empty and
// releases its capacity). The socket is a bare descriptor watched by the loop's Poller (one
// 8-byte slot), not an Asio socket: no reactor state or pending read operation per connection.
// Writes are non-blocking gather writes straight from the shared frames; only when the kernel
// buffer is full does the session ask the poller for writability.
//
// Lifetime: the registry holds an open session, the loop's closing list a closing one; the
// poller holds none (a session leaves it when it finishes or is destroyed).
//
// Behind TLS (--tls-cert) the session also holds a TlsLink: reads decrypt into the same scratch
// buffer, and writes coalesce queued frames into the link's outbox (up to 64 KiB, a few TLS
// records) since OpenSSL cannot gather. A plain session pays one null pointer for this.

#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "boundary/realtime/identity.hpp"
#include "boundary/realtime/ports/connection.hpp"
#include "boundary/realtime/ports/history_store.hpp"
#include "core/command.hpp"
#include "core/frame.hpp"
#include "core/permessage_deflate.hpp"
#include "core/pusher.hpp"
#include "core/rate_limiter.hpp"
#include "shell/poller.hpp"
#include "shell/tcp_socket.hpp"
#include "shell/tls_link.hpp"

namespace boundary::realtime::shell {

class Loop;

class WsSession final : public Connection, public std::enable_shared_from_this<WsSession> {
 public:
  using Clock = std::chrono::steady_clock;

  // `id` is at most 36 characters (a UUID v4). `socket`: its descriptor is taken over (released
  // from Asio's reactor). `tls`: the connection's TLS state, handshake done; null for a plain
  // connection.
  WsSession(Loop& loop, TcpSocket socket, std::string_view id, std::unique_ptr<TlsLink> tls = nullptr);
  ~WsSession() override;

  // Registers with the loop, queues the 101 response and the `connected` frame, starts reading.
  // `early_bytes` are frame bytes that arrived with the upgrade request. `deflate`: what
  // permessage-deflate negotiation agreed on, if it did (the 101 already says so).
  // `pusher_refusal`: a Pusher connection refused at once (unknown key, unsupported protocol):
  // after the 101 it gets only pusher:error and the close frame with that code; nothing it
  // sends is handled.
  void start(Identity identity, std::string upgrade_response, std::string_view early_bytes,
             std::optional<core::DeflateAgreement> deflate = std::nullopt,
             std::optional<std::pair<int, std::string>> pusher_refusal = std::nullopt);

  // Before start(): the connection speaks the Pusher protocol (docs/pusher.md) for app
  // `app_index` of Node::pusher_apps(); its id is a Pusher socket id.
  void speak_pusher(std::size_t app_index) noexcept { pusher_app_ = static_cast<std::uint16_t>(app_index + 1); }

  std::string_view id() const noexcept override { return {id_.data(), id_size_}; }
  bool is_open() const noexcept override { return state_ == State::open; }
  // A delivery: on a Pusher connection, the message's Pusher form (Message::alternate).
  void send(const Message& message) override;
  void close(CloseCode code, std::string_view reason) override;
  // A Pusher connection: pusher:error with `code` and `message`, then the close frame with the
  // same code (4000-4299, Pusher's reconnect rules).
  void refuse_pusher(int code, std::string_view message);

  // Called by the loop's periodic sweep: closes the connection when its token expired
  // (`token_exp`, from the registry's Identity) or when it has been idle too long.
  void check_idle(Clock::time_point now, std::chrono::system_clock::time_point wall_now,
                  const std::optional<std::int64_t>& token_exp);
  // Called by the loop once per pass for sessions with queued output.
  void flush();
  // Called by the loop's Poller with the epoll events of this session's socket.
  void on_poll(std::uint32_t events);
  // Called by the loop's sweep for closing sessions: true when the session is gone (finished
  // now because its close did not complete within the grace period, or earlier).
  bool close_expired(Clock::time_point now);

 private:
  enum class State : std::uint8_t { open, closing, closed };

  // Reads stay armed in the poller; this only hands on bytes OpenSSL already decrypted.
  void do_wait_readable();
  void on_readable();
  // Reads into the loop's scratch buffer: bytes read, 0 after arranging to be called again, or
  // npos when the connection is over.
  std::size_t read_input();
  void flush_tls();
  void shutdown_send();
  // Decodes and handles whole frames; returns bytes consumed, or npos when reading must stop.
  std::size_t process(std::span<std::uint8_t> bytes);
  // Drops the first `used` bytes of partial_, and partial_ itself once it is empty.
  void drop_consumed(std::size_t used);
  bool handle_step(const core::DecodeStep& step);
  // Client commands: core::decide_command decides, these carry the decision out.
  void handle_text(std::string_view text);
  // A compressed message: inflated within --max-message-bytes, checked for UTF-8, then handled
  // as text. False when the connection failed.
  bool handle_compressed(std::string_view payload);
  // The subscribe proxy (--subscribe-policy proxy), then Hooks::on_subscribe, then allowed():
  // subscribe() or history() (the history action is authorized as a subscribe).
  void ask_subscribe(const Identity& who, core::Command cmd);
  void ask_hook(const Identity& who, core::Command cmd);  // Hooks::on_subscribe
  void allowed(const core::Command& cmd);
  void subscribe(const core::Command& cmd);
  // A topic with history: subscribes and answers (and replays) inside the store's atomic join.
  void subscribe_stream(const core::Command& cmd, HistoryStore& history);
  void subscribe_stream_remote(const core::Command& cmd, HistoryStore& history, std::optional<HistoryRecover> recover);
  void history(const core::Command& cmd);
  void presence(const core::Command& cmd);
  void run_custom(const Identity& who, boost::json::object command, boost::json::value ref);  // Hooks::on_action
  void refresh(const Identity& who, std::string_view token, const boost::json::value& ref);
  void refuse(CommandErrorCode code, std::string_view why, const boost::json::value& ref);
  // Wraps `f(session, args...)` to run later on this session's loop, if it is still open then.
  template <class F>
  auto on_this_loop(F f);
  // The Pusher protocol (ws_session_pusher.cpp): frames from the client, and what they lead to.
  void handle_pusher_text(std::string_view text);
  const core::pusher::App& pusher_app() const noexcept;
  bool pusher_default_app() const noexcept { return pusher_app_ == 1; }
  void pusher_subscribe(core::pusher::Subscribe s);
  void pusher_subscribed(const std::string& channel, const std::string& topic, bool presence);
  void pusher_client_event(core::pusher::ClientEvent e);
  void pusher_signin(core::pusher::Signin s);
  // Makes `user_id` this connection's user (pusher:signin, a presence channel's channel_data), or
  // says why not: a connection is one user, named once.
  std::optional<std::string> pusher_become(const Identity& who, const std::string& user_id);
  void pusher_refuse(int code, std::string_view message);
  // The session's own frames (replies, control frames): queued as they are.
  void deliver(const Message& message);
  void handle_peer_close(std::uint16_t code);
  // Queues the close frame and starts closing: close() after its Pusher translation, and the
  // echo of the peer's close as it is.
  void close_with_frame(CloseCode code, std::string_view reason);
  void fail(core::FrameError error);
  // Every outbound frame passes the --max-outbound-bytes check (admit), except the upgrade
  // response, the `connected` frame and the close frame, which enqueue directly.
  bool admit(const Message& message);
  void enqueue(const Message& message);
  void do_wait_writable();
  // Asks the poller for writability while a write or a TLS read waits for it, and stops asking
  // after; readability is not watched while a TLS read waits for writability. Finishes the
  // session if the poller refuses.
  void update_interest();
  void consume_written(std::size_t bytes);
  void release_queue();
  void unregister();
  void finish();

  Loop& loop_;
  int fd_;                              // -1 once closed
  PollSlot slot_ = 0;                   // valid while polled_
  std::unique_ptr<TlsLink> tls_;        // null: plain
  std::array<char, 36> id_;             // inline: the registry keys its index with a view of it
  std::uint8_t id_size_;
  std::uint16_t pusher_app_ = 0;        // 0: the native protocol; else the Pusher app's index + 1
  core::InboundDecoder decoder_;
  Clock::time_point bucket_full_at_ = Clock::time_point::min();  // command rate (CommandRules::rate)
  std::unique_ptr<std::string> partial_;  // an incomplete frame's bytes; null while idle
  std::vector<Message> queue_;          // frames to write; [head_, end) pending
  std::size_t head_ = 0;
  std::size_t queued_bytes_ = 0;
  Clock::time_point last_activity_;
  // While open: when the outstanding ping left. While closing: when the close gives up.
  Clock::time_point ping_sent_at_or_close_deadline_;
  // Bytes of queue_[head_] already written; frames are under 2 GiB (--max-message-bytes and
  // --max-body-bytes are at most 1 GiB). Kept next to the flags: an idle session is small.
  std::uint32_t head_offset_ = 0;
  State state_ = State::open;
  // permessage-deflate: the client's inflate window (8-15); 0 when not negotiated. With the flag
  // below it fits in the padding after state_: sizeof(WsSession) is unchanged.
  std::uint8_t deflate_window_bits_ = 0;
  bool registered_ : 1 = false;
  bool flush_scheduled_ : 1 = false;
  bool waiting_writable_ : 1 = false;
  bool ping_outstanding_ : 1 = false;
  bool shutdown_after_flush_ : 1 = false;
  bool discard_input_ : 1 = false;      // after a close frame or a protocol error
  bool finished_ : 1 = false;
  bool client_context_takeover_ : 1 = false;  // the client keeps its deflate window: own inflater
  bool polled_ : 1 = false;             // watched by the loop's poller (slot_ valid)
  bool write_interest_ : 1 = false;     // the poller reports writability
  bool read_interest_off_ : 1 = false;  // the poller does not report readability
  bool read_waits_writable_ : 1 = false;  // TLS: a read needs the socket writable first
};

}  // namespace boundary::realtime::shell
