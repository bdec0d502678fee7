#include "options.hpp"

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <algorithm>
#include <map>
#include <stdexcept>
#include <string_view>

namespace loadgen {

namespace {

constexpr const char* usage = R"(realtime-loadgen: load generator for Boundary Realtime (raw epoll, one thread)

Usage: realtime-loadgen --scenario connect|fanout|broadcast|users|storm [options]

  --host H              server address (default 127.0.0.1)
  --port P              server port (default 3000)
  --ports P1,P2,...     several nodes of one cluster: client i connects to port i mod count;
                        the publisher uses the first (default: --port only)
  --secret S            JWT HS256 secret: each connection gets a token for user u<offset+i>
  --token T             one ready-made JWT for every connection (instead of --secret)
  --api-key K           bearer key for /api/*
  --roles a,b           roles claim of minted tokens (default bench)
  --connections N       WebSocket clients (default 1000)
  --messages M          messages the publisher sends (default 100)
  --size S              bytes of each message object sent (default 100)
  --rate R              publisher messages/s (default 0: next send when the previous reply came)
  --duration D          seconds, users scenario: messages = rate * duration (default 10)
  --topic T             topic for fanout and storm (default bench)
  --via api|ws          fanout publisher: POST /api/publish, or a WebSocket `publish` command
  --no-wait             API publisher: add "wait": false to each body (cluster mode answers at
                        once, without gathering the other nodes' delivery counts)
  --window K            up to K requests awaiting their reply (default 1): `publish` commands
                        (--via ws) or pipelined HTTP requests per API connection (--via api);
                        with --rate 0 this publishes at full speed, K requests ahead
  --api-connections N   --via api: spread the requests over N keep-alive connections (default 1)
  --batch N             --via api, fanout: N messages per POST /api/batch request (at most
                        1000; default 0: one POST /api/publish per message)
  --protocol realtime|plain-ws|socketio|pusher
                        pusher: the Pusher protocol at /app/<--pusher-key>?protocol=7 (connect
                        and fanout: subscribers join --topic as a public channel; the publisher
                        is the native API, or with --via ws a native-protocol client);
                        plain-ws: any broadcast WebSocket server at ws://H:P<path>, no token;
                        the publisher is a client whose messages the server relays to all
                        (the others, or all: an echo to the publisher is counted, not used)
                        socketio: a Socket.IO v4 server, WebSocket transport only, no token;
                        the publisher emits `publish` with each message, which the server
                        must emit to the others as `message` (pings are answered);
                        plain-ws and socketio support the connect and broadcast scenarios
  --path P              plain-ws: request target (default /); socketio: the server's path,
                        sent as <path>?EIO=4&transport=websocket (default /socket.io/)
  --drop-after K        storm: after K of the --messages were sent, drop every subscriber at
                        once with POST /api/disconnect (default: a quarter of --messages)
  --storm-user U        storm: the user id of every subscriber's token (default storm)
  --in-flight K         handshakes in progress at once, reconnects included (default 500)
  --source-ips K        spread clients over 127.0.0.1..K, loopback only (default 254, 0 = off)
  --id-offset K         first user id number (default 0), for several processes on one server
  --server-pid PID      read the server's RSS and CPU time from /proc
  --hold S              connect scenario: hold the connections idle S seconds (default 0)
  --drain S             after the last send, give up after S s without a delivery (default 10)
  --connect-timeout S   per handshake (default 10)
  --timeout S           overall deadline (default 120)
  --quiet               no progress lines on stderr
  --compression         offer permessage-deflate (the server runs with --compression on) and fail
                        a client it is not negotiated for; each distinct compressed payload is
                        inflated once, not once per client
  --tls                 wss:// and https:// (the server runs with --tls-cert; its certificate is not checked)

Scenario storm (a topic with history, --history on the server): the clients subscribe to
--topic, all as one user; the publisher sends --messages at --rate through POST /api/publish;
after --drop-after sends one POST /api/disconnect {"user-id":U} closes every subscriber, and
each reconnects at once and subscribes with "recover" from the last offset it received, while
publishing goes on. Each client must then hold every offset after the one its first subscribe
answered, up to the last published, once and in order.

Prints one JSON object on stdout and a summary on stderr. Exit status: 0 when every phase
finished, 2 when a phase hit a deadline, 1 on bad options or setup failure.
)";

std::size_t to_count(std::string_view flag, const std::string& v) {
  std::size_t out = 0;
  const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc{} || p != v.data() + v.size())
    throw std::invalid_argument(std::string(flag) + ": not a non-negative integer: '" + v + "'");
  return out;
}

double to_seconds(std::string_view flag, const std::string& v) {
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  if (v.empty() || end != v.c_str() + v.size() || !(d >= 0))
    throw std::invalid_argument(std::string(flag) + ": not a non-negative number: '" + v + "'");
  return d;
}

Scenario to_scenario(const std::string& v) {
  if (v == "connect") return Scenario::connect;
  if (v == "fanout") return Scenario::fanout;
  if (v == "broadcast") return Scenario::broadcast;
  if (v == "users") return Scenario::users;
  if (v == "storm") return Scenario::storm;
  throw std::invalid_argument("--scenario: expected connect, fanout, broadcast, users or storm, got '" + v + "'");
}

void check(const Options& o) {
  if (o.connections == 0) throw std::invalid_argument("--connections must be at least 1");
  if (o.size > 1'000'000) throw std::invalid_argument("--size must be at most 1000000");
  if (o.window == 0) throw std::invalid_argument("--window must be at least 1");
  if (o.api_connections == 0) throw std::invalid_argument("--api-connections must be at least 1");
  if (o.batch > 1000) throw std::invalid_argument("--batch: a batch carries at most 1000 items");
  if (o.in_flight == 0) throw std::invalid_argument("--in-flight must be at least 1");
  if (o.source_ips > 254) throw std::invalid_argument("--source-ips must be at most 254");
  if (o.protocol == Protocol::realtime && o.secret.empty() && o.token.empty())
    throw std::invalid_argument("--secret (or --token) is required for the realtime protocol");
  if (o.protocol == Protocol::pusher && o.scenario != Scenario::connect && o.scenario != Scenario::fanout)
    throw std::invalid_argument("--protocol pusher supports the connect and fanout scenarios");
  if (o.protocol == Protocol::pusher && o.scenario == Scenario::fanout && o.via == Via::ws && o.secret.empty())
    throw std::invalid_argument("--protocol pusher --via ws: the native publisher needs --secret");
  if (o.protocol != Protocol::realtime && o.protocol != Protocol::pusher && o.scenario != Scenario::connect &&
      o.scenario != Scenario::broadcast)
    throw std::invalid_argument(std::string("--protocol ") + to_string(o.protocol) +
                                " supports the connect and broadcast scenarios");
  const bool api = (o.protocol == Protocol::realtime || o.protocol == Protocol::pusher) && o.scenario != Scenario::connect &&
                   !(o.scenario == Scenario::fanout && o.via == Via::ws);
  if (api && o.api_key.empty()) throw std::invalid_argument("--api-key is required for the HTTP API publisher");
  if (o.via == Via::ws && (o.protocol == Protocol::realtime || o.protocol == Protocol::pusher) &&
      o.scenario != Scenario::fanout)
    throw std::invalid_argument("--via ws applies to the fanout scenario only");
  if (o.scenario == Scenario::users) {
    if (o.rate <= 0) throw std::invalid_argument("the users scenario needs --rate");
    if (!o.token.empty()) throw std::invalid_argument("the users scenario needs --secret (distinct users)");
  }
  if (o.scenario == Scenario::storm) {
    if (o.rate <= 0) throw std::invalid_argument("the storm scenario needs --rate (publishing goes on during the storm)");
    if (o.secret.empty()) throw std::invalid_argument("the storm scenario needs --secret (it mints --storm-user tokens)");
    if (o.batch > 0) throw std::invalid_argument("the storm scenario publishes one message per request (no --batch)");
    if (o.api_connections > 1) throw std::invalid_argument("the storm scenario publishes on one API connection");
    if (o.messages < 2 || o.drop_after >= o.messages)
      throw std::invalid_argument("the storm scenario needs --drop-after below --messages");
  }
}

}  // namespace

const char* to_string(Scenario s) noexcept {
  switch (s) {
    case Scenario::connect: return "connect";
    case Scenario::fanout: return "fanout";
    case Scenario::broadcast: return "broadcast";
    case Scenario::users: return "users";
    case Scenario::storm: return "storm";
  }
  return "?";
}

const char* to_string(Protocol p) noexcept {
  switch (p) {
    case Protocol::realtime: return "realtime";
    case Protocol::plain: return "plain-ws";
    case Protocol::socketio: return "socketio";
    case Protocol::pusher: return "pusher";
  }
  return "?";
}

Options parse_options(int argc, char** argv) {
  Options o;
  using Setter = std::function<void(const std::string&)>;
  const std::map<std::string, Setter, std::less<>> flags = {
      {"--host", [&](const std::string& v) { o.host = v; }},
      {"--port", [&](const std::string& v) {
         const auto p = to_count("--port", v);
         if (p == 0 || p > 65535) throw std::invalid_argument("--port: out of range: " + v);
         o.port = static_cast<std::uint16_t>(p);
       }},
      {"--secret", [&](const std::string& v) { o.secret = v; }},
      {"--token", [&](const std::string& v) { o.token = v; }},
      {"--api-key", [&](const std::string& v) { o.api_key = v; }},
      {"--roles", [&](const std::string& v) { o.roles = v; }},
      {"--topic", [&](const std::string& v) { o.topic = v; }},
      {"--pusher-key", [&](const std::string& v) { o.pusher_key = v; }},
      {"--path", [&](const std::string& v) { o.path = v; }},
      {"--scenario", [&](const std::string& v) { o.scenario = to_scenario(v); }},
      {"--via", [&](const std::string& v) {
         if (v != "api" && v != "ws") throw std::invalid_argument("--via: expected api or ws, got '" + v + "'");
         o.via = v == "ws" ? Via::ws : Via::api;
       }},
      {"--protocol", [&](const std::string& v) {
         if (v == "realtime") o.protocol = Protocol::realtime;
         else if (v == "plain-ws") o.protocol = Protocol::plain;
         else if (v == "socketio") o.protocol = Protocol::socketio;
         else if (v == "pusher") o.protocol = Protocol::pusher;
         else throw std::invalid_argument("--protocol: expected realtime, plain-ws, socketio or pusher, got '" + v + "'");
       }},
      {"--ports", [&](const std::string& v) {
         o.ports.clear();
         std::size_t start = 0;
         while (start <= v.size()) {
           const std::size_t comma = std::min(v.find(',', start), v.size());
           const auto p = to_count("--ports", v.substr(start, comma - start));
           if (p == 0 || p > 65535) throw std::invalid_argument("--ports: out of range: " + v);
           o.ports.push_back(static_cast<std::uint16_t>(p));
           start = comma + 1;
         }
         o.port = o.ports.front();
       }},
      {"--window", [&](const std::string& v) { o.window = to_count("--window", v); }},
      {"--api-connections", [&](const std::string& v) { o.api_connections = to_count("--api-connections", v); }},
      {"--batch", [&](const std::string& v) { o.batch = to_count("--batch", v); }},
      {"--connections", [&](const std::string& v) { o.connections = to_count("--connections", v); }},
      {"--messages", [&](const std::string& v) { o.messages = to_count("--messages", v); }},
      {"--size", [&](const std::string& v) { o.size = to_count("--size", v); }},
      {"--in-flight", [&](const std::string& v) { o.in_flight = to_count("--in-flight", v); }},
      {"--source-ips", [&](const std::string& v) { o.source_ips = to_count("--source-ips", v); }},
      {"--id-offset", [&](const std::string& v) { o.id_offset = to_count("--id-offset", v); }},
      {"--server-pid", [&](const std::string& v) { o.server_pid = static_cast<int>(to_count("--server-pid", v)); }},
      {"--rate", [&](const std::string& v) { o.rate = to_seconds("--rate", v); }},
      {"--drop-after", [&](const std::string& v) { o.drop_after = to_count("--drop-after", v); }},
      {"--storm-user", [&](const std::string& v) {
         if (v.empty() || v.find_first_of("\"\\") != std::string::npos)
           throw std::invalid_argument("--storm-user: a non-empty id without quotes or backslashes");
         o.storm_user = v;
       }},
      {"--duration", [&](const std::string& v) { o.duration = to_seconds("--duration", v); }},
      {"--hold", [&](const std::string& v) { o.hold = to_seconds("--hold", v); }},
      {"--timeout", [&](const std::string& v) { o.timeout = to_seconds("--timeout", v); }},
      {"--drain", [&](const std::string& v) { o.drain = to_seconds("--drain", v); }},
      {"--connect-timeout", [&](const std::string& v) { o.connect_timeout = to_seconds("--connect-timeout", v); }},
  };
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(usage, stdout);
      std::exit(0);
    }
    if (arg == "--no-wait") {
      o.no_wait = true;
      continue;
    }
    if (arg == "--quiet") {
      o.quiet = true;
      continue;
    }
    if (arg == "--tls") {
      o.tls = true;
      continue;
    }
    if (arg == "--compression") {
      o.compression = true;
      continue;
    }
    std::string value;
    if (const auto eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      throw std::invalid_argument(arg + ": missing value (see --help)");
    }
    const auto f = flags.find(arg);
    if (f == flags.end()) throw std::invalid_argument("unknown option " + arg + " (see --help)");
    f->second(value);
  }
  if (o.path.empty()) o.path = o.protocol == Protocol::socketio ? "/socket.io/" : "/";
  if (o.scenario == Scenario::storm && o.drop_after == 0) o.drop_after = o.messages / 4;
  check(o);
  return o;
}

}  // namespace loadgen
