#pragma once
// RFC 7692 permessage-deflate: the server's side of the negotiation, decided from the
// client's Sec-WebSocket-Extensions header. Pure.
//
// What the server agrees to, whatever the offer:
//   - server_no_context_takeover, always: every message is compressed on its own, so that one
//     compressed frame serves every recipient that negotiated the extension.
//   - server_max_window_bits=N, when offered (8-15): echoed. Messages are compressed with a
//     32 KiB window, but since each is compressed on its own no back-reference reaches further
//     than the message's length; a message longer than 2^N bytes goes to that client
//     uncompressed (RSV1 clear), which the extension allows.
//   - client_no_context_takeover, echoed when offered: the server then inflates each message
//     with a stream shared by the loop. Without it the client keeps its window across messages
//     and the connection holds its own inflate stream.
//   - client_max_window_bits is accepted with or without a value and not answered: the server
//     inflates with the largest window, which reads a stream made with any smaller one.
// An offer with an unknown, repeated or malformed parameter is declined and the next offer is
// tried; a header that cannot be parsed declines them all. The handshake itself never fails
// over extensions: the connection goes on uncompressed.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace boundary::realtime::core {

struct DeflateAgreement {
  // The client's inflate window, 8-15, echoed in the answer; 0 when the offer did not limit it (15).
  std::uint8_t server_max_window_bits = 0;
  bool client_no_context_takeover = false;
  bool operator==(const DeflateAgreement&) const = default;
  std::uint8_t window_bits() const noexcept { return server_max_window_bits ? server_max_window_bits : 15; }
};

// The first acceptable permessage-deflate offer in `header` (every Sec-WebSocket-Extensions
// value of the request, joined with ", "), or nothing.
std::optional<DeflateAgreement> negotiate_deflate(std::string_view header);

// The Sec-WebSocket-Extensions value that answers an accepted offer.
std::string deflate_response(const DeflateAgreement& agreement);

}  // namespace boundary::realtime::core
