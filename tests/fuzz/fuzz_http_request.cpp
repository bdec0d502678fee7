// libFuzzer target: HTTP requests as the server handles them before any routing work: Beast's
// request parser with the server's limits, then the upgrade decision, API routing, API body
// validation and query decoding. Invariants: nothing crashes; refusals carry a 4xx status and a
// JSON body; an accepted upgrade yields the token from the query or the Authorization header.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/json/parse.hpp>

#include "core/http_rules.hpp"

namespace http = boost::beast::http;
using namespace boundary::realtime;

namespace {
void check_refusal(const core::HttpRefusal& r) {
  if (r.status < 400 || r.status > 499) std::abort();
  boost::system::error_code ec;
  auto v = boost::json::parse(r.body, ec);
  if (ec || !v.is_object()) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  http::request_parser<http::string_body> parser;
  parser.body_limit(1 << 16);
  parser.header_limit(16 * 1024);
  parser.eager(true);
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(data, size), ec);
  if (ec || !parser.is_header_done()) return 0;
  auto& req = parser.get();
  const std::vector<std::string> origins{"http://good.example"};
  core::UpgradeRequest u{req.method_string(), req.target(), boost::beast::websocket::is_upgrade(req),
                         req[http::field::sec_websocket_version], req[http::field::sec_websocket_key],
                         req[http::field::origin], req[http::field::authorization]};
  if (auto token = core::check_upgrade(u, origins); !token) check_refusal(token.error());
  else if (token->empty()) std::abort();
  auto path = core::target_path(req.target());
  if (auto call = core::route_api(req.method_string(), path)) {
    if (parser.is_done()) {
      if (auto r = core::parse_api_body(*call, req.body()); !r) check_refusal(r.error());
    }
  } else {
    check_refusal(call.error());
  }
  (void)core::query_param(req.target(), "token");
  (void)core::bearer_token(req[http::field::authorization]);
  return 0;
}
