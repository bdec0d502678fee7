#include "shell/ws_session.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <span>

#include <boost/asio/post.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <spdlog/spdlog.h>

#include <boost/json/serialize.hpp>

#include "core/command.hpp"
#include "core/connection_policy.hpp"
#include "core/envelope.hpp"
#include "core/history.hpp"
#include "core/presence.hpp"
#include "shell/post_behind.hpp"
#include "core/token_lifetime.hpp"
#include "shell/hub.hpp"
#include "shell/loop.hpp"
#include "shell/node.hpp"

namespace boundary::realtime::shell {
namespace asio = boost::asio;
namespace json = boost::json;
using boost::system::error_code;

namespace {
// Gather writes take at most this many frames per system call (well under IOV_MAX). 256 made
// no measurable difference in the 10k fanout with 256 messages in flight.
constexpr std::size_t max_gather = 64;
// Frames a drained queue makes room for at its first enqueue.
constexpr std::size_t initial_queue_capacity = 16;
// How long a closing connection may take to flush its close frame and answer it.
constexpr auto close_grace = std::chrono::seconds(5);
// TLS: plaintext coalesced per SSL_write. Four full records: the gather write's batching without
// holding much more than a burst (the frames it copies are released at once).
constexpr std::size_t max_tls_outbox = 64 * 1024;

bool would_block(int error) { return error == EAGAIN || error == EWOULDBLOCK; }

// A delivery's Pusher form; none for a message that is not one JSON object (presence events
// travel as several frames in one buffer, see pusher_presence).
Message::Alternate pusher_form(std::string_view json) {
  auto form = core::pusher::to_pusher(json);
  if (form.frame_json.empty()) return {};
  return {Message::from_json(form.frame_json), std::move(form.excluded), std::move(form.excluded_user)};
}

// The descriptor leaves Asio's reactor (its per-descriptor state goes back to Asio's pool).
int take_descriptor(TcpSocket& socket) {
  error_code ec;
  const int fd = socket.release(ec);
  if (!ec) return fd;
  spdlog::warn("cannot take over a connection's socket: {}", ec.message());
  socket.close(ec);
  return -1;
}
}  // namespace

WsSession::WsSession(Loop& loop, TcpSocket socket, std::string_view id, std::unique_ptr<TlsLink> tls)
    : loop_(loop),
      fd_(take_descriptor(socket)),
      tls_(std::move(tls)),
      id_size_(static_cast<std::uint8_t>(std::min(id.size(), id_.size()))),
      decoder_(loop.node().config().max_message_bytes) {
  std::copy_n(id.data(), id_size_, id_.data());
  loop.node().session_opened();
}

WsSession::~WsSession() {
  if (!finished_) loop_.node().session_finished();
  if (polled_) loop_.poller().remove(fd_, slot_);
  if (fd_ >= 0) ::close(fd_);
}

void WsSession::start(Identity identity, std::string upgrade_response, std::string_view early_bytes,
                      std::optional<core::DeflateAgreement> deflate,
                      std::optional<std::pair<int, std::string>> pusher_refusal) {
  auto& metrics = loop_.node().metrics();
  int on = 1;
  if (fd_ >= 0) {
    ::ioctl(fd_, FIONBIO, &on);
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  }
  auto connected = pusher_app_ ? Message::from_json(core::pusher::connection_established(
                                   id(), core::pusher::activity_timeout_seconds))
                              : core::make_connected(id(), identity, std::chrono::system_clock::now());
  // The admission slot's key, should registering fail: a Pusher connection was admitted as itself.
  const std::string user_id = pusher_app_ ? std::string(id()) : identity.user_id;
  if (fd_ < 0 || !loop_.poller().add(fd_, *this, slot_)) {
    if (fd_ >= 0) spdlog::warn("cannot watch a connection's socket: {}", std::strerror(errno));
    loop_.node().release_connection(user_id);
    return;  // the destructor closes the descriptor
  }
  polled_ = true;
  registered_ = loop_.registry().register_connection(shared_from_this(), std::move(identity));
  if (!registered_) {  // a random 122-bit id collided: refuse rather than alias two clients
    loop_.node().release_connection(user_id);
    return;
  }
  metrics.connections.fetch_add(1, std::memory_order_relaxed);
  metrics.connections_total.fetch_add(1, std::memory_order_relaxed);
  if (deflate) {
    deflate_window_bits_ = deflate->window_bits();
    client_context_takeover_ = !deflate->client_no_context_takeover;
    decoder_.accept_compressed();
    metrics.compressed_connections.fetch_add(1, std::memory_order_relaxed);
  }
  last_activity_ = Clock::now();
  enqueue(Message::from_wire(std::move(upgrade_response)));
  if (pusher_refusal) {
    refuse_pusher(pusher_refusal->first, pusher_refusal->second);
    discard_input_ = true;
    return do_wait_readable();
  }
  enqueue(connected);
  if (!early_bytes.empty()) {
    partial_ = std::make_unique<std::string>(early_bytes);
    auto bytes = std::span(reinterpret_cast<std::uint8_t*>(partial_->data()), partial_->size());
    const std::size_t used = process(bytes);
    if (used == std::string::npos) return;
    drop_consumed(used);
  }
  do_wait_readable();
}

void WsSession::do_wait_readable() {
  // Bytes OpenSSL already decrypted (a record larger than the last read, or what arrived with the
  // upgrade) would never make the socket readable again.
  if (tls_ && tls_->has_buffered_input())
    asio::post(loop_.io(), [self = shared_from_this()] { self->on_readable(); });
}

void WsSession::on_poll(std::uint32_t events) {
  auto self = shared_from_this();  // finishing may drop the last other reference
  const bool failed = (events & (EPOLLERR | EPOLLHUP)) != 0;
  const bool writable = failed || (events & EPOLLOUT) != 0;
  if (writable && waiting_writable_) {
    waiting_writable_ = false;
    flush();  // a write error finishes the session; a full socket waits again
    if (finished_) return;
  }
  if (writable && read_waits_writable_) {
    read_waits_writable_ = false;
    on_readable();
  } else if (failed || (events & EPOLLIN) != 0) {
    on_readable();
  }
  if (!finished_) update_interest();
}

void WsSession::update_interest() {
  const bool write = waiting_writable_ || read_waits_writable_;
  const bool read = !read_waits_writable_;
  if ((write == write_interest_ && read == !read_interest_off_) || !polled_) return;
  if (!loop_.poller().watch(fd_, slot_, read, write)) {
    spdlog::debug("cannot change the readiness watched on {}: {}", id(), std::strerror(errno));
    return finish();
  }
  write_interest_ = write;
  read_interest_off_ = !read;
}

void WsSession::on_readable() {
  if (finished_) return;
  auto& buf = loop_.read_buffer();
  const std::size_t n = read_input();
  if (n == 0 || n == std::string::npos) return;
  loop_.node().metrics().bytes_received.fetch_add(n, std::memory_order_relaxed);
  last_activity_ = Clock::now();
  ping_outstanding_ = false;
  if (discard_input_) return do_wait_readable();

  std::size_t used;
  if (!partial_) {
    auto bytes = std::span(buf.data(), n);
    used = process(bytes);
    if (used != std::string::npos && used < n)
      partial_ = std::make_unique<std::string>(reinterpret_cast<const char*>(buf.data()) + used, n - used);
  } else {
    partial_->append(reinterpret_cast<const char*>(buf.data()), n);
    auto bytes = std::span(reinterpret_cast<std::uint8_t*>(partial_->data()), partial_->size());
    used = process(bytes);
    if (used != std::string::npos) drop_consumed(used);
  }
  if (used == std::string::npos) {
    partial_.reset();
    if (finished_) return;
  }
  do_wait_readable();
}

std::size_t WsSession::read_input() {
  auto& buf = loop_.read_buffer();
  if (!tls_) {
    ssize_t n;
    do {
      n = ::recv(fd_, buf.data(), buf.size(), 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && would_block(errno)) return 0;  // still watched for readability
    if (n <= 0) {
      // End of stream: the peer may only have half-closed. What it asked for before (answers
      // queued in this loop pass, not yet flushed) still goes out if the socket takes it now.
      if (n == 0 && head_ < queue_.size()) flush();
      finish();
      return std::string::npos;
    }
    return static_cast<std::size_t>(n);
  }
  // One SSL_read yields one record, and clients send each message in its own record: read on
  // until OpenSSL wants more from the socket, as one plain read takes whatever has arrived (up to
  // the scratch buffer). Else a publisher's burst costs one loop pass, and one fan-out flush, per
  // message. A failure after some bytes is met again on the next read, once those are handled.
  std::size_t total = 0;
  while (total < buf.size()) {
    const auto r = tls_->read(buf.data() + total, buf.size() - total);
    if (r.status == TlsLink::Status::ok) {
      total += r.bytes;
      continue;
    }
    if (total > 0) return total;
    switch (r.status) {
      case TlsLink::Status::want_read: do_wait_readable(); return 0;
      case TlsLink::Status::want_write:  // a TLS 1.3 key update to answer first
        read_waits_writable_ = true;
        update_interest();
        return 0;
      case TlsLink::Status::failed: spdlog::debug("TLS read on {} failed: {}", id(), tls_->last_error()); break;
      default: break;
    }
    finish();
    return std::string::npos;
  }
  return total;
}

void WsSession::drop_consumed(std::size_t used) {
  if (!partial_) return;
  partial_->erase(0, used);
  if (partial_->empty()) partial_.reset();  // idle connections keep no read buffer
}

std::size_t WsSession::process(std::span<std::uint8_t> bytes) {
  std::size_t offset = 0;
  while (!finished_ && !discard_input_) {
    const core::DecodeStep step = decoder_.next(bytes.subspan(offset));
    if (step.kind == core::DecodeStep::Kind::error) {
      fail(step.error);
      return std::string::npos;
    }
    offset += step.consumed;
    if (step.kind == core::DecodeStep::Kind::need_more) {
      if (step.consumed == 0) break;
      continue;
    }
    if (!handle_step(step)) return std::string::npos;
  }
  return discard_input_ ? std::string::npos : offset;
}

bool WsSession::handle_step(const core::DecodeStep& step) {
  using Kind = core::DecodeStep::Kind;
  switch (step.kind) {
    case Kind::text:
      if (state_ != State::open) return true;
      if (step.compressed) return handle_compressed(step.payload);
      handle_text(step.payload);
      return true;
    case Kind::ping:
      if (state_ == State::open)
        deliver(Message::from_wire(core::encode_frame(core::Opcode::pong, step.payload), 0));
      return true;
    case Kind::pong: return true;
    case Kind::close: handle_peer_close(step.close_code); return false;
    default: return true;
  }
}

template <class F>
auto WsSession::on_this_loop(F f) {
  // Answers may come from another loop's thread (counts) or the application's: the session is
  // touched only on its own loop, and only while it is still open.
  return [weak = weak_from_this(), &loop = loop_, f = std::move(f)](auto... args) {
    asio::post(loop.io(), [weak, f, args...]() mutable {
      if (auto self = weak.lock(); self && self->is_open()) f(*self, std::move(args)...);
    });
  };
}

void WsSession::handle_text(std::string_view text) {
  if (pusher_app_) return handle_pusher_text(text);
  auto& node = loop_.node();
  node.metrics().messages_received.fetch_add(1, std::memory_order_relaxed);
  const Identity* who = loop_.registry().identity_of(id());  // registered while open
  if (!who) return;
  auto decided = core::decide_command(text, *who, node.command_rules(), bucket_full_at_, Clock::now());
  if (auto* refusal = std::get_if<core::Refusal>(&decided)) {
    if (refusal->code == CommandErrorCode::rate_limited)
      node.metrics().rate_limited.fetch_add(1, std::memory_order_relaxed);
    node.metrics().command_errors.fetch_add(1, std::memory_order_relaxed);
    return send(Message::from_json(refusal->reply));
  }
  auto& cmd = std::get<core::Command>(decided);
  switch (cmd.action) {
    case core::Action::ping: return send(Message::from_json(core::reply_pong(cmd.ref)));
    case core::Action::subscribe:
    case core::Action::history:
    case core::Action::presence: return ask_subscribe(*who, std::move(cmd));
    case core::Action::unsubscribe: {
      auto* h = node.hub().history();
      if (!h || !h->delivers() || !h->keeps(cmd.topic)) {
        loop_.registry().unsubscribe(id(), cmd.topic);
        return send(Message::from_json(core::reply_unsubscribed(cmd.topic, cmd.ref)));
      }
      // Cluster mode: a subscribe of this stream may still wait for its join; this must not
      // overtake it.
      auto unsubscribe = on_this_loop([topic = cmd.topic, ref = cmd.ref](WsSession& self) {
        self.loop_.registry().unsubscribe(self.id(), topic);
        self.send(Message::from_json(core::reply_unsubscribed(topic, ref)));
      });
      h->after_attaches(cmd.topic, [unsubscribe]() mutable { unsubscribe(); });
      return;
    }
    case core::Action::publish: {
      // Pusher's private and presence channels hear only what their app's backend and signed
      // subscribers send.
      if (!node.pusher_apps().empty() && core::pusher::reserved_topic(cmd.topic))
        return refuse(CommandErrorCode::forbidden, "publishing to this topic is not allowed", cmd.ref);
      auto answer = on_this_loop([topic = cmd.topic, ref = cmd.ref](WsSession& self, Delivery d) {
        self.send(Message::from_json(core::reply_published(topic, d.count, ref, d.offset)));
      });
      node.hub().send(Route::topic, std::move(cmd.topic), std::move(cmd.message), {}, std::move(answer));
      return;
    }
    case core::Action::custom: return run_custom(*who, std::move(cmd.message), std::move(cmd.ref));
    case core::Action::refresh: return refresh(*who, cmd.token, cmd.ref);
  }
}

bool WsSession::handle_compressed(std::string_view payload) {
  const auto inflated = loop_.inflate(this, client_context_takeover_, payload, loop_.node().config().max_message_bytes);
  using Result = core::Inflater::Result;
  if (inflated.result == Result::too_big) return fail(core::FrameError::message_too_big), false;
  if (inflated.result == Result::corrupt) return fail(core::FrameError::bad_compressed_data), false;
  if (!core::is_valid_utf8(inflated.text)) return fail(core::FrameError::invalid_utf8), false;
  handle_text(inflated.text);
  return true;
}

void WsSession::refresh(const Identity& who, std::string_view token, const json::value& ref) {
  auto& node = loop_.node();
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
      std::chrono::system_clock::now().time_since_epoch()).count();
  auto decided = core::decide_refresh(who, node.verifier().verify(token, now), ref);
  if (auto* refusal = std::get_if<core::Refusal>(&decided)) {
    node.metrics().command_errors.fetch_add(1, std::memory_order_relaxed);
    return send(Message::from_json(refusal->reply));
  }
  auto& next = std::get<Identity>(decided);
  auto reply = core::reply_refreshed(next.exp, ref);
  // `who` is the registry's entry: it is replaced here, and the sweep reads the new exp.
  loop_.registry().replace_identity(id(), std::move(next));
  node.metrics().token_refreshes.fetch_add(1, std::memory_order_relaxed);
  send(Message::from_json(reply));
}

void WsSession::refuse(CommandErrorCode code, std::string_view why, const json::value& ref) {
  loop_.node().metrics().command_errors.fetch_add(1, std::memory_order_relaxed);
  send(Message::from_json(core::reply_error(code, why, ref)));
}

void WsSession::ask_subscribe(const Identity& who, core::Command cmd) {
  auto& node = loop_.node();
  if (!node.pusher_apps().empty() && core::pusher::reserved_topic(cmd.topic))
    return refuse(CommandErrorCode::forbidden, core::subscribe_forbidden, cmd.ref);
  if (cmd.action == core::Action::subscribe) {
    const auto check = loop_.registry().check_subscribe(id(), cmd.topic, node.config().max_subscriptions);
    if (check != ConnectionRegistry::SubscribeResult::subscribed) return subscribe(cmd);
  }
  auto* authorizer = node.subscribe_authorizer(loop_.index());
  if (!authorizer) return ask_hook(who, std::move(cmd));
  // --subscribe-policy proxy: the backend first, then the application's hook.
  SubscribeQuestion question{who.user_id, std::string(id()), cmd.topic};
  auto answered = on_this_loop([cmd = std::move(cmd)](WsSession& self, bool allowed) {
    const Identity* who = self.loop_.registry().identity_of(self.id());
    if (!allowed || !who) return self.refuse(CommandErrorCode::forbidden, core::subscribe_forbidden, cmd.ref);
    self.ask_hook(*who, cmd);
  });
  authorizer->authorize(std::move(question), std::move(answered));
}

void WsSession::ask_hook(const Identity& who, core::Command cmd) {
  const auto& node = loop_.node();
  const auto& hook = node.hooks().on_subscribe;
  if (!hook) return allowed(cmd);
  // The application decides, now or later, from any thread; only the first answer counts.
  std::string topic = cmd.topic;
  auto decide = on_this_loop([cmd = std::move(cmd)](WsSession& self, bool allowed) {
    if (allowed) return self.allowed(cmd);
    self.refuse(CommandErrorCode::forbidden, core::subscribe_forbidden, cmd.ref);
  });
  auto once = std::make_shared<std::atomic<bool>>(false);
  Hooks::Decide decide_once = [once, decide](bool allowed) mutable {
    if (!once->exchange(true)) decide(allowed);
  };
  try {
    hook(ConnectionInfo{id(), who}, topic, decide_once);
  } catch (const std::exception& e) {
    spdlog::error("subscribe hook failed: {}", e.what());
    decide_once(false);
  }
}

void WsSession::allowed(const core::Command& cmd) {
  if (cmd.action == core::Action::history) return history(cmd);
  if (cmd.action == core::Action::presence) return presence(cmd);
  subscribe(cmd);
}

void WsSession::subscribe(const core::Command& cmd) {
  auto& node = loop_.node();
  if (auto* h = node.hub().history(); h && h->keeps(cmd.topic)) return subscribe_stream(cmd, *h);
  const auto r = loop_.registry().subscribe(id(), cmd.topic, node.config().max_subscriptions);
  if (r == ConnectionRegistry::SubscribeResult::limit_reached)
    return refuse(CommandErrorCode::too_many_subscriptions, "subscription limit reached", cmd.ref);
  auto reply = core::reply_subscribed(cmd.topic, cmd.ref, cmd.recover ? std::optional<bool>(false) : std::nullopt);
  if (!node.hub().distributed()) return send(Message::from_json(reply));
  // Cluster: answer once the node's subscription is in effect, so that anything published
  // anywhere after the reply reaches this connection.
  node.hub().when_ready(on_this_loop([reply = std::move(reply)](WsSession& self) {
    self.send(Message::from_json(reply));
  }));
}

void WsSession::subscribe_stream(const core::Command& cmd, HistoryStore& history) {
  const auto max = loop_.node().config().max_subscriptions;
  // Only this loop changes this connection's subscriptions, so the answer holds inside attach().
  const auto check = loop_.registry().check_subscribe(id(), cmd.topic, max);
  if (check == ConnectionRegistry::SubscribeResult::limit_reached)
    return refuse(CommandErrorCode::too_many_subscriptions, "subscription limit reached", cmd.ref);
  const bool already = check == ConnectionRegistry::SubscribeResult::already_subscribed;
  std::optional<HistoryRecover> recover;
  if (cmd.recover) recover = HistoryRecover{cmd.recover->offset, cmd.recover->epoch};
  // Runs between two appends of the topic: deliveries up to snap.last may still be queued on
  // this loop and are skipped by the registry; later ones are posted after this returns, so
  // they reach the connection after the reply and the replay.
  if (history.delivers()) return subscribe_stream_remote(cmd, history, std::move(recover));
  history.attach(cmd.topic, recover, [&](const HistorySnapshot& snap) {
    const bool replayed = cmd.recover && snap.recovered;
    loop_.registry().subscribe(id(), cmd.topic, max, core::subscribe_skip_through(already, replayed, snap.last));
    std::optional<bool> recovered;
    if (cmd.recover) recovered = snap.recovered;
    send(Message::from_json(core::reply_subscribed(cmd.topic, snap.last, snap.epoch, recovered, cmd.ref)));
    for (const auto& m : snap.messages) send(m);
  });
}

// Cluster mode (HistoryRedis): `join` runs on the broker's thread and posts the subscription to
// this loop; deliveries after it are posted later, so they follow it. The pin keeps the node
// subscribed to the topic from before the read until this connection's own subscription holds it.
void WsSession::subscribe_stream_remote(const core::Command& cmd, HistoryStore& history,
                                        std::optional<HistoryRecover> recover) {
  auto pin = loop_.node().hub().pin(cmd.topic);
  auto subscribe = on_this_loop([topic = cmd.topic, ref = cmd.ref, recovering = cmd.recover.has_value(), pin](
                                    WsSession& self, HistorySnapshot snap) {
    const auto max = self.loop_.node().config().max_subscriptions;
    const auto check = self.loop_.registry().check_subscribe(self.id(), topic, max);
    if (check == ConnectionRegistry::SubscribeResult::limit_reached)
      return self.refuse(CommandErrorCode::too_many_subscriptions, "subscription limit reached", ref);
    const bool already = check == ConnectionRegistry::SubscribeResult::already_subscribed;
    const bool replayed = recovering && snap.recovered;
    self.loop_.registry().subscribe(self.id(), topic, max, core::subscribe_skip_through(already, replayed, snap.last));
    std::optional<bool> recovered;
    if (recovering) recovered = snap.recovered;
    self.send(Message::from_json(core::reply_subscribed(topic, snap.last, snap.epoch, recovered, ref)));
    for (const auto& m : snap.messages) self.send(m);
  });
  history.attach(cmd.topic, recover, [subscribe](const HistorySnapshot& snap) { subscribe(snap); });
}

void WsSession::history(const core::Command& cmd) {
  auto* h = loop_.node().hub().history();
  if (!h || !h->keeps(cmd.topic)) return refuse(CommandErrorCode::bad_request, "this topic keeps no history", cmd.ref);
  auto answer = on_this_loop([topic = cmd.topic, ref = cmd.ref](WsSession& self, HistorySnapshot snap) {
    std::vector<std::string_view> messages;
    messages.reserve(snap.messages.size());
    for (const auto& m : snap.messages) messages.push_back(m.json());
    self.send(Message::from_json(core::reply_history(topic, snap.epoch, snap.last, messages, ref)));
  });
  h->read(cmd.topic, cmd.since, cmd.limit, std::move(answer));
}

void WsSession::presence(const core::Command& cmd) {
  auto& node = loop_.node();
  auto* p = node.presence();
  if (!p || !p->tracks(cmd.topic)) return refuse(CommandErrorCode::bad_request, "this topic has no presence", cmd.ref);
  // Answered under the store's order: events announced after this listing reach the loop after
  // it, and events announced before it (possibly by this loop, to itself) before it.
  // The reply stays within half of --max-outbound-bytes (truncated past it), so that no listing
  // closes its connection as a slow consumer.
  const std::size_t max_bytes = node.config().max_outbound_bytes / 2;
  auto answer = [weak = weak_from_this(), &loop = loop_, topic = cmd.topic, ref = cmd.ref, max_bytes](PresenceListing listing) {
    post_behind(loop.io(), [weak, topic, ref, max_bytes, listing = std::move(listing)] {
      if (auto self = weak.lock(); self && self->is_open())
        self->send(Message::from_json(core::reply_presence(topic, listing, ref, max_bytes)));
    });
  };
  p->list(cmd.topic, node.config().presence_max_users, std::move(answer));
}

void WsSession::run_custom(const Identity& who, json::object command, json::value ref) {
  auto deliver = on_this_loop([](WsSession& self, std::string text) { self.send(Message::from_json(text)); });
  auto once = std::make_shared<std::atomic<bool>>(false);
  Hooks::Reply reply = [once, deliver, ref](json::object r) mutable {
    if (once->exchange(true)) return;
    const auto* type = r.if_contains("type");
    if (!type || !type->is_string()) {
      spdlog::error("action hook replied without a string \"type\"; reply dropped");
      return;
    }
    if (!ref.is_null() && !r.contains("ref")) r["ref"] = ref;
    deliver(json::serialize(r));
  };
  try {
    loop_.node().hooks().on_action(ConnectionInfo{id(), who}, command, std::move(reply));
  } catch (const std::exception& e) {
    spdlog::error("action hook failed: {}", e.what());
  }
}

void WsSession::handle_peer_close(std::uint16_t code) {
  discard_input_ = true;
  if (state_ != State::open) return finish();  // answer to our own close frame
  const auto echo = code == 1005 ? CloseCode::normal : static_cast<CloseCode>(code);
  close_with_frame(echo, {});
}

void WsSession::fail(core::FrameError error) {
  loop_.node().metrics().protocol_errors.fetch_add(1, std::memory_order_relaxed);
  close(core::close_code_for(error), core::to_string(error));
  discard_input_ = true;
}

void WsSession::send(const Message& message) {
  if (!pusher_app_) return deliver(message);
  // Built once per message, on the first Pusher recipient, and shared by the others.
  const auto& pusher = message.alternate(&pusher_form);
  if (!pusher.message || pusher.excluded == id()) return;
  if (!pusher.excluded_user.empty()) {
    const Identity* who = loop_.registry().identity_of(id());
    if (!who || who->user_id == pusher.excluded_user) return;
  }
  deliver(pusher.message);
}

void WsSession::deliver(const Message& message) {
  // Deliveries are counted in messages_sent by the fan-out.
  if (deflate_window_bits_ == 0) {
    if (admit(message)) enqueue(message);
    return;
  }
  const Message chosen = message.compressed_for(deflate_window_bits_);  // shared by every such recipient
  if (admit(chosen)) enqueue(chosen);
}

bool WsSession::admit(const Message& message) {
  if (state_ != State::open) return false;
  auto& node = loop_.node();
  if (core::fits_outbound(queued_bytes_, message.frame_bytes(), node.config().max_outbound_bytes)) return true;
  // Drop what has not started to leave and close, rather than grow.
  node.metrics().slow_consumer_disconnects.fetch_add(1, std::memory_order_relaxed);
  const std::size_t keep = head_offset_ > 0 ? head_ + 1 : head_;
  node.metrics().dropped_messages.fetch_add(queue_.size() - keep + 1, std::memory_order_relaxed);
  for (std::size_t i = keep; i < queue_.size(); ++i) queued_bytes_ -= queue_[i].frame_bytes();
  queue_.resize(keep);
  close(CloseCode::policy_violation, "slow consumer");
  return false;
}

void WsSession::close(CloseCode code, std::string_view reason) {
  if (state_ != State::open) return;
  if (pusher_app_ && static_cast<int>(code) < 4000) {
    // Pusher clients reconnect after any close below 4000: say what they should do instead.
    const int pusher_code = core::pusher::close_code_for(static_cast<int>(code));
    enqueue(Message::from_json(core::pusher::error(pusher_code, reason)));  // beside the close frame, unlimited
    code = static_cast<CloseCode>(pusher_code);
  }
  close_with_frame(code, reason);
}

void WsSession::close_with_frame(CloseCode code, std::string_view reason) {
  if (state_ != State::open) return;
  state_ = State::closing;
  ping_sent_at_or_close_deadline_ = Clock::now() + close_grace;
  enqueue(Message::from_wire(core::encode_close_frame(code, reason)));
  shutdown_after_flush_ = true;
  loop_.track_closing(shared_from_this());
  // Leave the indexes on a later turn: close() may run inside a delivery over those indexes.
  asio::post(loop_.io(), [self = shared_from_this()] { self->unregister(); });
}

void WsSession::enqueue(const Message& message) {
  if (finished_) return;
  // The queue is released whenever it drains (idle connections hold none); start it at a size
  // that holds a typical burst rather than growing 1, 2, 4, ... on every burst.
  if (queue_.capacity() == 0) queue_.reserve(initial_queue_capacity);
  queue_.push_back(message);
  queued_bytes_ += message.frame_bytes();
  if (!flush_scheduled_ && !waiting_writable_) {
    flush_scheduled_ = true;
    loop_.schedule_flush(shared_from_this());
  }
}

void WsSession::flush() {
  flush_scheduled_ = false;
  if (finished_ || waiting_writable_) return;
  if (tls_) return flush_tls();
  while (head_ < queue_.size()) {
    std::array<iovec, max_gather> buffers;
    std::size_t n = 0;
    for (std::size_t i = head_; i < queue_.size() && n < max_gather; ++i, ++n) {
      auto frame = queue_[i].frame();
      if (i == head_) frame.remove_prefix(head_offset_);
      buffers[n] = {const_cast<char*>(frame.data()), frame.size()};
    }
    msghdr msg{};
    msg.msg_iov = buffers.data();
    msg.msg_iovlen = n;
    ssize_t written;
    do {
      written = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);  // no SIGPIPE in an embedding application
    } while (written < 0 && errno == EINTR);
    if (written < 0) return would_block(errno) ? do_wait_writable() : finish();
    loop_.node().metrics().bytes_sent.fetch_add(static_cast<std::size_t>(written), std::memory_order_relaxed);
    consume_written(static_cast<std::size_t>(written));
  }
  release_queue();
  if (shutdown_after_flush_) shutdown_send();
}

