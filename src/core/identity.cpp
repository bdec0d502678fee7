#include "boundary/realtime/identity.hpp"

#include <mutex>
#include <unordered_map>

namespace boundary::realtime {

// One interned role list. `refs` counts the Roles that point at it; the table holds none.
struct Roles::List {
  std::vector<std::string> roles;
  std::string key;  // its key in the table
  mutable std::atomic<std::uint32_t> refs{1};
};

namespace {

// Every distinct role list in use, by a key that encodes it unambiguously (each role's length,
// then its bytes). A list leaves the table when its last Roles goes, so the table follows what
// is live. The last reference is dropped under the mutex, and interning takes a reference
// under it too: a list is never found by one thread while another frees it.
struct Table {
  std::mutex mutex;
  std::unordered_map<std::string_view, Roles::List*> lists;  // views List::key
};

Table& table() {
  static auto* t = new Table;  // never destroyed: Roles in static objects may outlive main()
  return *t;
}

std::string key_of(const std::vector<std::string>& roles) {
  std::string key;
  std::size_t n = 0;
  for (const auto& r : roles) n += r.size() + 4;
  key.reserve(n);
  for (const auto& r : roles) {
    const auto len = static_cast<std::uint32_t>(r.size());
    key.append(reinterpret_cast<const char*>(&len), sizeof len);
    key.append(r);
  }
  return key;
}

const std::vector<std::string> no_roles;

}  // namespace

Roles::Roles(std::vector<std::string> roles) {
  if (roles.empty()) return;
  std::string key = key_of(roles);
  auto& t = table();
  std::lock_guard lock(t.mutex);
  if (auto it = t.lists.find(key); it != t.lists.end()) {
    it->second->refs.fetch_add(1, std::memory_order_relaxed);
    list_ = it->second;
    return;
  }
  auto* list = new List{std::move(roles), std::move(key)};
  t.lists.emplace(list->key, list);
  list_ = list;
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
  t.lists.erase(std::string_view(list->key));
  lock.unlock();
  delete list;
}

std::size_t Roles::interned_count() {
  auto& t = table();
  std::lock_guard lock(t.mutex);
  return t.lists.size();
}

}  // namespace boundary::realtime
