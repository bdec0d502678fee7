#include "shell/node.hpp"

#include <algorithm>
#include <stdexcept>
#include <thread>

#include <boost/asio/steady_timer.hpp>

#include "core/config_check.hpp"
#include "core/envelope.hpp"
#include "core/frame.hpp"
#include "core/subscribe_proxy.hpp"
#include "core/history.hpp"
#include "core/presence.hpp"
#include "core/pusher_webhook.hpp"
#include "core/redis_cluster.hpp"
#include "shell/adapters/broker_redis.hpp"
#include "shell/adapters/history_memory.hpp"
#include "shell/adapters/history_redis.hpp"
#include "shell/adapters/presence_memory.hpp"
#include "shell/adapters/presence_redis.hpp"
#include "shell/adapters/jwt_jwks.hpp"
#include "shell/adapters/make_broker.hpp"
#include "shell/adapters/random.hpp"
#include "shell/adapters/subscribe_authorizer_http.hpp"
#include "shell/adapters/tls_context.hpp"
#include "shell/hub.hpp"
#include "shell/pusher_webhook_claims.hpp"
#include "shell/pusher_webhooks.hpp"
#include "shell/loop.hpp"

namespace boundary::realtime::shell {

namespace {
Config checked(Config c, bool own_broker) {
  core::validate_config(c);
  if (own_broker && !c.redis_url.empty())
    throw std::invalid_argument("--redis: an application that passes its own broker must leave redis_url empty");
  if (c.threads == 0) c.threads = std::max(1u, std::thread::hardware_concurrency());
  if (c.node_id.empty()) c.node_id = random_hex(6);
  return c;
}
}  // namespace

Node::Node(Config config, std::unique_ptr<TokenVerifier> verifier, Hooks hooks, std::unique_ptr<Broker> broker)
    : config_(checked(std::move(config), broker != nullptr)),
      verifier_(std::move(verifier)),
      hooks_(std::move(hooks)),
      command_rules_{core::TopicPatterns(config_.publish_patterns),
                     core::TokenBucketPolicy(config_.commands_per_second, config_.command_burst),
                     static_cast<bool>(hooks_.on_action),
                     *core::effective_subscribe_policy(config_)},  // checked by validate_config
      ping_frame_(Message::from_wire(core::encode_frame(core::Opcode::ping, {}))) {
  const bool jwks = !config_.jwt_jwks_url.empty();
  if (!verifier_ && !jwks) throw std::invalid_argument("a token verifier is required");
  if (verifier_ && jwks)
    throw std::invalid_argument("--jwt-jwks-url: the server builds its own verifier; pass none");
  if (!config_.tls_cert_file.empty()) tls_ = std::make_unique<TlsContext>(config_.tls_cert_file, config_.tls_key_file);
  metrics_.compression = config_.compression;
  for (const auto& spec : config_.pusher_apps) pusher_apps_.push_back(*core::pusher::parse_app(spec));
  for (unsigned i = 0; i < config_.threads; ++i) loops_.push_back(std::make_unique<Loop>(*this, i));
  if (jwks) {
    // Fetches are rare and short: the first loop runs them, as it runs the Redis link.
    jwks_ = std::make_shared<JwksFetcher>(
        loops_.front()->io(), JwksSettings{*core::parse_http_url(config_.jwt_jwks_url), config_.jwt_jwks_ca_file},
        metrics_);
    verifier_ = std::make_unique<JwksVerifier>(jwks_->store());
  }
  if (command_rules_.subscribe == core::SubscribePolicy::proxy) {
    auto url = *core::parse_http_url(config_.subscribe_proxy);
    auto tls = url.tls ? make_http_client_tls({}) : nullptr;
    auto settings = std::make_shared<const SubscribeProxySettings>(SubscribeProxySettings{
        std::move(url), config_.api_key, config_.proxy_timeout, config_.proxy_max_in_flight, std::move(tls)});
    auto in_flight = std::make_shared<std::atomic<std::size_t>>(0);
    for (auto& loop : loops_)
      authorizers_.push_back(std::make_unique<HttpSubscribeAuthorizer>(loop->io(), settings, in_flight, metrics_));
  }
  if (broker) {
    broker_ = std::move(broker);
  } else {
    broker_ = make_broker(BrokerSettings{config_.redis_url, config_.node_id, config_.cluster_reply_timeout,
                                         config_.redis_prefix, config_.redis_password, config_.redis_tls_ca,
                                         config_.redis_tls_cert, config_.redis_tls_key},
                          loops_.front()->io(), [this] { return hub_->connection_count(); }, &metrics_);
  }
  metrics_.cluster = broker_->distributed();
  if (!config_.history.empty()) {
    core::HistoryRules rules(*core::parse_history_rules(config_.history));
    if (!broker_->distributed()) {
      history_ = std::make_unique<HistoryMemory>(std::move(rules), config_.history_max_bytes);
    } else if (auto* redis = dynamic_cast<BrokerRedis*>(broker_.get())) {
      // Offsets the same on every node: the streams live in Redis, next to the topics' channels.
      history_ = std::make_unique<HistoryRedis>(std::move(rules), *redis, config_.redis_prefix, &metrics_);
    } else {
      throw std::invalid_argument("--history: in cluster mode history lives in Redis; an application's own broker has none");
    }
    metrics_.history = history_.get();
  }
  hub_ = std::make_unique<Hub>(loops_, *broker_, metrics_, config_.max_subscriptions, history_.get());
  start_pusher_webhooks();
  // Pusher presence channels are tracked whenever there are Pusher apps.
  if (!config_.presence.empty() || !pusher_apps_.empty()) {
    // The first loop (the broker's, in cluster mode) runs the coalescing windows' timers.
    auto schedule = [&io = loops_.front()->io()](std::chrono::milliseconds delay, std::function<void()> work) {
      auto timer = std::make_shared<boost::asio::steady_timer>(io, delay);
      timer->async_wait([timer, work = std::move(work)](const boost::system::error_code& ec) {
        if (!ec) work();
      });
    };
    // A batch of events stays well within a subscriber's send queue (--max-outbound-bytes): a
    // loop flushes between the batches that reach it, unless 16 of them arrive during one of
    // its handlers.
    const std::size_t max_batch = config_.max_outbound_bytes / 16;
    if (!broker_->distributed()) {
      auto memory = std::make_unique<PresenceMemory>(config_.presence, core::presence_interval, std::move(schedule), max_batch);
      if (!pusher_apps_.empty()) memory->track_pusher_presence_channels();
      presence_ = std::move(memory);
    } else if (auto* redis = dynamic_cast<BrokerRedis*>(broker_.get())) {
      // Cluster-wide: the present users live in Redis, next to the topics' channels.
      auto shared = std::make_unique<PresenceRedis>(config_.presence, *redis, config_.redis_prefix,
                                                    core::presence_interval, std::move(schedule), max_batch);
      if (!pusher_apps_.empty()) shared->track_pusher_presence_channels();
      presence_ = std::move(shared);
    } else {
      throw std::invalid_argument("--presence: in cluster mode presence lives in Redis; an application's own broker has none");
    }
    // Events go to the topic's subscribers (the joining connection included), not into its
    // history. Events announced together leave as one buffer of frames: one write per subscriber.
    presence_->set_announce([this, hub = hub_.get()](const std::vector<PresenceEvent>& events) {
      const auto now = std::chrono::system_clock::now();
      const std::string& topic = events.front().topic;
      // Member webhooks: here on a single node; in cluster mode every node hears every event, so
      // the node whose change it was claims it (webhook_member).
      if (webhooks_ && !broker_->distributed()) {
        // Presence channels only: --presence patterns may also track public channels' topics.
        if (auto where = core::pusher::app_channel(topic, pusher_apps_);
            where && webhooks_->wants(where->app) &&
            core::pusher::channel_kind(where->channel) == core::pusher::ChannelKind::presence)
          for (const auto& e : events)
            webhooks_->emit(where->app, {e.kind == PresenceEvent::Kind::join ? "member_added" : "member_removed",
                                         std::string(where->channel), std::string(core::pusher::pusher_user(e.user_id)), {}, {}, {}});
      }
      // A Pusher channel's events go one per message: each is turned into its Pusher form.
      if (events.size() == 1 || (!pusher_apps_.empty() && core::pusher::is_presence_topic(topic))) {
        for (const auto& e : events) hub->publish_local(topic, core::make_envelope(core::presence_event(e), now, topic));
        return;
      }
      std::string frames;
      for (const auto& e : events) frames += core::make_envelope(core::presence_event(e), now, topic).frame();
      hub->publish_local(topic, Message::from_wire(std::move(frames)));
    });
    metrics_.presence = presence_.get();
    for (auto& l : loops_)
      l->registry().set_subscription_observer(
          [this, p = presence_.get()](std::string_view, const Identity& who, std::string_view topic, bool subscribed) {
            // A Pusher connection without a user yet is nobody to list.
            if (who.user_id.empty() || !p->tracks(topic)) return;
            if (subscribed) p->joined(topic, who.user_id, who.info());
            else p->left(topic, who.user_id);
            if (webhook_claims_) webhook_claims_->membership(topic, who.user_id, subscribed);
          });
  }
}

Node::~Node() {
  for (auto& l : loops_) l->join();
  // Sessions destroyed with the loops leave their topics without telling presence.
  for (auto& l : loops_) l->registry().set_subscription_observer({});
  // The broker goes first: closing its links completes its pending work with failures, whose
  // callbacks reach the history store and the hub; the hub no longer tells it of interests.
  hub_->detach();
  webhook_claims_.reset();
  broker_.reset();
  hub_.reset();
}

std::optional<core::AdmissionRefusal> Node::admit_connection(std::string_view user_id) {
  const core::ConnectionLimits limits{config_.max_connections, config_.max_connections_per_user};
  const bool per_user = limits.max_connections_per_user != 0;
  std::lock_guard lock(admission_mutex_);
  auto it = per_user ? admitted_per_user_.find(user_id) : admitted_per_user_.end();
  const core::ConnectionCounts counts{admitted_, it == admitted_per_user_.end() ? 0 : it->second};
  if (auto refusal = core::decide_admission(counts, limits)) return refusal;
  ++admitted_;
  if (per_user) {
    if (it == admitted_per_user_.end()) it = admitted_per_user_.emplace(std::string(user_id), 0).first;
    ++it->second;
  }
  return std::nullopt;
}

void Node::release_connection(std::string_view user_id) noexcept {
  std::lock_guard lock(admission_mutex_);
  if (admitted_ > 0) --admitted_;
  if (auto it = admitted_per_user_.find(user_id); it != admitted_per_user_.end() && --it->second == 0)
    admitted_per_user_.erase(it);
}

void Node::start_broker() { broker_->start(); }

void Node::start_jwks() {
  if (jwks_) jwks_->start();
}

void Node::add_route(std::string method, std::string path, Server::RouteHandler handler) {
  routes_[{std::move(method), std::move(path)}] = std::move(handler);
}

const Server::RouteHandler* Node::find_route(std::string_view method, std::string_view path) const {
  auto it = routes_.find(std::pair<std::string, std::string>(method, path));
  return it == routes_.end() ? nullptr : &it->second;
}

std::optional<std::size_t> Node::pusher_app_by_key(std::string_view key) const noexcept {
  for (std::size_t i = 0; i < pusher_apps_.size(); ++i)
    if (pusher_apps_[i].key == key) return i;
  return std::nullopt;
}

std::optional<std::size_t> Node::pusher_app_by_id(std::string_view id) const noexcept {
  for (std::size_t i = 0; i < pusher_apps_.size(); ++i)
    if (pusher_apps_[i].id == id) return i;
  return std::nullopt;
}

bool Node::lists_cluster_topics() const noexcept { return dynamic_cast<const BrokerRedis*>(broker_.get()) != nullptr; }

void Node::list_cluster_topics(std::string topic_prefix,
                               std::function<void(std::optional<std::vector<std::string>>)> done) {
  static_cast<BrokerRedis&>(*broker_).topic_channels(std::move(topic_prefix), std::move(done));
}

// channel_occupied / channel_vacated follow the node's first and last subscriber of a topic. On
// a single node those are the server's; in cluster mode WebhookClaims decides in Redis whether a
// node's change was the cluster's, so webhooks need the Redis broker there.
void Node::start_pusher_webhooks() {
  const bool any = std::any_of(pusher_apps_.begin(), pusher_apps_.end(),
                               [](const core::pusher::App& a) { return !a.webhook.empty(); });
  if (!any) return;
  if (broker_->distributed() && !dynamic_cast<BrokerRedis*>(broker_.get()))
    throw std::invalid_argument("--pusher-app: in cluster mode webhooks are decided in Redis; an application's own "
                                "broker has none");
  webhooks_ = std::make_unique<PusherWebhooks>(loops_.front()->io(), pusher_apps_, config_.node_id.empty() ? "node" : config_.node_id,
                                               metrics_);
  metrics_.webhooks = true;
  if (broker_->distributed())
    webhook_claims_ = std::make_unique<WebhookClaims>(static_cast<BrokerRedis&>(*broker_), *webhooks_, pusher_apps_,
                                                      config_.redis_prefix);
  hub_->set_topic_observer([this](std::string_view topic, bool occupied) {
    if (broker_->distributed()) {
      if (webhook_claims_) webhook_claims_->occupancy(topic, occupied);
      return;
    }
    auto where = core::pusher::app_channel(topic, pusher_apps_);
    if (!where || !webhooks_->wants(where->app)) return;
    webhooks_->emit(where->app, {occupied ? "channel_occupied" : "channel_vacated", std::string(where->channel), {}, {}, {}, {}});
  });
  if (webhook_claims_) webhook_claims_->start();
}

}  // namespace boundary::realtime::shell