void WsSession::flush_tls() {
  // Frames move into the outbox as they are copied (consume_written), so --max-outbound-bytes
  // counts what is still queued; the outbox adds at most max_tls_outbox to it.
  while (true) {
    if (tls_->outbox_empty()) {
      if (head_ == queue_.size()) break;
      tls_->outbox.clear();
      tls_->outbox_offset = 0;
      std::size_t copied = 0;
      for (std::size_t i = head_; i < queue_.size() && copied < max_tls_outbox; ++i) {
        auto frame = queue_[i].frame();
        if (i == head_) frame.remove_prefix(head_offset_);
        frame = frame.substr(0, max_tls_outbox - copied);
        tls_->outbox.append(frame.data(), frame.size());
        copied += frame.size();
      }
      consume_written(copied);
    }
    const auto r = tls_->write_outbox();
    if (r.status == TlsLink::Status::want_write) return do_wait_writable();
    if (r.status != TlsLink::Status::ok) {
      // want_read cannot happen with renegotiation off; closed or failed: the peer is gone.
      if (r.status == TlsLink::Status::failed) spdlog::debug("TLS write on {} failed: {}", id(), tls_->last_error());
      return finish();
    }
    loop_.node().metrics().bytes_sent.fetch_add(r.bytes, std::memory_order_relaxed);
  }
  release_queue();
  tls_->release_outbox();
  if (shutdown_after_flush_) shutdown_send();
}

