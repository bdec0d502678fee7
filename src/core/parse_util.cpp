#include "core/parse_util.hpp"

#include <cmath>
#include <vector>

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/parse.hpp>

namespace boundary::realtime::core {

namespace json = boost::json;

namespace {

// A SAX handler that only records, in the order the objects close, how many members each
// object had as written. Boost.JSON keeps the last of duplicate keys when it builds a value, so
// comparing these counts with the built objects' sizes finds every duplicate.
struct MemberCounts {
  static constexpr std::size_t max_object_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_array_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_key_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_string_size = static_cast<std::size_t>(-1);
  using ec_t = boost::system::error_code;
  using sv = json::string_view;

  std::vector<std::size_t> counts;

  bool on_document_begin(ec_t&) { return true; }
  bool on_document_end(ec_t&) { return true; }
  bool on_object_begin(ec_t&) { return true; }
  bool on_object_end(std::size_t n, ec_t&) {
    counts.push_back(n);
    return true;
  }
  bool on_array_begin(ec_t&) { return true; }
  bool on_array_end(std::size_t, ec_t&) { return true; }
  bool on_key_part(sv, std::size_t, ec_t&) { return true; }
  bool on_key(sv, std::size_t, ec_t&) { return true; }
  bool on_string_part(sv, std::size_t, ec_t&) { return true; }
  bool on_string(sv, std::size_t, ec_t&) { return true; }
  bool on_number_part(sv, ec_t&) { return true; }
  bool on_int64(std::int64_t, sv, ec_t&) { return true; }
  bool on_uint64(std::uint64_t, sv, ec_t&) { return true; }
  bool on_double(double, sv, ec_t&) { return true; }
  bool on_bool(bool, ec_t&) { return true; }
  bool on_null(ec_t&) { return true; }
  bool on_comment_part(sv, ec_t&) { return true; }
  bool on_comment(sv, ec_t&) { return true; }
};

// Objects in the order they close (children before their parent, siblings in order): the order
// MemberCounts saw them in. Depth is bounded by the parser (32), so the recursion is too.
void object_sizes(const json::value& v, std::vector<std::size_t>& out) {
  if (v.is_array()) {
    for (const auto& e : v.get_array()) object_sizes(e, out);
  } else if (v.is_object()) {
    for (const auto& kv : v.get_object()) object_sizes(kv.value(), out);
    out.push_back(v.get_object().size());
  }
}

}  // namespace

bool all_numbers_finite(const json::value& v) {
  switch (v.kind()) {
    case json::kind::double_: return std::isfinite(v.get_double());
    case json::kind::array:
      for (const auto& e : v.get_array())
        if (!all_numbers_finite(e)) return false;
      return true;
    case json::kind::object:
      for (const auto& kv : v.get_object())
        if (!all_numbers_finite(kv.value())) return false;
      return true;
    default: return true;
  }
}

StrictJson parse_strict_json(std::string_view text) {
  StrictJson out;
  boost::system::error_code ec;
  out.value = json::parse(text, ec);
  if (ec) {
    out.problem = JsonProblem::invalid;
    return out;
  }
  // Only texts with an object can hold a duplicate key; the second pass costs one more scan.
  if (text.find('{') == std::string_view::npos) return out;
  json::basic_parser<MemberCounts> counter{json::parse_options{}};
  counter.write_some(false, text.data(), text.size(), ec);
  std::vector<std::size_t> built;
  object_sizes(out.value, built);
  if (ec || built != counter.handler().counts) {
    out.value = nullptr;
    out.problem = JsonProblem::duplicate_key;
  }
  return out;
}

}  // namespace boundary::realtime::core
