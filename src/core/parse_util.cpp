#include "core/parse_util.hpp"

#include <cmath>

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/value_stack.hpp>

namespace boundary::realtime::core {

namespace json = boost::json;

namespace {

// Boost.JSON's own DOM builder (a value_stack fed by the SAX parser, as json::parse does) plus a
// count of the keys as written. Building an object keeps only the last of duplicate keys, so the
// built tree holds fewer members than keys were read exactly when some object had a key twice
// (members dropped with a duplicate's value only widen the gap). One parse and one walk cost the
// same as json::parse within the microbenchmark's noise; a second, counting parse cost +55 %.
struct CountingBuilder {
  static constexpr std::size_t max_object_size = json::object::max_size();
  static constexpr std::size_t max_array_size = json::array::max_size();
  static constexpr std::size_t max_key_size = json::string::max_size();
  static constexpr std::size_t max_string_size = json::string::max_size();
  using ec_t = boost::system::error_code;
  using sv = json::string_view;

  json::value_stack st;
  std::size_t keys = 0;

  CountingBuilder(unsigned char* temp, std::size_t size) : st(json::storage_ptr(), temp, size) {}

  bool on_document_begin(ec_t&) { return true; }
  bool on_document_end(ec_t&) { return true; }
  bool on_object_begin(ec_t&) { return true; }
  bool on_object_end(std::size_t n, ec_t&) {
    st.push_object(n);
    return true;
  }
  bool on_array_begin(ec_t&) { return true; }
  bool on_array_end(std::size_t n, ec_t&) {
    st.push_array(n);
    return true;
  }
  bool on_key_part(sv s, std::size_t, ec_t&) {
    st.push_chars(s);
    return true;
  }
  bool on_key(sv s, std::size_t, ec_t&) {
    st.push_key(s);
    ++keys;
    return true;
  }
  bool on_string_part(sv s, std::size_t, ec_t&) {
    st.push_chars(s);
    return true;
  }
  bool on_string(sv s, std::size_t, ec_t&) {
    st.push_string(s);
    return true;
  }
  bool on_number_part(sv, ec_t&) { return true; }
  bool on_int64(std::int64_t i, sv, ec_t&) {
    st.push_int64(i);
    return true;
  }
  bool on_uint64(std::uint64_t u, sv, ec_t&) {
    st.push_uint64(u);
    return true;
  }
  bool on_double(double d, sv, ec_t&) {
    st.push_double(d);
    return true;
  }
  bool on_bool(bool b, ec_t&) {
    st.push_bool(b);
    return true;
  }
  bool on_null(ec_t&) {
    st.push_null();
    return true;
  }
  bool on_comment_part(sv, ec_t&) { return true; }
  bool on_comment(sv, ec_t&) { return true; }
};

// Members of every object in `v`. Depth is bounded by the parser (32), so the recursion is too.
std::size_t members(const json::value& v) {
  std::size_t n = 0;
  if (v.is_array()) {
    for (const auto& e : v.get_array()) n += members(e);
  } else if (v.is_object()) {
    n = v.get_object().size();
    for (const auto& kv : v.get_object()) n += members(kv.value());
  }
  return n;
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
  // What json::parse does (default options: strict RFC 8259, UTF-8 checked, depth 32), with the
  // key count on the side.
  unsigned char temp[BOOST_JSON_STACK_BUFFER_SIZE];
  json::basic_parser<CountingBuilder> parser(json::parse_options{}, temp, sizeof temp);
  auto& builder = parser.handler();
  builder.st.reset();
  boost::system::error_code ec;
  const std::size_t used = parser.write_some(false, text.data(), text.size(), ec);
  if (ec || used < text.size()) {
    out.problem = JsonProblem::invalid;
    return out;
  }
  out.value = builder.st.release();
  if (members(out.value) != builder.keys) {
    out.value = nullptr;
    out.problem = JsonProblem::duplicate_key;
  }
  return out;
}

}  // namespace boundary::realtime::core
