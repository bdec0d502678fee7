#pragma once
// A Redis that speaks just enough RESP for RedisLink and BrokerRedis, on 127.0.0.1 and an
// ephemeral port, driven by the test's own io_context (so everything runs on one thread and a
// test steps it with run_until). It answers SELECT / SET / ASKING with +OK, (S)SUBSCRIBE and
// (S)UNSUBSCRIBE with confirmations, PUBLISH / SPUBLISH by delivering to its subscribers and
// answering their number (plus `extra_receivers`, nodes that never answer), and CLUSTER SLOTS
// with a map in which it is the one master. The test controls it: `script` overrides the answer
// to any command (raw bytes, silence, or dropping the connection), `hold` keeps every answer
// back until release(), `refuse` closes each new connection at once, drop_all() closes all.
// With `password` set it wants AUTH first (WRONGPASS / NOAUTH as Redis answers). EVAL runs the
// broker's two node-key scripts (claim: write unless another instance holds the key; release:
// delete if ours) on `keys`, without TTLs.

#include <array>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

namespace fake {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Argv = std::vector<std::string>;

inline std::string bulk(std::string_view s) {
  return "$" + std::to_string(s.size()) + "\r\n" + std::string(s) + "\r\n";
}
inline std::string integer(long long n) { return ":" + std::to_string(n) + "\r\n"; }
inline std::string push(std::string_view kind, std::string_view channel, std::string_view third) {
  return "*3\r\n" + bulk(kind) + bulk(channel) + std::string(third);
}

// Steps `io` until `done()` holds or `limit` passes; false on the deadline.
template <class Pred>
bool run_until(asio::io_context& io, Pred done, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    if (io.stopped()) io.restart();
    io.run_for(std::chrono::milliseconds(2));
  }
  return true;
}

class Redis {
 public:
  struct Reply {
    enum Kind { normal, raw, silent, drop } kind = normal;
    std::string bytes;  // raw
  };
  using Script = std::function<Reply(const Argv&)>;

