#pragma once
// One load-generator run: connect N clients, then (by scenario) hold them, subscribe them, and
// drive a publisher while every delivery is timed and checked for loss, order and duplicates.
//
// Messages carry "seq" (the publisher's send number) and "t" (send time, CLOCK_MONOTONIC ns).
// Receivers find both with memmem and never parse the JSON: the generator must stay cheaper per
// delivery than the server. Per connection a bitset of delivered message indexes detects
// duplicates, and seq going backwards counts as a reorder.

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>

#include "histogram.hpp"
#include "http_client.hpp"
#include "options.hpp"
#include "reactor.hpp"
#include "ws_client.hpp"

namespace loadgen {

struct ConnectResults {
  std::uint64_t opened = 0;
  std::uint64_t failed = 0;
  std::map<std::string, std::uint64_t> errors;  // reason -> count
  Nanos first_start = 0;
  Nanos last_open = 0;
  Histogram handshake;  // connect() to the `connected` frame (the 101 for plain-ws, `40` for socketio)
  bool timed_out = false;
};

struct DeliveryResults {
  bool ran = false;
  std::uint64_t subscribers = 0;   // open clients when publishing began
  std::uint64_t subscribed = 0;    // `subscribed` replies (fanout)
  std::uint64_t expected = 0;
  std::uint64_t received = 0;      // every data message, duplicates included
  std::uint64_t unique = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t reordered = 0;
  std::uint64_t misrouted = 0;     // users: a message for another user
  std::uint64_t foreign = 0;       // seq outside this run's messages
  std::uint64_t sent = 0;
  std::uint64_t send_errors = 0;   // non-200 API answers, `error` replies, lost API connections
  std::string first_send_error;
  std::uint64_t server_delivered = 0;  // sum of the server's "delivered" counts
  std::uint64_t command_errors = 0;    // `error` replies to subscribers
  std::string first_command_error;
  std::uint64_t publisher_echoes = 0;  // plain-ws, socketio: the relay sent our own message back
  Nanos first_send = 0;
  Nanos last_send = 0;
  Nanos last_delivery = 0;
  Histogram latency;
  Histogram reply_latency;     // publisher request -> API response or `published` reply
  bool stalled = false;        // no progress for --drain seconds
  bool deadline_hit = false;
  std::string publisher_failed;
  double server_cpu_seconds = -1;
  double loadgen_cpu_seconds = -1;
};

// Scenario storm: every subscriber dropped at once, reconnecting and recovering from its last
// offset while publishing goes on. Loss, order and duplicates are in DeliveryResults, by offset.
struct StormResults {
  bool ran = false;
  std::uint64_t sent_at_drop = 0;       // messages sent when the disconnect request went out
  std::int64_t disconnected = -1;       // the server's answer: connections it closed
  std::string drop_error;               // the disconnect request failed
  std::uint64_t closed = 0;             // subscriber connections closed from the drop on
  std::uint64_t reconnects = 0;         // reconnect attempts started
  std::uint64_t reconnect_failures = 0; // attempts that failed before opening (each retried)
  std::map<std::string, std::uint64_t> reconnect_errors;
  std::uint64_t reopened = 0;
  std::uint64_t recovered_true = 0;
  std::uint64_t recovered_false = 0;
  std::uint64_t replayed = 0;           // deliveries at or below the LAST of a `recovered:true` reply
  std::uint64_t epoch_changes = 0;      // a reply naming another epoch than the first subscribe
  std::uint64_t sent_at_recovered = 0;  // messages sent when the last client recovered
  std::uint64_t first_offset = 0;       // the lowest LAST the first subscribes answered
  std::uint64_t last_offset = 0;        // the highest offset published
  std::string epoch;
  Nanos drop_at = 0;
  Nanos all_reopened = 0;   // the last reconnect opened
  Nanos all_recovered = 0;  // the last `subscribed` reply after a reconnect
  Nanos last_replayed = 0;  // the last delivery a `recovered:true` reply announced
  bool complete = false;    // every dropped client answered its recovering subscribe
  double server_cpu_before = -1;  // from the first send to the drop
  Nanos before_ns = 0;
  double server_cpu_storm = -1;   // from the drop to the last recovery
  double loadgen_cpu_storm = -1;
};

struct ServerSamples {
  std::int64_t rss_baseline = -1;
  std::int64_t rss_connected = -1;
  // After the first `warm_connections` opened: the marginal figure (rss_after_hold - rss_warm)
  // / (opened - warm) leaves out what the first connections page in once (code, libraries,
  // allocator arenas) and keeps what each further idle connection costs.
  std::int64_t rss_warm = -1;
  std::uint64_t warm_connections = 0;
  std::int64_t rss_after_hold = -1;
  std::int64_t rss_after_delivery = -1;
};

struct Results {
  ConnectResults connect;
  DeliveryResults delivery;
  StormResults storm;
  ServerSamples server;
  std::map<std::string, std::uint64_t> closes;  // open clients closed by the server, by reason
  std::map<std::string, std::uint64_t> closes_by_phase;
  Nanos started = 0;
  Nanos finished = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t fd_limit = 0;
};

class Run final : public WsHandler, public HttpHandler {
 public:
  explicit Run(const Options& options);
  ~Run() override;

