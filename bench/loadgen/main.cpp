// realtime-loadgen: drives a Boundary Realtime server (or any broadcast WebSocket server) with
// N WebSocket clients from one thread and reports one JSON object on stdout.
// See `realtime-loadgen --help` and bench/RESULTS-first.md.

#include <csignal>
#include <cmath>
#include <cstdio>
#include <exception>
#include <string>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "options.hpp"
#include "run.hpp"

namespace {

using namespace loadgen;
namespace json = boost::json;

// File descriptors the process needs beside the clients: stdio, epoll, the API connection, the
// publisher, and headroom for /proc reads.
constexpr std::uint64_t reserved_fds = 16;

double round1(double v) { return std::round(v * 10) / 10; }
double us(std::uint64_t ns) { return round1(static_cast<double>(ns) / 1e3); }
double secs(Nanos ns) { return static_cast<double>(ns) / 1e9; }

// Boost.JSON prints doubles in exponent form (1.89E-2); reports are read by people and by
// scripts alike, so doubles are printed plainly.
void write_json(std::string& out, const json::value& v) {
  if (v.is_object()) {
    out += '{';
    bool first = true;
    for (const auto& [k, item] : v.get_object()) {
      if (!first) out += ',';
      first = false;
      out += json::serialize(json::value(k));
      out += ':';
      write_json(out, item);
    }
    out += '}';
  } else if (v.is_double()) {
    const double d = v.get_double();
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.10g", d);
    out += std::isfinite(d) ? buf : "null";
  } else {
    out += json::serialize(v);
  }
}

json::object latency_json(const Histogram& h) {
  return {{"count", h.count()},
          {"p50", us(h.quantile(0.50))},
          {"p90", us(h.quantile(0.90))},
          {"p99", us(h.quantile(0.99))},
          {"p99.9", us(h.quantile(0.999))},
          {"max", us(h.max())},
          {"min", us(h.min())},
          {"mean", round1(h.mean() / 1e3)},
          {"negative", h.negative()}};
}

json::object counts_json(const std::map<std::string, std::uint64_t>& m) {
  json::object o;
  for (const auto& [k, v] : m) o[k] = v;
  return o;
}

json::object connect_json(const ConnectResults& c) {
  const double seconds = c.last_open > c.first_start ? secs(c.last_open - c.first_start) : 0;
  return {{"opened", c.opened},
          {"failed", c.failed},
          {"errors", counts_json(c.errors)},
          {"seconds", round1(seconds * 1000) / 1000},
          {"per_second", seconds > 0 ? round1(static_cast<double>(c.opened) / seconds) : 0.0},
          {"handshake_us", latency_json(c.handshake)},
          {"timed_out", c.timed_out}};
}

json::object delivery_json(const DeliveryResults& d) {
  const double seconds = d.last_delivery > d.first_send ? secs(d.last_delivery - d.first_send) : 0;
  const double send_seconds = d.last_send > d.first_send ? secs(d.last_send - d.first_send) : 0;
  return {{"subscribers", d.subscribers},
          {"subscribed", d.subscribed},
          {"sent", d.sent},
          {"send_seconds", round1(send_seconds * 1000) / 1000},
          {"send_rate", send_seconds > 0 ? round1(static_cast<double>(d.sent - 1) / send_seconds) : 0.0},
          {"expected", d.expected},
          {"received", d.received},
          {"unique", d.unique},
          {"lost", d.expected > d.unique ? d.expected - d.unique : 0},
          {"reordered", d.reordered},
          {"duplicates", d.duplicates},
          {"misrouted", d.misrouted},
          {"foreign", d.foreign},
          {"seconds", round1(seconds * 1000) / 1000},
          {"deliveries_per_second", seconds > 0 ? round1(static_cast<double>(d.unique) / seconds) : 0.0},
          {"latency_us", latency_json(d.latency)},
          {"reply_latency_us", latency_json(d.reply_latency)},
          {"server_delivered", d.server_delivered},
          {"send_errors", d.send_errors},
          {"first_send_error", d.first_send_error},
          {"command_errors", d.command_errors},
          {"first_command_error", d.first_command_error},
          {"publisher_echoes", d.publisher_echoes},
          {"publisher_failed", d.publisher_failed},
          {"stalled", d.stalled},
          {"deadline_hit", d.deadline_hit},
          {"server_cpu_seconds", round1(d.server_cpu_seconds * 100) / 100},
          {"loadgen_cpu_seconds", round1(d.loadgen_cpu_seconds * 100) / 100}};
}

json::object storm_json(const StormResults& st, const DeliveryResults& d) {
  auto since_drop = [&](Nanos t) { return t > st.drop_at && st.drop_at > 0 ? round1(secs(t - st.drop_at) * 1000) / 1000 : -1.0; };
  const double before = secs(st.before_ns);
  return {{"drop_after", st.sent_at_drop},
          {"disconnected", st.disconnected},
          {"drop_error", st.drop_error},
          {"closed", st.closed},
          {"reconnects", st.reconnects},
          {"reconnect_failures", st.reconnect_failures},
          {"reconnect_errors", counts_json(st.reconnect_errors)},
          {"reopened", st.reopened},
          {"recovered_true", st.recovered_true},
          {"recovered_false", st.recovered_false},
          {"complete", st.complete},
          {"seconds_to_all_reconnected", since_drop(st.all_reopened)},
          {"seconds_to_all_recovered", st.complete ? since_drop(st.all_recovered) : -1.0},
          {"seconds_to_last_replayed", since_drop(st.last_replayed)},
          {"sent_when_all_recovered", st.sent_at_recovered},
          {"replayed", st.replayed},
          {"epoch", st.epoch},
          {"epoch_changes", st.epoch_changes},
          {"first_offset", st.first_offset},
          {"last_offset", st.last_offset},
          {"messages_lost", d.expected > d.unique ? d.expected - d.unique : 0},
          {"duplicates", d.duplicates},
          {"reordered", d.reordered},
          {"server_cpu_seconds_storm", round1(st.server_cpu_storm * 1000) / 1000},
          {"loadgen_cpu_seconds_storm", round1(st.loadgen_cpu_storm * 1000) / 1000},
          {"seconds_before_drop", round1(before * 1000) / 1000},
          {"server_cpu_seconds_before_drop", round1(st.server_cpu_before * 1000) / 1000}};
}

json::object server_json(const Options& o, const Results& r) {
  const auto& s = r.server;
  json::object out{{"pid", o.server_pid},
                   {"rss_baseline_bytes", s.rss_baseline},
                   {"rss_connected_bytes", s.rss_connected},
                   {"rss_after_hold_bytes", s.rss_after_hold},
                   {"rss_after_delivery_bytes", s.rss_after_delivery}};
  const auto opened = static_cast<double>(r.connect.opened);
  if (s.rss_baseline >= 0 && s.rss_connected >= 0 && opened > 0)
    out["rss_per_connection_bytes"] = std::round(static_cast<double>(s.rss_connected - s.rss_baseline) / opened);
  if (s.rss_baseline >= 0 && s.rss_after_hold >= 0 && opened > 0)
    out["rss_per_connection_after_hold_bytes"] =
        std::round(static_cast<double>(s.rss_after_hold - s.rss_baseline) / opened);
  if (s.rss_warm >= 0 && s.rss_after_hold >= 0 && opened > static_cast<double>(s.warm_connections)) {
    out["rss_warm_bytes"] = s.rss_warm;
    out["warm_connections"] = s.warm_connections;
    out["rss_marginal_per_connection_bytes"] = std::round(
        static_cast<double>(s.rss_after_hold - s.rss_warm) / (opened - static_cast<double>(s.warm_connections)));
  }
  return out;
}

json::object report(const Options& o, const Results& r) {
  json::object out{{"scenario", to_string(o.scenario)},
                   {"protocol", to_string(o.protocol)},
                   {"via", o.via == Via::ws ? "ws" : "api"},
                   {"connections", o.connections},
                   {"messages", o.messages},
                   {"size", o.size},
                   {"rate", o.rate},
                   {"window", o.window},
                   {"api_connections", o.api_connections},
                   {"batch", o.batch},
                   {"no_wait", o.no_wait},
                   {"tls", o.tls},
                   {"compression", o.compression},
                   {"connect", connect_json(r.connect)}};
  if (!o.ports.empty()) {
    json::array ports;
    for (const auto p : o.ports) ports.emplace_back(p);
    out["ports"] = std::move(ports);
  }
  if (r.delivery.ran) out["delivery"] = delivery_json(r.delivery);
  if (r.storm.ran) out["storm"] = storm_json(r.storm, r.delivery);
  out["server"] = server_json(o, r);
  out["closed_by_server"] = counts_json(r.closes);
  out["closes_by_phase"] = counts_json(r.closes_by_phase);
  out["loadgen"] = json::object{{"wall_seconds", round1(secs(r.finished - r.started) * 100) / 100},
                                {"cpu_seconds", round1(self_cpu_seconds() * 100) / 100},
                                {"rss_bytes", self_rss_bytes()},
                                {"bytes_received", r.bytes_received},
                                {"fd_limit", r.fd_limit}};
  return out;
}

unsigned long long ull(std::uint64_t v) { return static_cast<unsigned long long>(v); }

void summary_connect(const Options& o, const Results& r) {
  const auto c = connect_json(r.connect);
  std::fprintf(stderr, "connect: %llu open, %llu failed in %.3f s = %.0f conn/s; handshake p50 %.0f us p99 %.0f us\n",
               ull(r.connect.opened), ull(r.connect.failed), c.at("seconds").to_number<double>(),
               c.at("per_second").to_number<double>(), us(r.connect.handshake.quantile(0.5)),
               us(r.connect.handshake.quantile(0.99)));
  for (const auto& [why, n] : r.connect.errors) std::fprintf(stderr, "  connect error x%llu: %s\n", ull(n), why.c_str());
  const auto s = server_json(o, r);
  if (s.contains("rss_per_connection_bytes"))
    std::fprintf(stderr, "server RSS: baseline %lld B, connected %lld B, %.0f B/connection\n",
                 static_cast<long long>(r.server.rss_baseline), static_cast<long long>(r.server.rss_connected),
                 s.at("rss_per_connection_bytes").to_number<double>());
  if (s.contains("rss_per_connection_after_hold_bytes"))
    std::fprintf(stderr, "server RSS after hold: %lld B, %.0f B/connection\n",
                 static_cast<long long>(r.server.rss_after_hold),
                 s.at("rss_per_connection_after_hold_bytes").to_number<double>());
  if (s.contains("rss_marginal_per_connection_bytes"))
    std::fprintf(stderr, "server RSS after the first %llu connections: %lld B; %.0f B per further connection\n",
                 ull(r.server.warm_connections), static_cast<long long>(r.server.rss_warm),
                 s.at("rss_marginal_per_connection_bytes").to_number<double>());
}

void summary_delivery(const DeliveryResults& d) {
  const auto dj = delivery_json(d);
  std::fprintf(stderr,
               "delivery: sent %llu, %llu/%llu delivered in %.3f s = %.0f deliveries/s; lost %llu, reordered %llu, "
               "duplicates %llu, misrouted %llu\n",
               ull(d.sent), ull(d.unique), ull(d.expected), dj.at("seconds").to_number<double>(),
               dj.at("deliveries_per_second").to_number<double>(), ull(dj.at("lost").to_number<std::uint64_t>()),
               ull(d.reordered), ull(d.duplicates), ull(d.misrouted));
  const Histogram& h = d.latency;
  std::fprintf(stderr, "latency us: p50 %.1f p90 %.1f p99 %.1f p99.9 %.1f max %.1f\n", us(h.quantile(0.5)),
               us(h.quantile(0.9)), us(h.quantile(0.99)), us(h.quantile(0.999)), us(h.max()));
  if (d.send_errors)
    std::fprintf(stderr, "send errors: %llu, first: %s\n", ull(d.send_errors), d.first_send_error.c_str());
  if (d.command_errors)
    std::fprintf(stderr, "command errors: %llu, first: %s\n", ull(d.command_errors), d.first_command_error.c_str());
  if (!d.publisher_failed.empty()) std::fprintf(stderr, "publisher failed: %s\n", d.publisher_failed.c_str());
  if (d.stalled) std::fprintf(stderr, "STALLED: no progress for the drain period\n");
  if (d.deadline_hit) std::fprintf(stderr, "DEADLINE hit during delivery\n");
}

void summary_storm(const StormResults& st, const DeliveryResults& d) {
  const auto sj = storm_json(st, d);
  std::fprintf(stderr,
               "storm: dropped %lld after %llu sends; %llu reconnected (%llu failed attempts), recovered %llu true, "
               "%llu false; all reconnected %.3f s, all recovered %.3f s, last replayed message %.3f s after the "
               "drop (%llu of %llu sent when all had recovered)%s\n",
               static_cast<long long>(st.disconnected), ull(st.sent_at_drop), ull(st.reopened),
               ull(st.reconnect_failures), ull(st.recovered_true), ull(st.recovered_false),
               sj.at("seconds_to_all_reconnected").to_number<double>(),
               sj.at("seconds_to_all_recovered").to_number<double>(),
               sj.at("seconds_to_last_replayed").to_number<double>(), ull(st.sent_at_recovered), ull(d.sent),
               st.complete ? "" : " INCOMPLETE");
  std::fprintf(stderr,
               "storm: offsets %llu..%llu, lost %llu, duplicates %llu, reordered %llu, replayed %llu; server CPU %.3f s "
               "during the storm (%.3f s in the %.3f s before it)\n",
               ull(st.first_offset + 1), ull(st.last_offset), ull(sj.at("messages_lost").to_number<std::uint64_t>()),
               ull(d.duplicates), ull(d.reordered), ull(st.replayed), st.server_cpu_storm, st.server_cpu_before,
               secs(st.before_ns));
  if (!st.drop_error.empty()) std::fprintf(stderr, "storm: disconnect failed: %s\n", st.drop_error.c_str());
  for (const auto& [why, n] : st.reconnect_errors)
    std::fprintf(stderr, "  reconnect error x%llu: %s\n", ull(n), why.c_str());
}

void summary(const Options& o, const Results& r) {
  summary_connect(o, r);
  if (r.delivery.ran) summary_delivery(r.delivery);
  if (r.storm.ran) summary_storm(r.storm, r.delivery);
  for (const auto& [why, n] : r.closes) std::fprintf(stderr, "closed by server x%llu: %s\n", ull(n), why.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  Options o;
  try {
    o = parse_options(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "realtime-loadgen: %s\n", e.what());
    return 1;
  }
  const std::uint64_t limit = raise_fd_limit();
  if (o.connections + reserved_fds > limit) {
    std::fprintf(stderr,
                 "realtime-loadgen: %zu connections need %llu file descriptors, but this process may open only "
                 "%llu (RLIMIT_NOFILE hard limit). Run several processes (with --id-offset) or raise the limit.\n",
                 o.connections, (unsigned long long)(o.connections + reserved_fds), (unsigned long long)limit);
    return 1;
  }
  try {
    Run run(o);
    const int status = run.execute();
    Results r = run.results();
    r.fd_limit = limit;
    std::string text;
    write_json(text, report(o, r));
    std::printf("%s\n", text.c_str());
    std::fflush(stdout);
    summary(o, r);
    return status;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "realtime-loadgen: %s\n", e.what());
    return 1;
  }
}
