// A chat server embedding Boundary Realtime, its application rules written as Hooks:
//  - on_connect refuses banned users (403) and attaches each member's display name to the
//    connection;
//  - on_subscribe lets clients join rooms only: `room:<name>`, name [a-z0-9-]{1,32};
//  - on_action handles the application's own commands, `say` (post to a room) and `echo`;
//  - on_disconnect counts who left, reported with the rest by GET /api/chat/stats.
//
//   ./example_chat --port 3002 --jwt-secret <32+ bytes> --api-key <16+ bytes> [--ban 13,666]
//   connect ws://127.0.0.1:3002/ws?token=<jwt with user-id 42>, then
//   > {"action":"subscribe","topic":"room:lobby"}
//   < {"type":"subscribed","topic":"room:lobby"}
//   > {"action":"say","room":"lobby","text":"hello","ref":1}
//   < {"type":"said","room":"lobby","from":"user-42","text":"hello","topic":"room:lobby",...}
//     (to every member of room:lobby, the sender included)
//   < {"type":"said-ok","ref":1}
//   > {"action":"echo","payload":{"any":"json"},"ref":2}
//   < {"type":"echo","payload":{"any":"json"},"ref":2}
//   curl -H 'Authorization: Bearer <api key>' http://127.0.0.1:3002/api/chat/stats
//
// Anyone connected may post to any room; a room's messages reach only those who joined it.

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include <boost/json/serialize.hpp>

#include "boundary/realtime/jwt_verifier.hpp"
#include "boundary/realtime/server.hpp"

namespace rt = boundary::realtime;
namespace json = boost::json;

namespace {

std::string arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == name) return argv[i + 1];
  return fallback;
}

std::set<std::string> split_commas(const std::string& list) {
  std::set<std::string> items;
  std::size_t start = 0;
  while (start <= list.size()) {
    const auto end = std::min(list.find(',', start), list.size());
    if (end > start) items.emplace(list.substr(start, end - start));
    start = end + 1;
  }
  return items;
}

bool valid_room(std::string_view name) {
  return !name.empty() && name.size() <= 32 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

// The longest `say` text, in bytes: chat lines, not documents.
constexpr std::size_t max_text_bytes = 1000;

// What on_connect attaches to a connection (Identity::app_data()).
struct Member {
  std::string display_name;
};

const Member& member_of(const rt::ConnectionInfo& info) {
  return *std::static_pointer_cast<const Member>(info.identity.app_data());
}

json::object bad_request(std::string_view message) {
  return {{"type", "error"}, {"code", "bad-request"}, {"message", message}};
}

// Hooks run on the server's loop threads, several at once: everything here is either read-only
// after start() or atomic.
class Chat {
 public:
  explicit Chat(std::set<std::string> banned) : banned_(std::move(banned)) {}

  // Before the server starts: the hooks post through it.
  void attach(rt::Server& server) { server_ = &server; }

  rt::Hooks hooks() {
    rt::Hooks hooks;
    hooks.on_connect = [this](const rt::ConnectionInfo& info) {
      if (banned_.contains(info.identity.user_id)) {
        ++refused_;
        return rt::ConnectDecision::refuse("banned");
      }
      return rt::ConnectDecision::allow(std::make_shared<const Member>(Member{"user-" + info.identity.user_id}));
    };
    hooks.on_subscribe = [](const rt::ConnectionInfo&, std::string_view topic, rt::Hooks::Decide decide) {
      constexpr std::string_view prefix = "room:";
      decide(topic.starts_with(prefix) && valid_room(topic.substr(prefix.size())));
    };
    hooks.on_action = [this](const rt::ConnectionInfo& info, const json::object& command, rt::Hooks::Reply reply) {
      const auto* field = command.if_contains("action");
      const std::string_view action = field && field->is_string() ? std::string_view(field->get_string()) : "";
      if (action == "say") return say(member_of(info), command, std::move(reply));
      if (action == "echo") {
        const auto* payload = command.if_contains("payload");
        return reply({{"type", "echo"}, {"payload", payload ? *payload : json::value()}});
      }
      reply(bad_request("unknown action"));
    };
    // No logging here: a write to stdout may block, and hooks run on the loops.
    hooks.on_disconnect = [this](const rt::ConnectionInfo&) { ++left_; };
    return hooks;
  }

  json::object stats() const {
    return {{"online", server_->connection_count()}, {"left", left_.load()}, {"refused", refused_.load()}};
  }

 private:
  void say(const Member& member, const json::object& command, rt::Hooks::Reply reply) {
    const auto* room = command.if_contains("room");
    const auto* text = command.if_contains("text");
    if (!room || !room->is_string() || !valid_room(room->get_string()))
      return reply(bad_request("room must be a room name ([a-z0-9-]{1,32})"));
    if (!text || !text->is_string() || text->get_string().empty() || text->get_string().size() > max_text_bytes)
      return reply(bad_request("text must be a string of 1 to 1000 bytes"));
    json::object said{{"type", "said"}, {"room", *room}, {"from", member.display_name}, {"text", *text}};
    // Confirmed once the message was handed to the room (the reply gets the command's ref).
    server_->publish("room:" + std::string(room->get_string()), std::move(said),
                     [reply = std::move(reply)](std::size_t) { reply({{"type", "said-ok"}}); });
  }

  const std::set<std::string> banned_;
  rt::Server* server_ = nullptr;
  std::atomic<std::size_t> left_{0};
  std::atomic<std::size_t> refused_{0};
};

}  // namespace

int main(int argc, char** argv) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  rt::Config config;
  config.port = static_cast<std::uint16_t>(std::stoi(arg(argc, argv, "--port", "3002")));
  config.api_key = arg(argc, argv, "--api-key", "");
  config.threads = static_cast<unsigned>(std::stoi(arg(argc, argv, "--threads", "1")));
  try {
    Chat chat(split_commas(arg(argc, argv, "--ban", "")));
    rt::Server server(config, rt::make_hmac_verifier(arg(argc, argv, "--jwt-secret", "")), chat.hooks());
    chat.attach(server);
    // Under /api/: the server checks the API key before calling the route.
    server.add_route("GET", "/api/chat/stats", [&chat](const rt::HttpRequest&, rt::Server::Responder respond) {
      respond({200, json::serialize(chat.stats())});
    });
    const auto port = server.start();
    std::printf("chat example listening on 127.0.0.1:%u\n", port);
    std::fflush(stdout);
    int sig = 0;
    sigwait(&signals, &sig);
    server.shutdown();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "example: %s\n", e.what());
    return 2;
  }
  return 0;
}
