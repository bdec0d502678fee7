// The Pusher protocol side of WsSession (docs/pusher.md): the frames a Pusher client sends and
// what they lead to. core::pusher decides (parsing, channel kinds, signatures, the frames); this
// carries it out on the same registry, hub and presence store as the native protocol.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <spdlog/spdlog.h>

#include "core/pusher.hpp"
#include "shell/hub.hpp"
#include "shell/loop.hpp"
#include "shell/node.hpp"
#include "shell/post_behind.hpp"
#include "shell/pusher_webhooks.hpp"
#include "shell/ws_session.hpp"

namespace boundary::realtime::shell {
namespace json = boost::json;
namespace pusher = core::pusher;

namespace {
// The data of a presence channel's subscription_succeeded: {"presence":{"ids","hash","count"}}.
// `self` (the subscriber's user) is listed even when the store has not recorded its join yet (a
// cluster's store writes joins after a short coalescing window): the subscriber is present, and
// its own member_added is not sent to it.
std::string presence_data(PresenceListing listing, const Identity& self) {
  const bool listed = std::any_of(listing.users.begin(), listing.users.end(),
                                  [&](const PresenceUser& u) { return u.user_id == self.user_id; });
  if (!listed) listing.users.push_back(PresenceUser{self.user_id, 1, self.info()});
  json::array ids;
  json::object hash;
  for (const auto& u : listing.users) {
    const auto id = pusher::pusher_user(u.user_id);
    ids.emplace_back(id);
    json::value info;
    if (u.info) {
      boost::system::error_code ec;
      info = json::parse(*u.info, ec);
      if (ec) info = nullptr;
    }
    hash[id] = std::move(info);
  }
  const auto count = ids.size();
  json::object presence{{"ids", std::move(ids)}, {"hash", std::move(hash)}, {"count", count}};
  return json::serialize(json::object{{"presence", std::move(presence)}});
}
}  // namespace

const pusher::App& WsSession::pusher_app() const noexcept { return loop_.node().pusher_apps()[pusher_app_ - 1u]; }

void WsSession::refuse_pusher(int code, std::string_view message) {
  if (state_ != State::open) return;
  deliver(Message::from_json(pusher::error(code, message)));
  close(static_cast<CloseCode>(code), message);
}

void WsSession::pusher_refuse(int code, std::string_view message) {
  loop_.node().metrics().command_errors.fetch_add(1, std::memory_order_relaxed);
  deliver(Message::from_json(pusher::error(code, message)));
}

void WsSession::handle_pusher_text(std::string_view text) {
  auto& node = loop_.node();
  node.metrics().messages_received.fetch_add(1, std::memory_order_relaxed);
  if (!node.command_rules().rate.try_take(bucket_full_at_, Clock::now())) {
    node.metrics().rate_limited.fetch_add(1, std::memory_order_relaxed);
    return pusher_refuse(pusher::error_client_events, "rate limit exceeded (--commands-per-second)");
  }
  auto frame = pusher::parse_client_frame(text);
  if (!frame) return pusher_refuse(frame.error().code, frame.error().message);
  if (std::holds_alternative<pusher::Ping>(*frame)) return deliver(Message::from_json(pusher::pong()));
  if (std::holds_alternative<pusher::Pong>(*frame)) return;
  if (auto* s = std::get_if<pusher::Subscribe>(&*frame)) return pusher_subscribe(std::move(*s));
  if (auto* u = std::get_if<pusher::Unsubscribe>(&*frame)) {
    if (*pusher::channel_kind(u->channel) == pusher::ChannelKind::user) return;
    loop_.registry().unsubscribe(id(), pusher::topic_of(pusher_app(), pusher_default_app(), u->channel));
    return;
  }
  if (auto* e = std::get_if<pusher::ClientEvent>(&*frame)) return pusher_client_event(std::move(*e));
  if (auto* s = std::get_if<pusher::Signin>(&*frame)) return pusher_signin(std::move(*s));
}

void WsSession::pusher_subscribe(pusher::Subscribe s) {
  auto& node = loop_.node();
  const auto& app = pusher_app();
  const auto kind = *pusher::channel_kind(s.channel);  // parse_client_frame checked it
  auto refuse = [&](std::string_view type, std::string_view why, int status) {
    node.metrics().command_errors.fetch_add(1, std::memory_order_relaxed);
    deliver(Message::from_json(pusher::subscription_error(s.channel, type, why, status)));
  };
  const bool presence = kind == pusher::ChannelKind::presence;
  if (kind == pusher::ChannelKind::user) {
    // pusher-js subscribes to its user's channel after pusher:signin. Its events go to the
    // signed-in user (Route::user), so there is nothing to subscribe, only to check.
    const Identity* who = loop_.registry().identity_of(id());
    if (!who || who->user_id.empty() || who->user_id != pusher::user_id_for(app, pusher_default_app(), s.channel.substr(16)))
      return refuse("AuthError", "sign in as this user first (pusher:signin)", 403);
    return deliver(Message::from_json(pusher::subscription_succeeded(s.channel)));
  }
  if (kind != pusher::ChannelKind::public_channel) {
    const auto& data = presence ? s.channel_data : std::optional<std::string>();
    if (presence && !s.channel_data) return refuse("AuthError", "presence channels need channel_data", 401);
    if (!pusher::channel_auth_ok(app, id(), s.channel, s.auth, data))
      return refuse("AuthError", "invalid signature for this connection and channel", 401);
  }
  const Identity* who = loop_.registry().identity_of(id());
  if (!who) return;
  auto topic = pusher::topic_of(app, pusher_default_app(), s.channel);
  const auto max = node.config().max_subscriptions;
  if (loop_.registry().check_subscribe(id(), topic, max) == ConnectionRegistry::SubscribeResult::limit_reached)
    return refuse("LimitReached", "subscription limit reached (--max-subscriptions)", 429);
  if (presence) {
    auto member = pusher::presence_member(*s.channel_data);
    if (!member || !pusher::valid_user_id(pusher_default_app(), member->user_id))
      return refuse("AuthError", "channel_data must hold a user_id (a string or number)", 400);
    if (member->user_info.size() > 1024) return refuse("AuthError", "user_info is over 1 KiB", 400);
    auto user = pusher::user_id_for(app, pusher_default_app(), member->user_id);
    if (auto why = pusher_become(*who, user)) return refuse("AuthError", *why, 400);
    who = loop_.registry().identity_of(id());
    auto info = member->user_info.empty() ? std::optional<std::string>() : std::optional<std::string>(member->user_info);
    const auto current = who->info();
    if (info.has_value() != (current != nullptr) || (current && *current != *info)) {
      Identity next = *who;
      auto profile = next.profile ? std::make_shared<ProfileClaims>(*next.profile) : std::make_shared<ProfileClaims>();
      profile->info = std::move(info);
      next.profile = std::move(profile);
      loop_.registry().replace_identity(id(), std::move(next));
    }
  }
  loop_.registry().subscribe(id(), topic, max);
  pusher_subscribed(s.channel, topic, presence);
}

void WsSession::pusher_subscribed(const std::string& channel, const std::string& topic, bool presence) {
  auto& node = loop_.node();
  auto* store = node.presence();
  if (presence && store && store->tracks(topic)) {
    // Listed under the store's order: the listing holds this connection's user, and every
    // member_added/removed announced after it reaches this connection after the reply.
    auto answer = [weak = weak_from_this(), &loop = loop_, channel](PresenceListing listing) {
      post_behind(loop.io(), [weak, channel, listing = std::move(listing)] {
        auto self = weak.lock();
        if (!self || !self->is_open()) return;
        if (!listing.available)
          return self->deliver(Message::from_json(
              pusher::subscription_error(channel, "ServerError", "presence is unavailable", 503)));
        const Identity* who = self->loop_.registry().identity_of(self->id());
        if (!who) return;
        self->deliver(Message::from_json(pusher::subscription_succeeded(channel, presence_data(std::move(listing), *who))));
      });
    };
    // Cluster: listed once the node's subscription is in effect everywhere, so that no event
    // announced after the listing misses this connection.
    if (!node.hub().distributed()) return store->list(topic, node.config().presence_max_users, std::move(answer));
    node.hub().when_ready([store, topic, max = node.config().presence_max_users, answer = std::move(answer)]() mutable {
      store->list(topic, max, std::move(answer));
    });
    return;
  }
  auto reply = Message::from_json(pusher::subscription_succeeded(channel));
  if (!node.hub().distributed()) return deliver(reply);
  // Cluster: answer once the node's subscription is in effect everywhere.
  node.hub().when_ready([weak = weak_from_this(), &loop = loop_, reply] {
    boost::asio::post(loop.io(), [weak, reply] {
      if (auto self = weak.lock(); self && self->is_open()) self->deliver(reply);
    });
  });
}

std::optional<std::string> WsSession::pusher_become(const Identity& who, const std::string& user_id) {
  if (who.user_id == user_id) return std::nullopt;
  if (!who.user_id.empty()) return "this connection already belongs to another user";
  // Presence knows this connection by its current id on the tracked topics it is subscribed to
  // (public channels matched by --presence): a new id would strand those entries.
  if (auto* store = loop_.node().presence())
    for (const auto& topic : loop_.registry().topics_of(id()))
      if (store->tracks(topic)) return "sign in or join a presence channel before subscribing to tracked channels";
  Identity next = who;
  next.user_id = user_id;
  loop_.registry().replace_identity(id(), std::move(next));
  return std::nullopt;
}

void WsSession::pusher_client_event(pusher::ClientEvent e) {
  const auto kind = *pusher::channel_kind(e.channel);
  if (kind != pusher::ChannelKind::private_channel && kind != pusher::ChannelKind::presence)
    return pusher_refuse(pusher::error_client_events, "client events are for private and presence channels only");
  auto topic = pusher::topic_of(pusher_app(), pusher_default_app(), e.channel);
  const auto check = loop_.registry().check_subscribe(id(), topic, 0);
  if (check != ConnectionRegistry::SubscribeResult::already_subscribed)
    return pusher_refuse(pusher::error_client_events, "subscribe to the channel before sending client events on it");
  // On a presence channel the event names its sender's user.
  std::string_view user;
  const Identity* who = loop_.registry().identity_of(id());
  if (kind == pusher::ChannelKind::presence && who) user = who->user_id;
  auto message = pusher::native_message(e.event, e.data, id(), user);
  if (auto* hooks = loop_.node().pusher_webhooks(); hooks && hooks->wants(pusher_app_ - 1u))
    hooks->emit(pusher_app_ - 1u, {"client_event", e.channel, std::string(pusher::pusher_user(user)), e.event, e.data,
                                   std::string(id())});
  loop_.node().hub().send(Route::topic, std::move(topic), std::move(message), SendOptions{false}, [](Delivery) {});
}

void WsSession::pusher_signin(pusher::Signin s) {
  const auto& app = pusher_app();
  if (!pusher::signin_auth_ok(app, id(), s.user_data, s.auth))
    return pusher_refuse(4009, "invalid signature for pusher:signin");
  auto user = pusher::user_id_of(s.user_data);
  if (!user || !pusher::valid_user_id(pusher_default_app(), *user))
    return pusher_refuse(4009, "user_data must hold an \"id\" string");
  const Identity* who = loop_.registry().identity_of(id());
  if (!who) return;
  if (auto why = pusher_become(*who, pusher::user_id_for(app, pusher_default_app(), *user)))
    return pusher_refuse(4009, *why);
  deliver(Message::from_json(pusher::signin_success(s.user_data)));
}

}  // namespace boundary::realtime::shell
