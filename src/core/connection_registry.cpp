#include "boundary/realtime/connection_registry.hpp"

#include <algorithm>
#include <cassert>
#include <optional>
#include <unordered_map>

#include <boost/unordered/unordered_flat_set.hpp>

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

enum class GroupKind { all, role, topic };

// A set of connections (everyone, one role or one topic) as a swap-remove vector. A topic
// with one subscriber (a user's own topic) keeps it inline. Users are indexed differently
// (see Entry::user_next): most users have one connection, and a group per user cost a map node.
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

// Where an entry sits: its role and topic memberships, in the order joined (the first inline:
// most connections hold one role and no topic; more in an array on the heap, whose capacity
// is kept in the array's first slot), and its place in `everyone`. 32 bytes: a
// small_vector<Membership, 1> alone takes 40 (its size and capacity are 64-bit).
class Memberships {
 public:
  Memberships() = default;
  Memberships(const Memberships&) = delete;
  Memberships& operator=(const Memberships&) = delete;
  ~Memberships() {
    if (heap_) delete[] (heap_ - 1);
  }

  Membership* begin() noexcept { return heap_ ? heap_ : &inline_; }
  Membership* end() noexcept { return begin() + size_; }
  const Membership* begin() const noexcept { return heap_ ? heap_ : &inline_; }
  const Membership* end() const noexcept { return begin() + size_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  Membership& operator[](std::size_t i) noexcept { return begin()[i]; }
  Membership& back() noexcept { return begin()[size_ - 1]; }

  void push_back(const Membership& m) {
    if (size_ == capacity()) grow();
    begin()[size_++] = m;
  }
  void pop_back() noexcept { --size_; }
  Membership* erase(Membership* at) noexcept {
    std::copy(at + 1, end(), at);
    --size_;
    return at;
  }

 private:
  std::uint32_t capacity() const noexcept { return heap_ ? heap_[-1].index : 1u; }
  void grow() {
    const std::uint32_t cap = heap_ ? capacity() * 2 : 4;
    auto* block = new Membership[cap + 1];
    block[0] = {nullptr, cap};
    std::copy(begin(), end(), block + 1);
    if (heap_) delete[] (heap_ - 1);
    heap_ = block + 1;
  }

  Membership* heap_ = nullptr;  // null: the one inline
  std::uint32_t size_ = 0;

 public:
  std::uint32_t everyone_index = 0;  // in Impl::everyone.members (here, in the 4 bytes beside size_)

 private:
  Membership inline_{};
};

static_assert(sizeof(Memberships) == 32);

// What the registry holds per connection: one allocation of its own (its address is stable:
// groups point at it), indexed by an open-addressing set of pointers keyed by the connection's
// id. Its place in `everyone` and in its user's list is held directly, and the membership of
// one role is inline: an idle connection costs this block and a few bytes of index slots.
struct Entry {
  std::shared_ptr<Connection> connection;
  Identity identity;
  // The user's connections: a doubly linked list through their entries, headed by a slot of
  // Impl::users that views the first entry's user_id.
  Entry* user_next = nullptr;
  Entry* user_prev = nullptr;
  Memberships memberships;  // roles, then topics; and the entry's place in `everyone`
};

// The entry's topics: memberships past the roles. Counted when asked (subscribe scans the
// memberships anyway) rather than stored in every entry.
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

// Entries by connection id (the entry's own connection->id(), so no key is stored).
struct EntryHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view id) const noexcept { return std::hash<std::string_view>{}(id); }
  std::size_t operator()(const std::unique_ptr<Entry>& e) const noexcept { return (*this)(e->connection->id()); }
};
struct EntryEq {
  using is_transparent = void;
  static std::string_view key(std::string_view id) noexcept { return id; }
  static std::string_view key(const std::unique_ptr<Entry>& e) noexcept { return e->connection->id(); }
  template <class A, class B>
  bool operator()(const A& a, const B& b) const noexcept { return key(a) == key(b); }
};
using EntrySet = boost::unordered_flat_set<std::unique_ptr<Entry>, EntryHash, EntryEq>;

