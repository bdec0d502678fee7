#include "boundary/realtime/connection_registry.hpp"

#include <algorithm>
#include <cassert>
#include <unordered_map>

// GCC 12 reports a -Wstringop-overread false positive inside small_vector's inline-capacity
// copy (its length bound is the heap case's); the header is fine.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overread"
#endif
#include <boost/container/small_vector.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace boundary::realtime {
namespace {

struct Entry;

enum class GroupKind { all, user, role, topic };

// A set of connections (everyone, one user, one role or one topic) as a swap-remove vector.
// Most users have one connection: a group of one keeps it inline.
struct Group {
  GroupKind kind;
  const std::string* name;  // the key of the map node holding this group (nodes never move)
  boost::container::small_vector<Entry*, 1> members;
  // Topic streams: members that joined at a history snapshot ignore offsets up to theirs (the
  // deliveries already on their way to this loop). Pruned as soon as a later offset arrives,
  // so it holds only the subscribes of the last moments.
  std::vector<std::pair<const Entry*, std::uint64_t>> floors;
  // Topic streams: the offset last delivered through this group (0: none yet).
  std::uint64_t last_offset = 0;
};

// Where an entry sits inside one group, so that leaving is O(1).
struct Membership {
  Group* group;
  std::uint32_t index;
};

// What the registry holds per connection. Entries and groups live in the nodes of their maps
// (node-based, so their addresses are stable) rather than in allocations of their own, and
// the memberships of a connection without topics (everyone, its user, its role) are inline:
// an idle connection costs few and small allocations.
struct Entry {
  std::shared_ptr<Connection> connection;
  Identity identity;
  boost::container::small_vector<Membership, 3> memberships;
};

// The entry's topics: memberships past everyone, the user and the roles. Counted when asked
// (subscribe scans the memberships anyway) rather than stored in every entry.
std::size_t topics_in(const Entry& e) {
  return static_cast<std::size_t>(std::count_if(e.memberships.begin(), e.memberships.end(), [](const Membership& m) {
    return m.group->kind == GroupKind::topic;
  }));
}

// Owning keys, looked up by string_view without a temporary string.
struct NameHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using GroupMap = std::unordered_map<std::string, Group, NameHash, std::equal_to<>>;

}  // namespace

struct ConnectionRegistry::Impl {
  std::unordered_map<std::string_view, Entry> entries;
  Group everyone{GroupKind::all, nullptr, {}, {}};
  GroupMap users, roles, topics;
  IndexObserver observer;
  SubscriptionObserver subscriptions;

  void notify(const Group& g, bool created) const {
    if (!observer) return;
    const auto kind = g.kind == GroupKind::user ? IndexKind::user : g.kind == GroupKind::role ? IndexKind::role
                                                                                             : IndexKind::topic;
    observer(kind, *g.name, created);
  }

  Entry* entry(std::string_view id) const {
    auto it = entries.find(id);
    return it == entries.end() ? nullptr : const_cast<Entry*>(&it->second);
  }

  static const Group* group(const GroupMap& map, std::string_view name) {
    auto it = map.find(name);
    return it == map.end() ? nullptr : &it->second;
  }

  void join(Entry& e, Group& g) {
    e.memberships.push_back({&g, static_cast<std::uint32_t>(g.members.size())});
    g.members.push_back(&e);
  }

  void join(Entry& e, GroupMap& map, GroupKind kind, std::string_view name) {
    auto it = map.find(name);
    if (it == map.end()) {
      it = map.try_emplace(std::string(name), Group{kind, nullptr, {}, {}}).first;
      it->second.name = &it->first;
      notify(it->second, true);
    }
    join(e, it->second);
  }

  // Swap-remove `e` from the group of its membership `m`, fixing the moved entry's index.
  void leave(const Membership& m) {
    auto& members = m.group->members;
    if (!m.group->floors.empty()) forget_floor(*m.group, members[m.index]);
    Entry* moved = members.back();
    members[m.index] = moved;
    members.pop_back();
    if (m.index < members.size()) {
      for (auto& mm : moved->memberships)
        if (mm.group == m.group) { mm.index = m.index; break; }
    }
    if (members.empty() && m.group->kind != GroupKind::all) erase_group(*m.group);
  }

  void erase_group(Group& g) {
    notify(g, false);
    GroupMap& map = g.kind == GroupKind::user ? users : g.kind == GroupKind::role ? roles : topics;
    map.erase(map.find(*g.name));  // by position: the argument is the node's own key
  }

  static void forget_floor(Group& g, const Entry* e) {
    std::erase_if(g.floors, [e](const auto& f) { return f.first == e; });
  }

