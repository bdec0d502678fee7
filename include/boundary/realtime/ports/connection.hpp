#pragma once
// Port: one client connection as the routing core sees it. The server's WebSocket sessions
// implement it; RecordingConnection (testing/) records what it is sent.
//
// Guarantees every adapter gives: send() never blocks and never throws; messages sent to one
// connection are written in the order of the send() calls; a send() after close() is dropped;
// an adapter whose outbound queue passes its limit closes itself (1008) instead of growing.
// Calls come from the one event loop that owns the connection. send() and close() must not
// call back into the ConnectionRegistry synchronously (a delivery may be iterating over it):
// an adapter that leaves the registry on close does so on a later turn of its loop.

#include <string_view>

#include "boundary/realtime/errors.hpp"
#include "boundary/realtime/message.hpp"

namespace boundary::realtime {

class Connection {
 public:
  virtual ~Connection() = default;
  // UUID v4 text. The view stays valid and unchanged for the object's lifetime: the registry
  // keys its index with it instead of keeping a copy.
  virtual std::string_view id() const noexcept = 0;
  virtual bool is_open() const noexcept = 0;
  virtual void send(const Message& message) = 0;
  virtual void close(CloseCode code, std::string_view reason) = 0;
};

}  // namespace boundary::realtime
