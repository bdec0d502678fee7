#include "shell/pusher_api.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <memory>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "core/pusher.hpp"
#include "shell/hub.hpp"
#include "shell/loop.hpp"
#include "shell/node.hpp"

namespace boundary::realtime::shell {
namespace json = boost::json;
namespace pusher = core::pusher;

namespace {

HttpResponse answer(unsigned status, std::string body) { return HttpResponse{status, std::move(body), "application/json"}; }
HttpResponse answer(const core::HttpRefusal& r) { return answer(r.status, r.body); }

// One event to its channels, in order: a topic per channel, or the signed-in user for a user
// channel. Fire-and-forget, as Pusher's API is: the answer does not wait for counts.
void dispatch(Hub& hub, const pusher::App& app, bool default_app, const pusher::Event& e) {
  for (const auto& channel : e.channels) {
    auto message = pusher::native_message(e.name, e.data, e.socket_id);
    if (*pusher::channel_kind(channel) == pusher::ChannelKind::user) {
      message["topic"] = channel;  // the channel the Pusher form names
      hub.send(Route::user, pusher::user_id_for(app, default_app, channel.substr(16)), std::move(message),
               SendOptions{false}, {});
      continue;
    }
    hub.send(Route::topic, pusher::topic_of(app, default_app, channel), std::move(message), SendOptions{false}, {});
  }
}

// One channel's counts, cluster-wide: a presence channel's from the presence store (users and
// their connections), any other's from every loop's registry, and every node's in cluster mode.
// `done(available, counts)`.
void count_channel(Node& node, const std::string& topic, bool presence,
                   std::function<void(bool, pusher::ChannelInfo)> done) {
  auto* store = node.presence();
  if (presence && store && store->tracks(topic))
    return store->stats(topic, [done](PresenceStats s) { done(s.available, {{}, s.connections, s.users}); });
  node.hub().control(Route::topic_count, topic, {}, SendOptions{true},
                     [done](Delivery d) { done(d.reached, {{}, d.count, 0}); });
}

// GET /apps/<id>/channels/<name>: {"occupied", "subscription_count"[, "user_count"]}.
void channel_info(Node& node, const std::string& topic, bool presence, Server::Responder reply) {
  count_channel(node, topic, presence, [reply, presence](bool available, pusher::ChannelInfo c) {
    if (!available) return reply(answer(503, core::error_body("the channel's counts are unavailable")));
    json::object o{{"occupied", c.subscriptions > 0}, {"subscription_count", c.subscriptions}};
    if (presence) o["user_count"] = c.users;
    reply(answer(200, json::serialize(o)));
  });
}

// The counts an events answer carries (`info`): every (channel, wanted) pair counted like
// GET /apps/<id>/channels/<name>, then `body` of them. Channels not wanted, and user channels,
// count nothing.
void answer_counts(Node& node, const pusher::App& app, bool default_app,
                   std::vector<std::pair<std::string, bool>> channels,
                   std::function<std::string(const std::vector<pusher::ChannelInfo>&)> body, Server::Responder reply) {
  struct Gather {
    std::vector<pusher::ChannelInfo> counts;
    std::atomic<std::size_t> remaining{1};
    std::atomic<bool> failed{false};
  };
  auto g = std::make_shared<Gather>();
  g->counts.resize(channels.size());
  g->remaining = channels.size() + 1;
  auto done = [g, body = std::move(body), reply] {
    if (g->remaining.fetch_sub(1) != 1) return;
    if (g->failed) return reply(answer(503, core::error_body("the channels' counts are unavailable")));
    reply(answer(200, body(g->counts)));
  };
  for (std::size_t i = 0; i < channels.size(); ++i) {
    const auto& [channel, wanted] = channels[i];
    const auto kind = *pusher::channel_kind(channel);
    if (!wanted || kind == pusher::ChannelKind::user) {
      done();
      continue;
    }
    count_channel(node, pusher::topic_of(app, default_app, channel), kind == pusher::ChannelKind::presence,
                  [g, i, done](bool available, pusher::ChannelInfo c) {
                    if (!available) g->failed = true;
                    g->counts[i] = c;
                    done();
                  });
  }
  done();
}

void channel_users(Node& node, const std::string& topic, Server::Responder reply) {
  auto* store = node.presence();
  if (!store || !store->tracks(topic)) return reply(answer(400, core::error_body("only presence channels have users")));
  store->list(topic, node.config().presence_max_users, [reply](PresenceListing listing) {
    if (!listing.available) return reply(answer(503, core::error_body("presence is unavailable")));
    json::array users;
    for (const auto& u : listing.users) users.emplace_back(json::object{{"id", pusher::pusher_user(u.user_id)}});
    reply(answer(200, json::serialize(json::object{{"users", std::move(users)}})));
  });
}

// GET /apps/<id>/channels: the app's channels with subscribers. This node's loops list theirs;
// in cluster mode Redis lists the topic channels the nodes subscribe to (every node, this one
// included, subscribes to the topics it has subscribers for) and each channel's subscriptions
// are counted on every node, as for GET /apps/<id>/channels/<name>. The presence store counts
// users. Channels whose count comes back 0 (their last subscriber just left) are not listed.
struct ChannelsGather {
  std::mutex mutex;
  std::map<std::string, std::size_t> subscriptions;  // by channel
  std::vector<pusher::ChannelInfo> channels;
  std::atomic<bool> failed{false};
};

// user_count: presence stats for the listed channels, a batch at a time like the counts below;
// 503 when presence could not answer.
void channels_answer(Node& node, std::size_t app, const pusher::ChannelsQuery& query,
                     const std::shared_ptr<ChannelsGather>& g, Server::Responder reply, std::size_t from = 0) {
  auto* store = node.presence();
  if (!query.user_count || !store || from >= g->channels.size() || g->failed) {
    if (g->failed) return reply(answer(503, core::error_body("presence is unavailable")));
    return reply(answer(200, pusher::channels_body(g->channels, query)));
  }
  constexpr std::size_t batch = 256;
  const std::size_t to = std::min(g->channels.size(), from + batch);
  auto remaining = std::make_shared<std::atomic<std::size_t>>(to - from);
  const auto& apps = node.pusher_apps();
  for (std::size_t i = from; i < to; ++i)
    store->stats(pusher::topic_of(apps[app], app == 0, g->channels[i].name),
                 [&node, app, query, g, reply, remaining, i, to](PresenceStats s) {
                   if (!s.available) g->failed = true;
                   g->channels[i].users = s.users;
                   if (remaining->fetch_sub(1) == 1) channels_answer(node, app, query, g, reply, to);
                 });
}

// Cluster mode: every channel's subscriptions on every node, a batch of questions at a time (a
// listing of many channels must not flood the cluster), then the answer.
constexpr std::size_t count_batch = 256;

void count_cluster_channels(Node& node, std::size_t app, pusher::ChannelsQuery query,
                            std::shared_ptr<ChannelsGather> g, Server::Responder reply, std::size_t from = 0) {
  if (from >= g->channels.size() || g->failed) {
    if (g->failed) return reply(answer(503, core::error_body("the cluster did not answer")));
    std::erase_if(g->channels, [](const pusher::ChannelInfo& c) { return c.subscriptions == 0; });
    return channels_answer(node, app, query, g, reply);
  }
  const std::size_t to = std::min(g->channels.size(), from + count_batch);
  auto remaining = std::make_shared<std::atomic<std::size_t>>(to - from);
  const auto& apps = node.pusher_apps();
  for (std::size_t i = from; i < to; ++i)
    node.hub().control(Route::topic_count, pusher::topic_of(apps[app], app == 0, g->channels[i].name), {},
                       SendOptions{true}, [&node, app, query, g, reply, remaining, i, to](Delivery d) {
                         if (!d.reached) g->failed = true;
                         g->channels[i].subscriptions = d.count;
                         if (remaining->fetch_sub(1) == 1) count_cluster_channels(node, app, query, g, reply, to);
                       });
}

void channels_list(Node& node, std::size_t app, pusher::ChannelsQuery query, Server::Responder reply) {
  const bool cluster = node.hub().distributed();
  if (cluster && !node.lists_cluster_topics())
    return reply(answer(501, core::error_body("listing channels needs the Redis broker in cluster mode; "
                                              "GET /apps/<id>/channels/<channel> works with any")));
  auto g = std::make_shared<ChannelsGather>();
  const auto& apps = node.pusher_apps();
  auto keep = [g, app, &apps, prefix = query.prefix](std::string_view topic, std::size_t n) {
    auto where = pusher::app_channel(topic, apps);
    if (!where || where->app != app || !where->channel.starts_with(prefix)) return;
    std::lock_guard lock(g->mutex);
    g->subscriptions[std::string(where->channel)] += n;
  };
  auto collect = [keep](Loop& loop) -> std::size_t {
    loop.registry().for_each_topic(keep);
    return 0;
  };
  node.hub().on_every_loop(std::move(collect), [&node, app, query, reply, g, keep, cluster](std::size_t) {
    auto listed = [&node, app, query, reply, g](bool counted) {
      for (auto& [name, n] : g->subscriptions) g->channels.push_back({name, n, 0});
      if (!counted && query.subscription_count) return count_cluster_channels(node, app, query, g, reply);
      channels_answer(node, app, query, g, reply);
    };
    if (!cluster) return listed(true);
    // This node's channels stay listed while Redis is unreachable only if Redis answers: a
    // listing is the cluster's or an error, never one node's view presented as the cluster's.
    node.list_cluster_topics(pusher::topic_of(node.pusher_apps()[app], app == 0, query.prefix),
                             [reply, g, keep, listed](std::optional<std::vector<std::string>> topics) {
                               if (!topics) return reply(answer(503, core::error_body("the cluster did not answer")));
                               for (const auto& t : *topics) keep(t, 0);
                               listed(false);
                             });
  });
}

}  // namespace

void handle_pusher_api(Node& node, PusherApiRequest request, Server::Responder reply) {
  const auto q = request.target.find('?');
  const std::string_view path = std::string_view(request.target).substr(0, q);
  auto route = pusher::route_api(request.method, path);
  if (!route) return reply(answer(route.error()));
  const auto index = node.pusher_app_by_id(route->app_id);
  if (!index) return reply(answer(404, core::error_body("unknown app")));
  const auto& app = node.pusher_apps()[*index];
  const bool default_app = *index == 0;
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  if (auto bad = pusher::check_signature(app, request.method, request.target, request.body, now)) {
    return reply(answer(*bad));
  }
  auto& hub = node.hub();
  switch (route->call) {
    case pusher::ApiCall::events: {
      auto event = pusher::parse_event(request.body);
      if (!event) return reply(answer(event.error()));
      dispatch(hub, app, default_app, *event);
      if (!event->wants_info()) return reply(answer(200, "{}"));
      std::vector<std::pair<std::string, bool>> channels;
      for (const auto& c : event->channels) channels.emplace_back(c, true);
      return answer_counts(node, app, default_app, std::move(channels),
                           [e = std::move(*event)](const auto& counts) { return pusher::events_body(e, counts); },
                           std::move(reply));
    }
    case pusher::ApiCall::batch_events: {
      auto events = pusher::parse_batch(request.body);
      if (!events) return reply(answer(events.error()));
      for (const auto& e : *events) dispatch(hub, app, default_app, e);
      std::vector<std::pair<std::string, bool>> channels;
      for (const auto& e : *events) channels.emplace_back(e.channels.front(), e.wants_info());
      if (std::none_of(channels.begin(), channels.end(), [](const auto& c) { return c.second; }))
        return reply(answer(200, "{}"));
      return answer_counts(node, app, default_app, std::move(channels),
                           [es = std::move(*events)](const auto& counts) { return pusher::batch_body(es, counts); },
                           std::move(reply));
    }
    case pusher::ApiCall::channel: {
      const bool presence = *pusher::channel_kind(route->channel) == pusher::ChannelKind::presence;
      return channel_info(node, pusher::topic_of(app, default_app, route->channel), presence, std::move(reply));
    }
    case pusher::ApiCall::channel_users:
      if (*pusher::channel_kind(route->channel) != pusher::ChannelKind::presence)
        return reply(answer(400, core::error_body("only presence channels have users")));
      return channel_users(node, pusher::topic_of(app, default_app, route->channel), std::move(reply));
    case pusher::ApiCall::terminate_connections:
      hub.control(Route::disconnect_user, pusher::user_id_for(app, default_app, route->user_id), {}, SendOptions{false},
                  {});
      return reply(answer(200, "{}"));
    case pusher::ApiCall::channels: {
      auto query = pusher::parse_channels_query(request.target);
      if (!query) return reply(answer(query.error()));
      return channels_list(node, *index, std::move(*query), std::move(reply));
    }
  }
}

}  // namespace boundary::realtime::shell
