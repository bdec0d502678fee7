#pragma once
// Command-line options of realtime-loadgen. `--help` prints them with their defaults.

#include <cstdint>
#include <string>
#include <vector>

#include "ws_client.hpp"

namespace loadgen {

enum class Scenario { connect, fanout, broadcast, users, storm };
enum class Via { api, ws };

struct Options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 3000;
  std::vector<std::uint16_t> ports;  // --ports: client i connects to ports[i % size]; empty = port
  std::string secret;   // HS256 secret: one token per connection, user-id u<offset+i>
  std::string token;    // or one ready-made token for every connection
  std::string api_key;
  std::string roles = "bench";
  std::string topic = "bench";
  std::string pusher_key = "bench-key";  // --protocol pusher: the app key in /app/<key>
  std::string path;  // plain-ws: request target (default /); socketio: Socket.IO path (default /socket.io/)
  Scenario scenario = Scenario::connect;
  Via via = Via::api;
  Protocol protocol = Protocol::realtime;
  std::size_t connections = 1000;
  std::size_t messages = 100;
  std::size_t size = 100;         // bytes of the message object the publisher sends
  std::size_t in_flight = 500;    // handshakes in progress at once
  std::size_t source_ips = 254;   // 127.0.0.1..N as source addresses (loopback targets only)
  std::size_t id_offset = 0;      // user ids start at u<id_offset> (several processes, one server)
  double rate = 0;                // messages/s from the publisher; 0 = next send after each reply
  bool no_wait = false;           // API bodies carry "wait": false (cluster fire-and-forget)
  std::size_t window = 1;         // requests awaiting their reply at once (per API connection)
  std::size_t api_connections = 1;  // --via api: keep-alive connections the publisher spreads requests over
  std::size_t batch = 0;          // --via api: messages per POST /api/batch request (0: one per request)
  double duration = 10;           // seconds (users scenario: messages = rate * duration)
  std::size_t drop_after = 0;     // storm: drop every subscriber after this many sends (0: messages / 4)
  std::string storm_user = "storm";  // storm: the user id every subscriber's token carries
  double hold = 0;                // seconds to hold connections idle (connect scenario)
  double timeout = 120;           // overall deadline, seconds
  double drain = 10;              // seconds without progress after the last send before giving up
  double connect_timeout = 10;    // per handshake, seconds
  int server_pid = 0;
  bool quiet = false;
  bool tls = false;               // wss:// and https://
  bool compression = false;       // offer permessage-deflate (and require it)
};

// Throws std::invalid_argument with a message fit for the user. Exits 0 after --help.
Options parse_options(int argc, char** argv);

const char* to_string(Scenario s) noexcept;
const char* to_string(Protocol p) noexcept;

}  // namespace loadgen
