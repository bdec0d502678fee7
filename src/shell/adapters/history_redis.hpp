#pragma once
// History in Redis for cluster mode (docs/history.md, "Cluster mode"; keys and scripts in
// core/history_redis.hpp). Runs on the broker's links and thread:
// - append_delivered: one script on the topic's shard assigns the next offset, keeps the
//   message (trimmed to SIZE, expired after TTL) and publishes it as a stream fan-out. Every
//   node subscribed to the topic, the publishing one included, delivers it from its
//   subscription, so every node delivers a stream in offset order.
// - attach: once the node's subscription to the topic is confirmed (the caller pinned it, see
//   HistoryStore), one script reads the epoch, the last offset and the replay. Stream messages
//   this node receives between sending the read and handling its reply are noted (the broker's
//   stream tap) and added after what the read returned: `join` runs on the broker's thread
//   with every message up to `last`, and every later one is delivered after it.
// - read: the same script without creating the stream.
// Epochs and offsets live in Redis, so they are the same through every node and survive
// restarts of the nodes; an epoch changes when Redis loses the stream (TTL, eviction, a flush).

#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "boundary/realtime/ports/history_store.hpp"
#include "core/history.hpp"

namespace boundary::realtime::shell {

class BrokerRedis;
struct Metrics;

class HistoryRedis final : public HistoryStore {
 public:
  // Sets the broker's stream tap: construct before the broker starts.
  HistoryRedis(core::HistoryRules rules, BrokerRedis& broker, std::string prefix, Metrics* metrics);

  bool keeps(std::string_view topic) const noexcept override { return rules_.find(topic) != nullptr; }
  // Not used in cluster mode (delivers()); sends without history.
  void append(std::string_view topic, const Encode& encode, const Publish& publish) override;
  bool delivers() const noexcept override { return true; }
  void append_delivered(std::string_view topic, HistoryTemplate message, bool wait, Sent sent) override;
  void attach(std::string_view topic, const std::optional<HistoryRecover>& recover, const Join& join) override;
  void read(std::string_view topic, std::uint64_t since, std::size_t limit, Done done) override;
  void after_attaches(std::string_view topic, std::function<void()> fn) override;
  void expire() override {}  // Redis expires
  HistoryUsage usage() const override { return {}; }

 private:
  // Stream messages noted for one attach in flight.
  struct Noted {
    std::vector<std::pair<std::uint64_t, Message>> messages;
  };
  void on_stream(const Fanout& f);  // broker thread
  void read_for_attach(std::string topic, const std::optional<HistoryRecover>& recover, const Join& join,
                       std::uint64_t from, std::vector<std::string> args);  // broker thread
  void failed() noexcept;

  const core::HistoryRules rules_;
  BrokerRedis& broker_;
  const std::string prefix_;
  Metrics* metrics_;
  // Per topic, in call order: attaches not yet joined and the work that waits for them. A
  // topic's attaches join in the order they began (one shard, one link), so the front attach is
  // always the next to join.
  struct Step {
    bool attach = false;
    bool joined = false;
    std::function<void()> fn;  // !attach
  };
  void joined(const std::string& topic);

  // Broker thread only.
  std::unordered_multimap<std::string, std::shared_ptr<Noted>> noting_;
  std::unordered_map<std::string, std::deque<Step>> steps_;
};

}  // namespace boundary::realtime::shell