  static std::size_t deliver_stream(const Group* g, const Message& message, std::uint64_t offset) {
    if (!g) return 0;
    if (offset == 0) return deliver(g, message);
    auto& group = *const_cast<Group*>(g);
    // A stream's deliveries reach a loop in offset order. One that skips offsets means the ones
    // between were lost on their way to this node (cluster mode: its Redis subscription dropped
    // meanwhile). Members that were here for them close with 1012, and their clients reconnect
    // and recover from their own position; a member whose floor is past the gap has them all.
    const bool gap = group.last_offset != 0 && offset > group.last_offset + 1;
    group.last_offset = offset;  // also when it goes back: the stream restarted under a new epoch
    if (group.floors.empty() && !gap) return deliver(g, message);
    auto& floors = group.floors;
    std::size_t n = 0;
    for (Entry* e : g->members) {
      if (!e->connection->is_open()) continue;
      auto f = std::find_if(floors.begin(), floors.end(), [e](const auto& fl) { return fl.first == e; });
      if (f != floors.end() && offset <= f->second) continue;
      if (gap && (f == floors.end() || f->second + 1 < offset)) {
        e->connection->close(CloseCode::service_restart, "messages were lost: reconnect and recover");
        continue;
      }
      e->connection->send(message);
      ++n;
    }
    // Offsets only grow: a floor below this one filters nothing any more.
    std::erase_if(floors, [offset](const auto& fl) { return fl.second < offset; });
    return n;
  }

  static std::size_t deliver(const Group* g, const Message& message) {
    if (!g) return 0;
    std::size_t n = 0;
    for (Entry* e : g->members) {
      if (!e->connection->is_open()) continue;
      e->connection->send(message);
      ++n;
    }
    return n;
  }

  static std::vector<Connection*> connections(const Group* g) {
    std::vector<Connection*> out;
    if (!g) return out;
    out.reserve(g->members.size());
    for (Entry* e : g->members) out.push_back(e->connection.get());
    return out;
  }
};

ConnectionRegistry::ConnectionRegistry() : impl_(std::make_unique<Impl>()) {}
ConnectionRegistry::~ConnectionRegistry() = default;

bool ConnectionRegistry::register_connection(std::shared_ptr<Connection> connection, Identity identity) {
  if (!connection || impl_->entry(connection->id())) return false;
  // Keyed by a view of the connection's own id, valid while the entry holds the connection.
  Entry& ref = impl_->entries.try_emplace(connection->id()).first->second;
  ref.connection = std::move(connection);
  ref.identity = std::move(identity);
  impl_->join(ref, impl_->everyone);
  impl_->join(ref, impl_->users, GroupKind::user, ref.identity.user_id);
  for (std::size_t i = 0; i < ref.identity.roles.size(); ++i) {
    const auto& role = ref.identity.roles[i];
    // A role listed twice in a token is one membership.
    if (std::find(ref.identity.roles.begin(), ref.identity.roles.begin() + i, role) ==
        ref.identity.roles.begin() + i)
      impl_->join(ref, impl_->roles, GroupKind::role, role);
  }
  return true;
}

bool ConnectionRegistry::unregister_connection(std::string_view connection_id) {
  auto it = impl_->entries.find(connection_id);
  if (it == impl_->entries.end()) return false;
  Entry& e = it->second;
  // Leave in reverse order so no membership of this entry is moved while still pending.
  while (!e.memberships.empty()) {
    Membership m = e.memberships.back();
    if (impl_->subscriptions && m.group->kind == GroupKind::topic)
      impl_->subscriptions(connection_id, e.identity, *m.group->name, false);
    e.memberships.pop_back();
    impl_->leave(m);
  }
  impl_->entries.erase(it);
  return true;
}

bool ConnectionRegistry::replace_identity(std::string_view connection_id, Identity identity) {
  Entry* e = impl_->entry(connection_id);
  if (!e) return false;
  e->identity = std::move(identity);
  const Identity& id = e->identity;
  auto member_of = [e](GroupKind kind, std::string_view name) {
    return std::any_of(e->memberships.begin(), e->memberships.end(), [&](const Membership& m) {
      return m.group->kind == kind && *m.group->name == name;
    });
  };
  // Join first, then leave: a group in both identities is never left, so never erased.
  if (!member_of(GroupKind::user, id.user_id)) impl_->join(*e, impl_->users, GroupKind::user, id.user_id);
  for (const auto& role : id.roles)
    if (!member_of(GroupKind::role, role)) impl_->join(*e, impl_->roles, GroupKind::role, role);
  for (std::size_t i = e->memberships.size(); i-- > 0;) {
    const Group& g = *e->memberships[i].group;
    const bool kept = g.kind == GroupKind::user   ? *g.name == id.user_id
                      : g.kind == GroupKind::role ? id.has_role(*g.name)
                                                  : true;
    if (kept) continue;
    Membership m = e->memberships[i];
    e->memberships.erase(e->memberships.begin() + static_cast<std::ptrdiff_t>(i));
    impl_->leave(m);
  }
  return true;
}

Connection* ConnectionRegistry::find(std::string_view connection_id) const {
  Entry* e = impl_->entry(connection_id);
  return e ? e->connection.get() : nullptr;
}

const Identity* ConnectionRegistry::identity_of(std::string_view connection_id) const {
  Entry* e = impl_->entry(connection_id);
  return e ? &e->identity : nullptr;
}

std::vector<Connection*> ConnectionRegistry::find_by_user(std::string_view user_id) const {
  return Impl::connections(Impl::group(impl_->users, user_id));
}

