#include "shell/hub.hpp"

#include <atomic>
#include <chrono>

#include <boost/asio/post.hpp>

#include "core/envelope.hpp"
#include "core/history_redis.hpp"
#include "shell/loop.hpp"
#include "shell/metrics.hpp"

namespace boundary::realtime::shell {
namespace asio = boost::asio;
namespace json = boost::json;

namespace {

std::size_t close_all(const std::vector<Connection*>& connections) {
  std::size_t n = 0;
  for (Connection* c : connections) {
    if (!c->is_open()) continue;
    c->close(CloseCode::normal, "disconnected by the server");
    ++n;
  }
  return n;
}

bool carries_message(Route r) {
  return r == Route::user || r == Route::role || r == Route::topic || r == Route::all || r == Route::connection;
}

constexpr std::size_t answer(SubscribeAnswer a) { return static_cast<std::size_t>(a); }

}  // namespace

Hub::Hub(std::vector<std::unique_ptr<Loop>>& loops, Broker& broker, Metrics& metrics, std::size_t max_subscriptions,
         HistoryStore* history)
    : loops_(loops), broker_(broker), metrics_(metrics), max_subscriptions_(max_subscriptions), history_(history) {
  if (!broker_.distributed()) return;
  broker_.set_handler([this](const Fanout& f, Broker::Answer a) { deliver_remote(f, std::move(a)); });
  for (auto& l : loops_)
    l->registry().set_index_observer([this](ConnectionRegistry::IndexKind k, std::string_view name, bool created) {
      index_changed(k, name, created);
    });
}

void Hub::set_topic_observer(TopicObserver observer) {
  topic_observer_ = std::move(observer);
  if (broker_.distributed()) return;  // the interests already follow every index
  // A single node follows its topics only for this observer (no per-connect cost otherwise).
  for (auto& l : loops_)
    l->registry().set_index_observer([this](ConnectionRegistry::IndexKind k, std::string_view name, bool created) {
      if (k == ConnectionRegistry::IndexKind::topic) index_changed(k, name, created);
    });
}

Hub::~Hub() {
  detach();
  // Nothing may report to the hub any more (the loops are stopped by now).
  for (auto& l : loops_) l->registry().set_index_observer({});
}

void Hub::index_changed(ConnectionRegistry::IndexKind kind, std::string_view name, bool created) {
  using K = ConnectionRegistry::IndexKind;
  const Route route = kind == K::user ? Route::user : kind == K::role ? Route::role : Route::topic;
  std::string key(1, static_cast<char>(route));
  key += name;
  // Held while telling the broker, so that its calls for one name keep the order of the changes.
  std::lock_guard lock(interests_mutex_);
  const bool tell_broker = broker_.distributed();
  if (created) {
    if (interest_refs_[key]++ != 0) return;
    if (tell_broker) broker_.set_interest(route, name, true);
  } else if (auto it = interest_refs_.find(key); it != interest_refs_.end() && --it->second == 0) {
    interest_refs_.erase(it);
    if (tell_broker) broker_.set_interest(route, name, false);
  } else {
    return;
  }
  if (route == Route::topic && topic_observer_) topic_observer_(name, created);
}

std::shared_ptr<void> Hub::pin(std::string_view topic) {
  if (!distributed()) return nullptr;
  struct Pin {
    Pin(Hub& h, std::string_view t) : hub(h), attached(h.attached_), topic(t) {
      hub.index_changed(ConnectionRegistry::IndexKind::topic, topic, true);
    }
    Pin(const Pin&) = delete;
    Pin& operator=(const Pin&) = delete;
    ~Pin() {
      if (*attached) hub.index_changed(ConnectionRegistry::IndexKind::topic, topic, false);
    }
    Hub& hub;
    const std::shared_ptr<bool> attached;
    const std::string topic;
  };
  return std::make_shared<Pin>(*this, topic);
}

void Hub::on_every_loop(Work work, std::function<void(std::size_t)> done) {
  struct Gather {
    std::atomic<std::size_t> remaining;
    std::atomic<std::size_t> total{0};
    Work work;
    std::function<void(std::size_t)> done;
  };
  auto g = std::make_shared<Gather>();
  g->remaining = loops_.size();
  g->work = std::move(work);
  g->done = std::move(done);
  for (auto& l : loops_) {
    asio::post(l->io(), [g, &loop = *l] {
      g->total.fetch_add(g->work(loop), std::memory_order_relaxed);
      if (g->remaining.fetch_sub(1, std::memory_order_acq_rel) == 1 && g->done) g->done(g->total.load());
    });
  }
}

Hub::Work Hub::work_for(const Fanout& f, Message m, std::uint64_t offset) const {
  // Deliveries are counted once per fan-out on a loop, not once per recipient: one atomic add
  // instead of ten thousand for a broadcast.
  auto sent = [&metrics = metrics_](std::size_t n) {
    metrics.messages_sent.fetch_add(n, std::memory_order_relaxed);
    return n;
  };
  switch (f.route) {
    case Route::user: return [m, sent, t = f.target](Loop& l) { return sent(l.registry().send_to_user(t, m)); };
    case Route::role: return [m, sent, t = f.target](Loop& l) { return sent(l.registry().send_to_role(t, m)); };
    case Route::topic:
    case Route::stream:
      return [m, sent, t = f.target, offset](Loop& l) { return sent(l.registry().publish(t, m, offset)); };
    case Route::all: return [m, sent](Loop& l) { return sent(l.registry().broadcast(m)); };
    case Route::connection:
      return [m, sent, t = f.target](Loop& l) { return sent(l.registry().send_to_connection(t, m) ? 1 : 0); };
    case Route::subscribe:
      // Backends are trusted with any topic, but --max-subscriptions bounds every connection.
      return [id = f.target, topic = f.body, max = max_subscriptions_](Loop& l) -> std::size_t {
        using R = ConnectionRegistry::SubscribeResult;
        auto* c = l.registry().find(id);
        if (!c || !c->is_open()) return answer(SubscribeAnswer::unknown_connection);
        switch (l.registry().subscribe(id, topic, max)) {
          case R::subscribed:
          case R::already_subscribed: return answer(SubscribeAnswer::subscribed);
          case R::limit_reached: return answer(SubscribeAnswer::limit_reached);
          case R::unknown_connection: break;
        }
        return answer(SubscribeAnswer::unknown_connection);
      };
    case Route::unsubscribe:
      return [id = f.target, topic = f.body](Loop& l) -> std::size_t {
        return l.registry().unsubscribe(id, topic) ? 1 : 0;
      };
    case Route::disconnect:
      return [id = f.target](Loop& l) -> std::size_t {
        Connection* c = l.registry().find(id);
        return c ? close_all({c}) : 0;
      };
    case Route::disconnect_user:
      return [t = f.target](Loop& l) { return close_all(l.registry().find_by_user(t)); };
    case Route::count: return [](Loop& l) { return l.registry().count(); };
    case Route::topic_count: return [t = f.target](Loop& l) { return l.registry().subscriber_count(t); };
    case Route::presence: break;  // the presence store's (deliver_remote)
  }
  return [](Loop&) { return std::size_t{0}; };
}

void Hub::send(Route route, std::string target, json::object message, SendOptions options, SendDone done) {
  if (route == Route::topic && history_ && history_->keeps(target)) {
    if (history_->delivers()) return send_stream(std::move(target), std::move(message), options, std::move(done));
    const auto now = std::chrono::system_clock::now();
    auto encode = [&](std::uint64_t offset) {
      if (offset != 0) message["offset"] = offset;
      return core::make_envelope(std::move(message), now, target);
    };
    auto publish = [&](const Message& m, std::uint64_t offset) {
      Fanout f{route, target, distributed() ? std::string(m.json()) : std::string()};
      auto work = work_for(f, m, offset);
      auto answer = [offset, done = std::move(done)](Delivery d) {
        d.offset = offset;
        if (done) done(d);
      };
      dispatch(std::move(f), std::move(work), options, std::move(answer));
    };
    history_->append(target, encode, publish);
    return;
  }
  auto m = core::make_envelope(std::move(message), std::chrono::system_clock::now(),
                               route == Route::topic ? std::string_view(target) : std::string_view());
  // The body (enveloped JSON) is copied only when other nodes exist.
  Fanout f{route, std::move(target), distributed() ? std::string(m.json()) : std::string()};
  auto work = work_for(f, std::move(m));
  dispatch(std::move(f), std::move(work), options, std::move(done));
}

// Cluster mode with history in Redis: the store's script assigns the offset and publishes to every
// node, this one included, so the message is not delivered here directly (that could put it
// before a lower offset published through another node).
void Hub::send_stream(std::string topic, json::object message, SendOptions options, SendDone done) {
  const auto now = std::chrono::system_clock::now();
  auto tmpl = core::stream_template(message, now, topic);
  auto without_history = [this, topic, options, now](json::object message, SendDone done) {
    message.erase("offset");
    auto m = core::make_envelope(std::move(message), now, topic);
    Fanout f{Route::topic, topic, std::string(m.json())};
    auto work = work_for(f, std::move(m));
    dispatch(std::move(f), std::move(work), options, std::move(done));
  };
  if (!tmpl) return without_history(std::move(message), std::move(done));
  history_->append_delivered(
      topic, std::move(*tmpl), options.wait,
      [this, message = std::move(message), done = std::move(done), without_history, wait = options.wait](
          std::uint64_t offset, FanoutResult r, bool uncertain) mutable {
        if (offset == 0) {
          metrics_.history_failures.fetch_add(1, std::memory_order_relaxed);
          // The link to Redis failed after the script was sent: it may have run and published.
          // Sending it again could deliver it twice; the caller hears that it failed.
          if (uncertain) {
            if (done) done(Delivery{0, false});
            return;
          }
          // Not stored and not sent (Redis unreachable, or it refused the script): sent as on a
          // topic without history, through the cluster when it is reachable.
          return without_history(std::move(message), std::move(done));
        }
        if (done) done(Delivery{r.count, r.reached, !wait, offset});
      });
}

void Hub::publish_local(std::string topic, Message message) {
  on_every_loop(work_for(Fanout{Route::topic, std::move(topic), {}}, std::move(message)), {});
}

void Hub::control(Route route, std::string target, std::string topic, SendOptions options, SendDone done) {
  if (route == Route::count && !distributed()) {
    if (done) done(Delivery{connection_count()});
    return;
  }
  Fanout f{route, std::move(target), std::move(topic)};
  auto work = work_for(f, {});
  dispatch(std::move(f), std::move(work), options, std::move(done));
}

void Hub::dispatch(Fanout f, Work work, SendOptions options, SendDone done) {
  if (!distributed()) {
    on_every_loop(std::move(work), [done = std::move(done)](std::size_t n) {
      if (done) done(Delivery{n});
    });
    return;
  }
  if (!options.wait && broker_.connected()) {
    on_every_loop(std::move(work), {});
    broker_.publish(std::move(f), false, {});
    if (done) done(Delivery{0, true, true});
    return;
  }
  // Local and remote counts arrive on different threads; the second one answers.
  struct Join {
    std::atomic<int> remaining{2};
    std::size_t local = 0;
    FanoutResult remote;
    SendDone done;
  };
  auto j = std::make_shared<Join>();
  j->done = std::move(done);
  auto finish = [j] {
    if (j->remaining.fetch_sub(1, std::memory_order_acq_rel) == 1 && j->done)
      j->done(Delivery{j->local + j->remote.count, j->remote.reached});
  };
  const bool barrier = f.route == Route::subscribe;
  on_every_loop(std::move(work), [this, j, finish, barrier](std::size_t n) {
    j->local = n;
    // A subscription made here answers once it is in effect cluster-wide.
    if (barrier && n == answer(SubscribeAnswer::subscribed)) return broker_.when_ready(finish);
    finish();
  });
  broker_.publish(std::move(f), true, [j, finish](FanoutResult r) {
    j->remote = r;
    finish();
  });
}

void Hub::deliver_remote(const Fanout& f, Broker::Answer reply) {
  if (f.route == Route::count) return reply(connection_count());
  if (f.route == Route::presence) return reply(0);  // for the presence store (BrokerRedis hands it over)
  if (f.route == Route::stream) {
    auto body = core::decode_stream_body(f.body);
    if (!body) return reply(0);
    const Fanout topic{Route::topic, f.target, {}};
    on_every_loop(work_for(topic, Message::from_json(body->json), body->offset), std::move(reply));
    return;
  }
  Message m = carries_message(f.route) ? Message::from_json(f.body) : Message();
  if (f.route == Route::subscribe) {
    on_every_loop(work_for(f, std::move(m)), [this, reply = std::move(reply)](std::size_t n) {
      if (n != answer(SubscribeAnswer::subscribed)) return reply(n);
      broker_.when_ready([reply, n] { reply(n); });
    });
    return;
  }
  on_every_loop(work_for(f, std::move(m)), std::move(reply));
}

std::size_t Hub::connection_count() const noexcept {
  const auto n = metrics_.connections.load(std::memory_order_relaxed);
  return n > 0 ? static_cast<std::size_t>(n) : 0;
}

}  // namespace boundary::realtime::shell
