#include "boundary/realtime/identity.hpp"

#include <mutex>
#include <unordered_set>

namespace boundary::realtime {

// One interned role list. `refs` counts the Roles that point at it; the table holds none.
struct Roles::List {
  std::vector<std::string> roles;
  std::size_t hash;
  mutable std::atomic<std::uint32_t> refs{1};
};

namespace {

std::size_t hash_of(const std::vector<std::string>& roles) noexcept {
  std::size_t h = roles.size();
  for (const auto& r : roles) h = (h * 1000003) ^ std::hash<std::string>{}(r);
  return h;
}

// Lists are looked up by their roles and its hash, computed once, without building anything
// (this is on the connect path).
struct Probe {
  const std::vector<std::string>& roles;
  std::size_t hash;
};
struct ListHash {
  using is_transparent = void;
  std::size_t operator()(const Roles::List* l) const noexcept { return l->hash; }
  std::size_t operator()(const Probe& p) const noexcept { return p.hash; }
};
struct ListEqual {
  using is_transparent = void;
  bool operator()(const Roles::List* a, const Roles::List* b) const noexcept { return a->roles == b->roles; }
  bool operator()(const Probe& a, const Roles::List* b) const noexcept { return a.roles == b->roles; }
  bool operator()(const Roles::List* a, const Probe& b) const noexcept { return a->roles == b.roles; }
};

// Every distinct role list in use. A list leaves the table when its last Roles goes, so the
// table follows what is live. The last reference is dropped under the mutex, and interning
// takes a reference under it too: a list is never found by one thread while another frees it.
struct Table {
  std::mutex mutex;
  std::unordered_set<const Roles::List*, ListHash, ListEqual> lists;
};

Table& table() {
  static auto* t = new Table;  // never destroyed: Roles in static objects may outlive main()
  return *t;
}

const std::vector<std::string> no_roles;

}  // namespace

Roles::Roles(std::vector<std::string> roles) {
  if (roles.empty()) return;
  const std::size_t hash = hash_of(roles);
  auto& t = table();
  std::lock_guard lock(t.mutex);
  if (auto it = t.lists.find(Probe{roles, hash}); it != t.lists.end()) {
    (*it)->refs.fetch_add(1, std::memory_order_relaxed);
    list_ = *it;
    return;
  }
  list_ = *t.lists.insert(new List{std::move(roles), hash}).first;
}

const std::vector<std::string>& Roles::list() const noexcept { return list_ ? list_->roles : no_roles; }

void Roles::retain() const noexcept {
  if (list_) list_->refs.fetch_add(1, std::memory_order_relaxed);
}

void Roles::release() noexcept {
  const List* list = std::exchange(list_, nullptr);
  if (!list) return;
  // Not the last reference: drop it without the lock.
  auto refs = list->refs.load(std::memory_order_relaxed);
  while (refs > 1)
    if (list->refs.compare_exchange_weak(refs, refs - 1, std::memory_order_release, std::memory_order_relaxed)) return;
  // Possibly the last: decide under the lock, where interning takes its references.
  auto& t = table();
  std::unique_lock lock(t.mutex);
  if (list->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  t.lists.erase(list);
  lock.unlock();
  delete list;
}

std::size_t Roles::interned_count() {
  auto& t = table();
  std::lock_guard lock(t.mutex);
  return t.lists.size();
}

}  // namespace boundary::realtime
