#include "shell/pusher_api.hpp"

#include <atomic>
#include <chrono>
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

// GET /apps/<id>/channels/<name>: {"occupied", "subscription_count"[, "user_count"]}. Presence
// channels answer from the presence store (cluster-wide); others count this node's subscribers
// on every loop, and every node's in cluster mode.
void channel_info(Node& node, const std::string& topic, bool presence, Server::Responder reply) {
  auto* store = node.presence();
  if (presence && store && store->tracks(topic)) {
    store->stats(topic, [reply](PresenceStats s) {
      if (!s.available) return reply(answer(503, core::error_body("presence is unavailable")));
      json::object o{{"occupied", s.users > 0}, {"user_count", s.users}, {"subscription_count", s.connections}};
      reply(answer(200, json::serialize(o)));
    });
    return;
  }
  node.hub().control(Route::topic_count, topic, {}, SendOptions{true}, [reply](Delivery d) {
    if (!d.reached) return reply(answer(503, core::error_body("the cluster did not answer")));
    json::object o{{"occupied", d.count > 0}, {"subscription_count", d.count}};
    reply(answer(200, json::serialize(o)));
  });
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

// GET /apps/<id>/channels: the app's channels with subscribers, from every loop's registry; the
// presence store counts users. Single node: a cluster's listing needs every node's topics.
void channels_list(Node& node, std::size_t app, pusher::ChannelsQuery query, Server::Responder reply) {
  if (node.hub().distributed())
    return reply(answer(501, core::error_body("listing channels is not supported in cluster mode yet; "
                                              "GET /apps/<id>/channels/<channel> is")));
  struct Gather {
    std::mutex mutex;
    std::map<std::string, std::size_t> subscriptions;  // by channel
  };
  auto g = std::make_shared<Gather>();
  auto collect = [g, app, &apps = node.pusher_apps(), prefix = query.prefix](Loop& loop) -> std::size_t {
    loop.registry().for_each_topic([&](std::string_view topic, std::size_t n) {
      auto where = pusher::app_channel(topic, apps);
      if (!where || where->app != app || !where->channel.starts_with(prefix)) return;
      std::lock_guard lock(g->mutex);
      g->subscriptions[std::string(where->channel)] += n;
    });
    return 0;
  };
  auto* store = node.presence();
  const auto& apps = node.pusher_apps();
  node.hub().on_every_loop(std::move(collect), [g, query, reply, store, &apps, app](std::size_t) {
    auto channels = std::make_shared<std::vector<pusher::ChannelInfo>>();
    for (auto& [name, n] : g->subscriptions) channels->push_back({name, n, 0});
    if (!query.user_count || !store) return reply(answer(200, pusher::channels_body(*channels, query)));
    // user_count: one stats question per presence channel, answered in any order.
    auto remaining = std::make_shared<std::atomic<std::size_t>>(channels->size() + 1);
    auto done = [channels, remaining, reply, query] {
      if (remaining->fetch_sub(1) == 1) reply(answer(200, pusher::channels_body(*channels, query)));
    };
    for (std::size_t i = 0; i < channels->size(); ++i)
      store->stats(pusher::topic_of(apps[app], app == 0, (*channels)[i].name), [channels, i, done](PresenceStats s) {
        (*channels)[i].users = s.users;
        done();
      });
    done();
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
      return reply(answer(200, "{}"));
    }
    case pusher::ApiCall::batch_events: {
      auto events = pusher::parse_batch(request.body);
      if (!events) return reply(answer(events.error()));
      for (const auto& e : *events) dispatch(hub, app, default_app, e);
      return reply(answer(200, "{}"));
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