  explicit Redis(asio::io_context& io) : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    do_accept();
  }
  ~Redis() {
    for (auto& s : sessions_) {
      boost::system::error_code ignored;
      s->socket.close(ignored);
    }
  }

  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

  Script script;                 // consulted first for every command
  bool hold = false;             // keep answers back until release()
  bool refuse = false;           // accept, then close at once
  long long extra_receivers = 0;  // added to every PUBLISH / SPUBLISH count
  std::string user = "default";  // with `password`: the one user AUTH accepts
  std::string password;          // empty: no AUTH needed
  std::map<std::string, std::string> keys;  // what EVAL's scripts read and write
  std::vector<Argv> commands;    // every command received, in order
  std::vector<std::chrono::steady_clock::time_point> accepted_at;

  std::size_t count(std::string_view name) const {
    std::size_t n = 0;
    for (const auto& c : commands) n += !c.empty() && c[0] == name;
    return n;
  }
  bool saw(const Argv& argv) const {
    for (const auto& c : commands)
      if (c == argv) return true;
    return false;
  }
  std::size_t open_sessions() const {
    std::size_t n = 0;
    for (const auto& s : sessions_) n += !s->dead && s->socket.is_open();
    return n;
  }

  void drop_all() {
    for (auto& s : sessions_) close(*s);
  }
  void release() {
    hold = false;
    for (auto& s : sessions_) {
      send(*s, s->held);
      s->held.clear();
    }
  }
  // What a shard does when the slot of a sharded channel moves away: it drops every
  // subscription to the channel and tells each subscriber with a sunsubscribe push.
  void migrate_away(const std::string& channel) {
    for (auto& s : sessions_)
      if (!s->dead && s->schannels.erase(channel) > 0) send(*s, push("sunsubscribe", channel, integer(0)));
  }
  // A message from elsewhere (another node): delivered as PUBLISH / SPUBLISH would.
  long long deliver(std::string_view channel, std::string_view payload, bool sharded = false) {
    long long n = 0;
    for (auto& s : sessions_) {
      if (s->dead || !(sharded ? s->schannels : s->channels).contains(std::string(channel))) continue;
      send(*s, push(sharded ? "smessage" : "message", channel, bulk(payload)));
      ++n;
    }
    return n;
  }

 private:
  struct Session {
    explicit Session(tcp::socket s) : socket(std::move(s)) {}
    tcp::socket socket;
    std::string in;
    std::string held;
    std::array<char, 4096> buf{};
    std::set<std::string> channels, schannels;
    bool authed = false;
    bool dead = false;  // dropped: our side is shut down, the rest of its input is ignored
  };

  void do_accept() {
    acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
      if (ec) return;
      accepted_at.push_back(std::chrono::steady_clock::now());
      auto s = std::make_shared<Session>(std::move(socket));
      sessions_.push_back(s);
      if (refuse) close(*s);
      do_read(s);
      do_accept();
    });
  }

  void do_read(const std::shared_ptr<Session>& s) {
    s->socket.async_read_some(asio::buffer(s->buf), [this, s](const boost::system::error_code& ec, std::size_t n) {
      if (ec) {
        close(*s);
        boost::system::error_code ignored;
        return s->socket.close(ignored);
      }
      s->in.append(s->buf.data(), n);
      Argv argv;
      while (!s->dead && parse(s->in, argv)) on_command(*s, argv);
      do_read(s);
    });
  }

  // One RESP array of bulk strings (all a client sends); false while incomplete.
  static bool parse(std::string& in, Argv& argv) {
    argv.clear();
    std::size_t pos = 0;
    auto line = [&](char type, long long& value) {
      const auto end = in.find("\r\n", pos);
      if (end == std::string::npos || in[pos] != type) return false;
      value = std::stoll(in.substr(pos + 1, end - pos - 1));
      pos = end + 2;
      return true;
    };
    long long n = 0;
    if (in.empty() || !line('*', n)) return false;
    for (long long i = 0; i < n; ++i) {
      long long len = 0;
      if (pos >= in.size() || !line('$', len) || in.size() < pos + static_cast<std::size_t>(len) + 2) return false;
      argv.push_back(in.substr(pos, static_cast<std::size_t>(len)));
      pos += static_cast<std::size_t>(len) + 2;
    }
    in.erase(0, pos);
    return true;
  }

  void on_command(Session& s, const Argv& argv) {
    commands.push_back(argv);
    const Reply r = script ? script(argv) : Reply{};
    if (r.kind == Reply::drop) return close(s);
    if (r.kind == Reply::silent) return;
    send(s, r.kind == Reply::raw ? r.bytes : answer(s, argv));
  }

  std::string answer(Session& s, const Argv& a) {
    const std::string& cmd = a[0];
    if (cmd == "AUTH") {
      const bool ok = a.size() == 2 ? user == "default" && a[1] == password
                                    : a.size() == 3 && a[1] == user && a[2] == password;
      s.authed = ok;
      return ok ? "+OK\r\n" : "-WRONGPASS invalid username-password pair or user is disabled.\r\n";
    }
    if (!password.empty() && !s.authed) return "-NOAUTH Authentication required.\r\n";
    if (cmd == "EVAL" && a.size() >= 5) {
      const std::string& key = a[3];
      const std::string mine = a[4] + " ";
      auto it = keys.find(key);
      const bool ours = it != keys.end() && it->second.starts_with(mine);
      if (a.size() >= 7) {  // claim: key, instance, connections, ttl
        if (it != keys.end() && !ours) return integer(0);
        keys[key] = mine + a[5];
        return integer(1);
      }
      if (!ours) return integer(0);  // release
      keys.erase(it);
      return integer(1);
    }
    if (cmd == "SUBSCRIBE" || cmd == "UNSUBSCRIBE" || cmd == "SSUBSCRIBE" || cmd == "SUNSUBSCRIBE") {
      const bool sharded = cmd[0] == 'S' && cmd[1] != 'U';
      const bool on = cmd.find("UNSUB") == std::string::npos;
      auto& set = sharded ? s.schannels : s.channels;
      std::string kind = cmd;
      for (auto& c : kind) c = static_cast<char>(std::tolower(c));
      std::string out;
      for (std::size_t i = 1; i < a.size(); ++i) {
        if (on)
          set.insert(a[i]);
        else
          set.erase(a[i]);
        out += push(kind, a[i], integer(static_cast<long long>(set.size())));
      }
      return out;
    }
    if (cmd == "PUBLISH" || cmd == "SPUBLISH") return integer(deliver(a[1], a[2], cmd == "SPUBLISH") + extra_receivers);
    if (cmd == "CLUSTER" && a.size() > 1 && a[1] == "SLOTS")
      return "*1\r\n*3\r\n" + integer(0) + integer(16383) + "*3\r\n" + bulk("127.0.0.1") + integer(port()) +
             bulk("0123456789abcdef0123456789abcdef01234567");
    if (cmd == "SELECT" || cmd == "SET" || cmd == "ASKING" || cmd == "PING") return "+OK\r\n";
    return "-ERR unknown command '" + cmd + "'\r\n";
  }

  void send(Session& s, const std::string& bytes) {
    if (bytes.empty() || s.dead) return;
    if (hold) {
      s.held += bytes;
      return;
    }
    boost::system::error_code ec;
    asio::write(s.socket, asio::buffer(bytes), ec);  // small, to a reading peer on loopback
    if (ec) close(s);
  }

  // Half-closes: what was sent before still arrives, then the client reads end of stream (a full
  // close with unread input would reset the connection and could discard those replies).
  static void close(Session& s) {
    if (s.dead) return;
    s.dead = true;
    s.in.clear();
    s.held.clear();
    boost::system::error_code ignored;
    s.socket.shutdown(tcp::socket::shutdown_send, ignored);
  }

  tcp::acceptor acceptor_;
  std::vector<std::shared_ptr<Session>> sessions_;
};

}  // namespace fake
