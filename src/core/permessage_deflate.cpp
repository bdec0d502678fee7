#include "core/permessage_deflate.hpp"

#include <cctype>
#include <utility>
#include <vector>

namespace boundary::realtime::core {
namespace {

// RFC 7230 tchar.
bool is_tchar(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  if (std::isalnum(u)) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '.': case '^': case '_': case '`': case '|': case '~': return true;
    default: return false;
  }
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

struct Param {
  std::string name;
  std::optional<std::string> value;
};
struct Extension {
  std::string name;
  std::vector<Param> params;
};

// A cursor over the header: OWS, tokens and quoted strings.
class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}
  void skip_ows() noexcept {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }
  bool at_end() const noexcept { return i_ == s_.size(); }
  bool take(char c) noexcept {
    if (i_ < s_.size() && s_[i_] == c) return ++i_, true;
    return false;
  }
  std::optional<std::string> token() {
    const std::size_t start = i_;
    while (i_ < s_.size() && is_tchar(s_[i_])) ++i_;
    if (i_ == start) return std::nullopt;
    return std::string(s_.substr(start, i_ - start));
  }
  std::optional<std::string> quoted() {
    if (!take('"')) return std::nullopt;
    std::string out;
    while (i_ < s_.size()) {
      const char c = s_[i_++];
      if (c == '"') return out;
      if (c == '\\') {
        if (i_ == s_.size()) return std::nullopt;
        out += s_[i_++];
      } else {
        out += c;
      }
    }
    return std::nullopt;
  }

 private:
  std::string_view s_;
  std::size_t i_ = 0;
};

// RFC 7230 list syntax with RFC 6455 9.1 elements; nothing when the header is malformed. Empty
// list elements are allowed ("a, , b"), as RFC 7230 7 asks of recipients.
std::optional<std::vector<Extension>> parse_extensions(std::string_view header) {
  std::vector<Extension> out;
  Scanner s(header);
  while (true) {
    s.skip_ows();
    if (s.at_end()) break;
    if (s.take(',')) continue;
    auto name = s.token();
    if (!name) return std::nullopt;
    Extension ext{std::move(*name), {}};
    s.skip_ows();
    while (s.take(';')) {
      s.skip_ows();
      auto pname = s.token();
      if (!pname) return std::nullopt;
      Param p{std::move(*pname), std::nullopt};
      s.skip_ows();
      if (s.take('=')) {
        s.skip_ows();
        p.value = s.token();
        if (!p.value) p.value = s.quoted();  // RFC 6455 9.1: the unquoted value must be a token
        if (!p.value || p.value->empty()) return std::nullopt;
        for (char c : *p.value)
          if (!is_tchar(c)) return std::nullopt;
        s.skip_ows();
      }
      ext.params.push_back(std::move(p));
    }
    if (!s.at_end() && !s.take(',')) return std::nullopt;
    out.push_back(std::move(ext));
    if (out.size() > 64) return std::nullopt;  // far past any real offer list
  }
  return out;
}

// RFC 7692 7.1.2: 1*DIGIT from 8 to 15, no leading zero.
std::optional<std::uint8_t> window_bits(std::string_view v) noexcept {
  if (v.size() == 1 && v[0] >= '8' && v[0] <= '9') return static_cast<std::uint8_t>(v[0] - '0');
  if (v.size() == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') return static_cast<std::uint8_t>(10 + v[1] - '0');
  return std::nullopt;
}

std::optional<DeflateAgreement> accept_offer(const Extension& offer) {
  DeflateAgreement a;
  bool seen_server_nct = false, seen_client_nct = false, seen_server_bits = false, seen_client_bits = false;
  auto once = [](bool& seen) { return !std::exchange(seen, true); };
  for (const auto& p : offer.params) {
    if (iequals(p.name, "server_no_context_takeover")) {
      if (!once(seen_server_nct) || p.value) return std::nullopt;
    } else if (iequals(p.name, "client_no_context_takeover")) {
      if (!once(seen_client_nct) || p.value) return std::nullopt;
      a.client_no_context_takeover = true;
    } else if (iequals(p.name, "server_max_window_bits")) {
      if (!once(seen_server_bits) || !p.value) return std::nullopt;
      auto bits = window_bits(*p.value);
      if (!bits) return std::nullopt;
      a.server_max_window_bits = *bits;
    } else if (iequals(p.name, "client_max_window_bits")) {
      if (!once(seen_client_bits)) return std::nullopt;
      if (p.value && !window_bits(*p.value)) return std::nullopt;
    } else {
      return std::nullopt;
    }
  }
  return a;
}

}  // namespace

std::optional<DeflateAgreement> negotiate_deflate(std::string_view header) {
  auto extensions = parse_extensions(header);
  if (!extensions) return std::nullopt;
  for (const auto& ext : *extensions) {
    if (!iequals(ext.name, "permessage-deflate")) continue;
    if (auto a = accept_offer(ext)) return a;
  }
  return std::nullopt;
}

std::string deflate_response(const DeflateAgreement& a) {
  std::string out = "permessage-deflate; server_no_context_takeover";
  if (a.client_no_context_takeover) out += "; client_no_context_takeover";
  if (a.server_max_window_bits != 0) out += "; server_max_window_bits=" + std::to_string(a.server_max_window_bits);
  return out;
}

}  // namespace boundary::realtime::core