// One user's index: the first of its entries. The slot's key is that entry's user_id, so when
// it leaves (or changes user) the slot moves on to the next entry of the same user, whose
// user_id is equal: the slot's hash does not change.
struct UserSlot {
  mutable Entry* head;
};
struct UserHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view user) const noexcept { return std::hash<std::string_view>{}(user); }
  std::size_t operator()(const UserSlot& s) const noexcept { return (*this)(s.head->identity.user_id); }
};
struct UserEq {
  using is_transparent = void;
  static std::string_view key(std::string_view user) noexcept { return user; }
  static std::string_view key(const UserSlot& s) noexcept { return s.head->identity.user_id; }
  template <class A, class B>
  bool operator()(const A& a, const B& b) const noexcept { return key(a) == key(b); }
};
using UserSet = boost::unordered_flat_set<UserSlot, UserHash, UserEq>;

}  // namespace

struct ConnectionRegistry::Impl {
  EntrySet entries;
  Group everyone{GroupKind::all, nullptr, {}, {}};
  UserSet users;
  GroupMap roles, topics;
  IndexObserver observer;
  SubscriptionObserver subscriptions;

  void notify(const Group& g, bool created) const {
    if (!observer) return;
    const auto kind = g.kind == GroupKind::role ? IndexKind::role : IndexKind::topic;
    observer(kind, *g.name, created);
  }

  void notify_user(std::string_view user, bool created) const {
    if (observer) observer(IndexKind::user, user, created);
  }

  Entry* entry(std::string_view id) const {
    auto it = entries.find(id);
    return it == entries.end() ? nullptr : it->get();
  }

  static const Group* group(const GroupMap& map, std::string_view name) {
    auto it = map.find(name);
    return it == map.end() ? nullptr : &it->second;
  }

  const Entry* first_of_user(std::string_view user) const {
    auto it = users.find(user);
    return it == users.end() ? nullptr : it->head;
  }

  void join_everyone(Entry& e) {
    e.memberships.everyone_index = static_cast<std::uint32_t>(everyone.members.size());
    everyone.members.push_back(&e);
  }

  void leave_everyone(Entry& e) {
    auto& members = everyone.members;
    Entry* moved = members.back();
    members[e.memberships.everyone_index] = moved;
    moved->memberships.everyone_index = e.memberships.everyone_index;
    members.pop_back();
  }

  // Joins the list of e.identity.user_id, creating its index when e is the user's first.
  void join_user(Entry& e) {
    if (e.identity.user_id.empty()) return;  // nobody yet (a Pusher connection before it names its user)
    auto [it, created] = users.insert(UserSlot{&e});
    if (!created) {
      // Second in the list: the slot keeps viewing the head's user_id.
      Entry* head = it->head;
      e.user_prev = head;
      e.user_next = head->user_next;
      if (head->user_next) head->user_next->user_prev = &e;
      head->user_next = &e;
      return;
    }
    notify_user(e.identity.user_id, true);
  }

  // Takes e out of its user's list. When it was the last, the index is erased, and `notify`
  // says whether the observer hears of it now (else the caller tells it).
  bool unlink_user(Entry& e, bool notify) {
    if (e.identity.user_id.empty()) return false;
    if (e.user_prev) {
      e.user_prev->user_next = e.user_next;
      if (e.user_next) e.user_next->user_prev = e.user_prev;
      e.user_prev = e.user_next = nullptr;
      return false;
    }
    // e heads the list: the slot is found by e's own user_id, still intact here.
    auto it = users.find(std::string_view(e.identity.user_id));
    assert(it != users.end() && it->head == &e);
    if (e.user_next) {
      it->head = e.user_next;  // same user_id: the slot's hash is unchanged
      e.user_next->user_prev = nullptr;
      e.user_next = nullptr;
      return false;
    }
    if (notify) notify_user(e.identity.user_id, false);
    users.erase(it);
    return true;
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
    if (members.empty()) erase_group(*m.group);
  }

