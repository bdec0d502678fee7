#include "boundary/realtime/message.hpp"

#include <array>
#include <cstring>

#include "core/frame.hpp"

namespace boundary::realtime {

Message Message::from_json(std::string_view json) {
  std::array<std::uint8_t, 10> header{};
  const auto header_bytes = core::write_frame_header(header, core::Opcode::text, json.size());
  auto buffer = std::make_shared<std::string>();
  buffer->reserve(header_bytes + json.size());
  buffer->append(reinterpret_cast<const char*>(header.data()), header_bytes);
  buffer->append(json);
  Message m;
  m.frame_ = std::move(buffer);
  m.header_bytes_ = header_bytes;
  return m;
}

Message Message::from_wire(std::string bytes, std::size_t header_bytes) {
  Message m;
  m.header_bytes_ = header_bytes <= bytes.size() ? header_bytes : bytes.size();
  m.frame_ = std::make_shared<const std::string>(std::move(bytes));
  return m;
}

}  // namespace boundary::realtime