  // Runs every phase of the scenario; returns 0, or 2 when a phase hit a deadline.
  int execute();
  const Results& results() const noexcept { return results_; }

  void on_open(WsClient& c, Nanos now) override;
  void on_message(WsClient& c, std::string_view payload, Nanos now) override;
  void on_failed(WsClient& c, const std::string& why) override;
  void on_closed(WsClient& c, const std::string& why) override;
  void on_response(int status, std::string_view body, Nanos sent, std::uint64_t tag, Nanos now) override;
  void on_http_error(const std::string& why, std::uint64_t tag, Nanos now) override;

 private:
  enum class Phase { connecting, holding, subscribing, delivering, done };

  template <class Done, class Tick>
  bool loop_until(Nanos deadline, Done done, Tick tick);
  void dispatch(std::uint64_t key, std::uint32_t events);

  bool connect_phase();
  void hold_phase();
  bool subscribe_phase();
  bool delivery_phase();
  bool open_publisher();
  std::uint64_t total_messages() const;
  void prepare_tracking();
  Nanos publish_tick(Nanos now, Nanos start);
  bool publisher_ready() const;
  void send_next();
  void send_batch(Nanos t);
  HttpClient* next_api();
  std::size_t api_turn() const;
  std::string message_json(std::uint64_t seq, Nanos t) const;
  void storm_tick(Nanos now);
  void storm_drop(Nanos now);
  void storm_delivery(WsClient& c, std::string_view payload, Nanos now);
  void storm_subscribed(WsClient& c, std::string_view payload, Nanos now);
  void storm_closed(WsClient& c);
  void storm_update_expected();
  void storm_check_complete(Nanos now);

  void start_client(std::size_t i, Nanos now);
  void expire_handshakes(Nanos now);
  std::string token_for(const std::string& user_id) const;
  std::string request_target(const std::string& user_id) const;
  void on_control(WsClient& c, std::string_view payload, Nanos now);
  void on_publisher_message(std::string_view payload, Nanos now);
  void forget_refused(std::uint64_t seq);
  Nanos take_request_time();
  void progress(Nanos now);

  const Options& o_;
  Results results_;
  Reactor reactor_;
  std::unique_ptr<WsPool> pool_;
  std::unique_ptr<HttpClient> control_;  // storm: the POST /api/disconnect
  std::vector<std::unique_ptr<HttpClient>> api_;  // --via api: the publisher's connections
  Phase phase_ = Phase::connecting;
  Nanos deadline_ = 0;
  std::string roles_json_;
  std::string pad_;

  // connect
  std::size_t next_client_ = 0;
  std::size_t in_flight_ = 0;
  std::deque<std::uint32_t> handshakes_;  // start order, so the oldest expires first
  std::uint64_t closed_ = 0;              // open clients the server closed

  // delivery
  std::size_t publisher_index_;  // the pool slot after the subscribers
  std::uint64_t bits_per_client_ = 0;
  std::vector<std::int64_t> last_by_connection_;  // several API connections: per subscriber and connection
  std::size_t awaiting_replies_ = 0;    // `publish` commands sent, not yet answered
  std::deque<Nanos> requests_sent_;     // their send times, oldest first
  Nanos request_sent_ = 0;
  Nanos last_progress_ = 0;
  Nanos next_progress_ = 0;

  // storm, per subscriber: the LAST its first subscribe answered, the highest offset received,
  // the LAST of its latest `recovered:true` reply, and whether it awaits a recovering reply.
  std::vector<std::uint64_t> base_;
  std::vector<std::uint64_t> last_offset_;
  std::vector<std::uint64_t> replay_until_;
  std::vector<std::uint8_t> recovering_;
  std::uint64_t base_sum_ = 0;
  std::uint64_t based_ = 0;               // subscribers with a base
  std::uint64_t storm_pending_ = 0;       // closed, not yet answered after reconnecting
  std::deque<std::uint32_t> reconnect_queue_;
  bool dropped_ = false;                  // the disconnect request went out
  bool drop_answered_ = false;
  double storm_self_cpu0_ = -1;
  double storm_server_cpu0_ = -1;
  double server_cpu_start_ = -1;          // at the start of the delivery phase
  Nanos last_recovery_ = 0;               // the latest `subscribed` reply after a reconnect
  std::uint64_t sent_at_last_recovery_ = 0;
};

}  // namespace loadgen
