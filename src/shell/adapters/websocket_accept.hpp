#pragma once
// RFC 6455 section 4.2.2: the Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key
// (base64 of SHA-1 over the key and the protocol's GUID), on OpenSSL.

#include <string>
#include <string_view>

namespace boundary::realtime::shell {

std::string websocket_accept(std::string_view key);

}  // namespace boundary::realtime::shell