void WsSession::shutdown_send() {
  shutdown_after_flush_ = false;
  if (tls_) tls_->send_close_notify();
  ::shutdown(fd_, SHUT_WR);
}

void WsSession::do_wait_writable() {
  waiting_writable_ = true;
  update_interest();
}

void WsSession::consume_written(std::size_t bytes) {
  while (bytes > 0 && head_ < queue_.size()) {
    const std::size_t remaining = queue_[head_].frame_bytes() - head_offset_;
    if (bytes < remaining) {
      head_offset_ += static_cast<std::uint32_t>(bytes);
      return;
    }
    bytes -= remaining;
    queued_bytes_ -= queue_[head_].frame_bytes();
    queue_[head_] = Message();  // drop our reference to the shared frame now
    ++head_;
    head_offset_ = 0;
  }
  // A long backlog: reclaim the written prefix so the vector does not only grow.
  if (head_ >= 64 && head_ * 2 >= queue_.size()) {
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
}

void WsSession::release_queue() {
  std::vector<Message>().swap(queue_);  // idle connections keep no write buffer
  head_ = 0;
  head_offset_ = 0;
  queued_bytes_ = 0;
}

void WsSession::check_idle(Clock::time_point now, std::chrono::system_clock::time_point wall_now,
                           const std::optional<std::int64_t>& token_exp) {
  if (state_ != State::open) return;
  auto& node = loop_.node();
  if (core::token_expired(token_exp, wall_now)) {
    node.metrics().token_expired_disconnects.fetch_add(1, std::memory_order_relaxed);
    return close(CloseCode::token_expired, "token expired");
  }
  const core::Liveness liveness{last_activity_, ping_outstanding_, ping_sent_at_or_close_deadline_};
  switch (core::idle_action(liveness, now, node.config().idle_timeout)) {
    case core::IdleAction::none: return;
    case core::IdleAction::ping:
      ping_outstanding_ = true;
      ping_sent_at_or_close_deadline_ = now;
      return deliver(node.ping_frame());
    case core::IdleAction::close:
      node.metrics().idle_disconnects.fetch_add(1, std::memory_order_relaxed);
      return close(CloseCode::policy_violation, "idle timeout");
  }
}

bool WsSession::close_expired(Clock::time_point now) {
  if (finished_) return true;
  if (now < ping_sent_at_or_close_deadline_) return false;
  finish();
  return true;
}

void WsSession::unregister() {
  if (!registered_) return;
  registered_ = false;
  auto& node = loop_.node();
  node.metrics().connections.fetch_sub(1, std::memory_order_relaxed);
  if (deflate_window_bits_ != 0) {
    node.metrics().compressed_connections.fetch_sub(1, std::memory_order_relaxed);
    if (client_context_takeover_) loop_.drop_inflater(this);
  }
  // The slot HttpSession::handle_upgrade took (--max-connections): free once the session leaves.
  const Identity* who = loop_.registry().identity_of(id());
  // A Pusher connection was admitted under its socket id (its user comes later, if at all).
  if (pusher_app_) node.release_connection(id());
  else if (who) node.release_connection(who->user_id);
  const auto& hook = node.hooks().on_disconnect;
  if (!hook) {
    loop_.registry().unregister_connection(id());  // may drop the registry's reference to us
    return;
  }
  // The hook runs once the connection has left every index, with the identity it had.
  std::optional<Identity> last = who ? std::optional<Identity>(*who) : std::nullopt;
  loop_.registry().unregister_connection(id());
  if (!last) return;
  try {
    hook(ConnectionInfo{id(), *last});
  } catch (const std::exception& e) {
    spdlog::error("disconnect hook failed: {}", e.what());
  }
}

void WsSession::finish() {
  if (finished_) return;
  auto self = shared_from_this();  // unregistering may release the last other reference
  finished_ = true;
  loop_.node().session_finished();
  state_ = State::closed;
  unregister();
  const std::size_t pending = queue_.size() - head_;
  if (pending > 0) loop_.node().metrics().dropped_messages.fetch_add(pending, std::memory_order_relaxed);
  release_queue();
  partial_.reset();
  tls_.reset();
  if (polled_) loop_.poller().remove(fd_, slot_);
  polled_ = false;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

}  // namespace boundary::realtime::shell
