#include "shell/adapters/history_redis.hpp"

#include "core/history_redis.hpp"
#include "shell/adapters/broker_redis.hpp"
#include "shell/adapters/random.hpp"
#include "shell/metrics.hpp"

namespace boundary::realtime::shell {
namespace {

std::string ttl_ms(const core::HistoryRule& rule) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(rule.ttl).count());
}

std::vector<std::string> keys_of(const std::string& prefix, std::string_view topic) {
  auto k = core::stream_keys(prefix, topic);
  return {std::move(k.meta), std::move(k.list)};
}

}  // namespace

HistoryRedis::HistoryRedis(core::HistoryRules rules, BrokerRedis& broker, std::string prefix, Metrics* metrics)
    : rules_(std::move(rules)), broker_(broker), prefix_(std::move(prefix)), metrics_(metrics) {
  broker_.set_stream_tap([this](const Fanout& f) { on_stream(f); });
}

void HistoryRedis::failed() noexcept {
  if (metrics_) metrics_->history_failures.fetch_add(1, std::memory_order_relaxed);
}

void HistoryRedis::append(std::string_view, const Encode& encode, const Publish& publish) { publish(encode(0), 0); }

void HistoryRedis::append_delivered(std::string_view topic, HistoryTemplate message, bool wait, Sent sent) {
  const core::HistoryRule* rule = rules_.find(topic);
  if (!rule) return sent(0, FanoutResult{false, 0, false}, false);
  std::vector<std::string> args{std::move(message.head), std::move(message.tail), std::to_string(rule->size),
                                ttl_ms(*rule), random_hex(8)};
  broker_.stream_script(std::string(topic), core::history_append_script, keys_of(prefix_, topic), std::move(args), wait,
                        [sent = std::move(sent)](const core::RespValue* r, FanoutResult result, bool lost) {
                          using K = core::RespValue::Kind;
                          std::uint64_t offset = 0;
                          if (r && r->kind == K::array && !r->elements.empty() && r->elements[0].kind == K::integer &&
                              r->elements[0].integer > 0)
                            offset = static_cast<std::uint64_t>(r->elements[0].integer);
                          if (offset == 0) result = FanoutResult{false, 0, false};
                          sent(offset, result, offset == 0 && lost);
                        });
}

void HistoryRedis::on_stream(const Fanout& f) {
  if (noting_.empty()) return;
  auto [from, to] = noting_.equal_range(f.target);
  if (from == to) return;
  auto body = core::decode_stream_body(f.body);
  if (!body) return;
  const Message m = Message::from_json(body->json);
  for (auto it = from; it != to; ++it) it->second->messages.emplace_back(body->offset, m);
}

void HistoryRedis::attach(std::string_view topic, const std::optional<HistoryRecover>& recover, const Join& join) {
  const core::HistoryRule* rule = rules_.find(topic);
  if (!rule) {
    join(HistorySnapshot{});
    return;
  }
  const std::uint64_t from = recover ? recover->offset : 0;
  std::vector<std::string> args{"open", random_hex(8), ttl_ms(*rule), std::to_string(from),
                                std::to_string(core::max_redis_replay), recover ? recover->epoch : std::string()};
  if (!recover) args[3] = std::to_string(std::numeric_limits<std::uint64_t>::max());  // no replay wanted
  broker_.run([this, topic = std::string(topic), recover, join, from, args = std::move(args)]() mutable {
    steps_[topic].push_back(Step{true, false, {}});
    // Once the node's subscription to the topic is in effect, everything published later reaches
    // this node: note it from then until the read's reply.
    broker_.when_ready([this, topic = std::move(topic), recover, join, from, args = std::move(args)]() mutable {
      read_for_attach(std::move(topic), recover, join, from, std::move(args));
    });
  });
}

void HistoryRedis::read_for_attach(std::string topic, const std::optional<HistoryRecover>& recover, const Join& join_fn,
                                   std::uint64_t from, std::vector<std::string> args) {
  {
    const Join join = [this, topic, join_fn](const HistorySnapshot& snap) {
      join_fn(snap);
      joined(topic);
    };
    auto noted = std::make_shared<Noted>();
    noting_.emplace(topic, noted);
    broker_.topic_script(topic, core::history_read_script, keys_of(prefix_, topic), std::move(args),
                         [this, topic, noted, recover, join, from](const core::RespValue* r) {
                           for (auto [a, b] = noting_.equal_range(topic); a != b; ++a)
                             if (a->second == noted) {
                               noting_.erase(a);
                               break;
                             }
                           HistorySnapshot snap;
                           auto read = r ? core::parse_stream_read(*r, recover ? from : ~std::uint64_t{0}) : std::nullopt;
                           if (!read || read->epoch.empty()) {
                             failed();
                             snap.available = false;
                             return join(snap);
                           }
                           snap.epoch = read->epoch;
                           snap.last = read->last;
                           if (recover) {
                             auto d = core::decide_recovery(read->state(), core::RecoverFrom{recover->offset, recover->epoch});
                             snap.recovered = d.recovered;
                             if (d.recovered)
                               for (const auto& e : read->entries)
                                 if (e.offset >= d.replay.from && e.offset <= d.replay.to)
                                   snap.messages.push_back(Message::from_json(e.json));
                             if (d.recovered && snap.messages.size() != d.replay.size()) {
                               snap.recovered = false;  // the reply did not hold the whole gap
                               snap.messages.clear();
                             }
                           }
                           // Delivered on this node after the read: already posted to the loops,
                           // so part of what the subscriber starts after.
                           for (auto& [offset, m] : noted->messages) {
                             if (offset != snap.last + 1) continue;
                             if (snap.recovered) snap.messages.push_back(std::move(m));
                             snap.last = offset;
                           }
                           join(snap);
                         });
  }
}

void HistoryRedis::joined(const std::string& topic) {
  auto it = steps_.find(topic);
  if (it == steps_.end()) return;
  auto& steps = it->second;
  for (auto& s : steps)
    if (s.attach && !s.joined) {
      s.joined = true;
      break;
    }
  while (!steps.empty() && (!steps.front().attach || steps.front().joined)) {
    auto fn = std::move(steps.front().fn);
    steps.pop_front();
    if (fn) fn();
  }
  if (steps.empty()) steps_.erase(topic);  // `it` may be stale if fn touched steps_
}

void HistoryRedis::after_attaches(std::string_view topic, std::function<void()> fn) {
  broker_.run([this, topic = std::string(topic), fn = std::move(fn)]() mutable {
    auto it = steps_.find(topic);
    if (it == steps_.end()) return fn();
    it->second.push_back(Step{false, false, std::move(fn)});
  });
}

void HistoryRedis::read(std::string_view topic, std::uint64_t since, std::size_t limit, Done done) {
  const core::HistoryRule* rule = rules_.find(topic);
  if (!rule) return done(HistorySnapshot{});
  std::vector<std::string> args{"read", "", ttl_ms(*rule), std::to_string(since), std::to_string(limit), ""};
  broker_.topic_script(std::string(topic), core::history_read_script, keys_of(prefix_, topic), std::move(args),
                       [this, since, done = std::move(done)](const core::RespValue* r) {
                         HistorySnapshot snap;
                         auto read = r ? core::parse_stream_read(*r, since) : std::nullopt;
                         if (!read) {
                           failed();
                           snap.available = false;
                           return done(std::move(snap));
                         }
                         snap.epoch = read->epoch;
                         snap.last = read->last;
                         for (const auto& e : read->entries) snap.messages.push_back(Message::from_json(e.json));
                         done(std::move(snap));
                       });
}

}  // namespace boundary::realtime::shell
