#pragma once
// Application hooks: what an embedding application decides about its connections. Every hook is
// optional; an unset hook keeps the server's default behaviour.
//
// Threading: hooks run on the event loop that owns the connection, one call at a time per
// connection, and must not block (no database or HTTP call inline: answer later through
// `decide` / `reply`, which may be called from any thread). A hook that throws is treated as a
// refusal (on_connect, on_subscribe) or as no reply (on_action), and logged.
//
// ConnectionInfo is valid during the call only: copy what you keep.

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "boundary/realtime/identity.hpp"

namespace boundary::realtime {

struct ConnectionInfo {
  std::string_view connection_id;
  const Identity& identity;  // identity.app_data() is what on_connect attached
};

// on_connect's answer. Refused: the upgrade is answered 403 {"error": reason} and no connection
// is registered. Accepted: `app_data` is kept with the connection's identity for its lifetime
// (Identity::app_data()), costing nothing when empty.
struct ConnectDecision {
  bool accept = true;
  std::string reason;
  std::shared_ptr<const void> app_data;

  static ConnectDecision allow(std::shared_ptr<const void> data = {}) { return {true, {}, std::move(data)}; }
  static ConnectDecision refuse(std::string reason) { return {false, std::move(reason), {}}; }
};

struct Hooks {
  // Called exactly once with the decision; any thread, now or later.
  using Decide = std::function<void(bool allowed)>;
  // Sends one JSON object to the connection that sent the command; "ref" is copied from the
  // command when the reply has none. Any thread; at most once (later calls are ignored), and
  // dropped when the connection has gone.
  using Reply = std::function<void(boost::json::object reply)>;

  // After the token verified, before the upgrade is answered.
  std::function<ConnectDecision(const ConnectionInfo&)> on_connect;
  // Once per accepted connection, after it left every index (closed by either side, by the API,
  // or by shutdown).
  std::function<void(const ConnectionInfo&)> on_disconnect;
  // A client's `subscribe` that the built-in rules (user:/role: topics, --max-subscriptions)
  // allowed: this is where an application authorizes topics per user. Refused → the client gets
  // `forbidden`. Not called for subscriptions made through the HTTP or C++ API (backends are
  // trusted) nor for a topic the connection already has.
  std::function<void(const ConnectionInfo&, std::string_view topic, Decide decide)> on_subscribe;
  // A client command whose "action" the server does not know (`{"action":"<name>",...}`), after
  // the command rate limit. Without this hook such a command is answered `bad-request`.
  std::function<void(const ConnectionInfo&, const boost::json::object& command, Reply reply)> on_action;
};

}  // namespace boundary::realtime
