#pragma once
// The single-node broker: there are no other nodes, so a fan-out reaches nobody and answers at
// once (count 0, reached). The server skips fan-out entirely when distributed() is false, so a
// single node pays nothing for cluster mode. Also the reference for the Broker port's contract.

#include "boundary/realtime/ports/broker.hpp"

namespace boundary::realtime::shell {

class BrokerMemory final : public Broker {
 public:
  void set_handler(Handler) override {}
  void start() override {}
  bool distributed() const noexcept override { return false; }
  bool connected() const noexcept override { return true; }
  void publish(Fanout, bool, Done done) override {
    if (done) done(FanoutResult{});
  }
  void set_interest(Route, std::string_view, bool) override {}
  void when_ready(std::function<void()> ready) override {
    if (ready) ready();
  }
};

}  // namespace boundary::realtime::shell