std::vector<Connection*> ConnectionRegistry::find_by_role(std::string_view role) const {
  return Impl::connections(Impl::group(impl_->roles, role));
}

std::vector<Connection*> ConnectionRegistry::all() const { return Impl::connections(&impl_->everyone); }

std::size_t ConnectionRegistry::count() const noexcept { return impl_->entries.size(); }

std::size_t ConnectionRegistry::user_connection_count(std::string_view user_id) const {
  const Group* g = Impl::group(impl_->users, user_id);
  return g ? g->members.size() : 0;
}

ConnectionRegistry::SubscribeResult ConnectionRegistry::check_subscribe(std::string_view connection_id,
                                                                        std::string_view topic,
                                                                        std::size_t max_subscriptions) const {
  Entry* e = impl_->entry(connection_id);
  if (!e) return SubscribeResult::unknown_connection;
  if (const Group* g = Impl::group(impl_->topics, topic)) {
    for (const auto& m : e->memberships)
      if (m.group == g) return SubscribeResult::already_subscribed;
  }
  if (max_subscriptions != 0 && topics_in(*e) >= max_subscriptions) return SubscribeResult::limit_reached;
  return SubscribeResult::subscribed;
}

ConnectionRegistry::SubscribeResult ConnectionRegistry::subscribe(std::string_view connection_id,
                                                                  std::string_view topic,
                                                                  std::size_t max_subscriptions,
                                                                  std::uint64_t skip_through) {
  const auto r = check_subscribe(connection_id, topic, max_subscriptions);
  if (r == SubscribeResult::subscribed) {
    Entry& e = *impl_->entry(connection_id);
    impl_->join(e, impl_->topics, GroupKind::topic, topic);
    if (impl_->subscriptions) impl_->subscriptions(connection_id, e.identity, topic, true);
  }
  if ((r == SubscribeResult::subscribed || r == SubscribeResult::already_subscribed) && skip_through > 0) {
    auto it = impl_->topics.find(topic);
    const Entry* e = impl_->entry(connection_id);
    Impl::forget_floor(it->second, e);
    it->second.floors.emplace_back(e, skip_through);
  }
  return r;
}

bool ConnectionRegistry::unsubscribe(std::string_view connection_id, std::string_view topic) {
  Entry* e = impl_->entry(connection_id);
  const Group* g = Impl::group(impl_->topics, topic);
  if (!e || !g) return false;
  auto it = std::find_if(e->memberships.begin(), e->memberships.end(),
                         [g](const Membership& m) { return m.group == g; });
  if (it == e->memberships.end()) return false;
  Membership m = *it;
  if (impl_->subscriptions) impl_->subscriptions(connection_id, e->identity, topic, false);
  e->memberships.erase(it);
  impl_->leave(m);
  return true;
}

std::vector<std::string> ConnectionRegistry::topics_of(std::string_view connection_id) const {
  std::vector<std::string> out;
  if (Entry* e = impl_->entry(connection_id))
    for (const auto& m : e->memberships)
      if (m.group->kind == GroupKind::topic) out.push_back(*m.group->name);
  return out;
}

std::size_t ConnectionRegistry::subscriber_count(std::string_view topic) const {
  const Group* g = Impl::group(impl_->topics, topic);
  return g ? g->members.size() : 0;
}

std::size_t ConnectionRegistry::topic_count() const noexcept { return impl_->topics.size(); }

std::size_t ConnectionRegistry::send_to_user(std::string_view user_id, const Message& message) const {
  return Impl::deliver(Impl::group(impl_->users, user_id), message);
}

std::size_t ConnectionRegistry::send_to_role(std::string_view role, const Message& message) const {
  return Impl::deliver(Impl::group(impl_->roles, role), message);
}

std::size_t ConnectionRegistry::broadcast(const Message& message) const {
  return Impl::deliver(&impl_->everyone, message);
}

bool ConnectionRegistry::send_to_connection(std::string_view connection_id, const Message& message) const {
  Entry* e = impl_->entry(connection_id);
  if (!e || !e->connection->is_open()) return false;
  e->connection->send(message);
  return true;
}

std::size_t ConnectionRegistry::publish(std::string_view topic, const Message& message, std::uint64_t offset) const {
  return Impl::deliver_stream(Impl::group(impl_->topics, topic), message, offset);
}

void ConnectionRegistry::set_index_observer(IndexObserver observer) { impl_->observer = std::move(observer); }

void ConnectionRegistry::set_subscription_observer(SubscriptionObserver observer) {
  impl_->subscriptions = std::move(observer);
}

void ConnectionRegistry::for_each(const std::function<void(Connection&, const Identity&)>& visit) const {
  // Snapshot first: a visitor may close connections, which may unregister them.
  std::vector<std::shared_ptr<Connection>> snapshot;
  snapshot.reserve(impl_->everyone.members.size());
  for (Entry* e : impl_->everyone.members) snapshot.push_back(e->connection);
  for (const auto& c : snapshot)
    if (Entry* e = impl_->entry(c->id()); e && e->connection == c) visit(*c, e->identity);
}

}  // namespace boundary::realtime
