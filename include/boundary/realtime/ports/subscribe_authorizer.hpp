#pragma once
// Port: asks someone else (the application's backend) whether a connection may subscribe to a
// topic, after the built-in rule allowed it (--subscribe-policy proxy).
// Guarantees of every adapter: `done` is called at most once, on the event loop that asked, and
// never from inside authorize(); every failure (unreachable, timeout, overload) is a refusal;
// the number of questions in flight is bounded and a question past the bound is refused at once,
// never queued.

#include <functional>
#include <string>

namespace boundary::realtime {

struct SubscribeQuestion {
  std::string user_id;
  std::string connection_id;
  std::string topic;
};

class SubscribeAuthorizer {
 public:
  using Done = std::function<void(bool allowed)>;
  virtual ~SubscribeAuthorizer() = default;
  virtual void authorize(SubscribeQuestion question, Done done) = 0;
};

}  // namespace boundary::realtime
