#pragma once
// The Pusher HTTP API (docs/pusher.md "HTTP API"): /apps/<id>/... requests signed with the app's
// secret, carried out on the same hub and presence store as the native API. No Beast here: the
// HTTP session hands over the request's method, target and body.

#include <string>

#include "boundary/realtime/server.hpp"

namespace boundary::realtime::shell {

class Node;

struct PusherApiRequest {
  std::string method;
  std::string target;  // path and query, as received
  std::string body;
};

// Answers through `reply`, on any thread (Server::Responder posts to the session's loop).
void handle_pusher_api(Node& node, PusherApiRequest request, Server::Responder reply);

}  // namespace boundary::realtime::shell