  void erase_group(Group& g) {
    notify(g, false);
    GroupMap& map = g.kind == GroupKind::role ? roles : topics;
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
  // Keyed by the connection's own id, valid while the entry holds the connection.
  auto owned = std::make_unique<Entry>();
  Entry& ref = *owned;
  ref.connection = std::move(connection);
  ref.identity = std::move(identity);
  impl_->entries.insert(std::move(owned));
  impl_->join_everyone(ref);
  impl_->join_user(ref);
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
  Entry& e = **it;
  // Leave in reverse order so no membership of this entry is moved while still pending.
  while (!e.memberships.empty()) {
    Membership m = e.memberships.back();
    if (impl_->subscriptions && m.group->kind == GroupKind::topic)
      impl_->subscriptions(connection_id, e.identity, *m.group->name, false);
    e.memberships.pop_back();
    impl_->leave(m);
  }
  impl_->unlink_user(e, true);
  impl_->leave_everyone(e);
  impl_->entries.erase(it);  // destroys the entry
  return true;
}

bool ConnectionRegistry::replace_identity(std::string_view connection_id, Identity identity) {
  Entry* e = impl_->entry(connection_id);
  if (!e) return false;
  // Another user: leave the old user's list before the user_id its slot may view changes. The
  // observer still hears of the new user's index before the old one's erasure, as for roles.
  std::optional<std::string> old_user_erased;
  if (e->identity.user_id != identity.user_id) {
    std::string old_user = e->identity.user_id;
    if (impl_->unlink_user(*e, false)) old_user_erased = std::move(old_user);
    e->identity = std::move(identity);
    impl_->join_user(*e);
  } else {
    e->identity = std::move(identity);
  }
  const Identity& id = e->identity;
  auto member_of = [e](GroupKind kind, std::string_view name) {
    return std::any_of(e->memberships.begin(), e->memberships.end(), [&](const Membership& m) {
      return m.group->kind == kind && *m.group->name == name;
    });
  };
  // Join first, then leave: a group in both identities is never left, so never erased.
  for (const auto& role : id.roles)
    if (!member_of(GroupKind::role, role)) impl_->join(*e, impl_->roles, GroupKind::role, role);
  for (std::size_t i = e->memberships.size(); i-- > 0;) {
    const Group& g = *e->memberships[i].group;
    const bool kept = g.kind == GroupKind::role ? id.has_role(*g.name) : true;
    if (kept) continue;
    Membership m = e->memberships[i];
    e->memberships.erase(e->memberships.begin() + static_cast<std::ptrdiff_t>(i));
    impl_->leave(m);
  }
  if (old_user_erased) impl_->notify_user(*old_user_erased, false);
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
  std::vector<Connection*> out;
  for (const Entry* e = impl_->first_of_user(user_id); e; e = e->user_next) out.push_back(e->connection.get());
  return out;
}

std::vector<Connection*> ConnectionRegistry::find_by_role(std::string_view role) const {
  return Impl::connections(Impl::group(impl_->roles, role));
}

std::vector<Connection*> ConnectionRegistry::all() const { return Impl::connections(&impl_->everyone); }

std::size_t ConnectionRegistry::count() const noexcept { return impl_->entries.size(); }

// Walks the user's list: O(its connections), which are few (this is not a hot path).
std::size_t ConnectionRegistry::user_connection_count(std::string_view user_id) const {
  std::size_t n = 0;
  for (const Entry* e = impl_->first_of_user(user_id); e; e = e->user_next) ++n;
  return n;
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

void ConnectionRegistry::for_each_topic(const std::function<void(std::string_view, std::size_t)>& visit) const {
  for (const auto& [name, group] : impl_->topics)
    if (!group.members.empty()) visit(name, group.members.size());
}

std::size_t ConnectionRegistry::send_to_user(std::string_view user_id, const Message& message) const {
  std::size_t n = 0;
  for (const Entry* e = impl_->first_of_user(user_id); e; e = e->user_next) {
    if (!e->connection->is_open()) continue;
    e->connection->send(message);
    ++n;
  }
  return n;
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
