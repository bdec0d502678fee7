#pragma once
// Test adapter for the Connection port: records every message it is sent and how it was closed,
// so application code that routes realtime messages can be tested without sockets.
//
// Behaves as the port requires: send() after close() is dropped (and counted), only the first
// close() counts, messages are kept in send order. Messages are kept as the shared Message
// values the sender produced, so a test can also check that recipients share one encoding.
// Single-threaded, like a connection on its event loop.

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "boundary/realtime/ports/connection.hpp"

namespace boundary::realtime::testing {

class RecordingConnection final : public Connection {
 public:
  // A generated id: UUID-v4-shaped and unique within the process, but deterministic (a counter)
  // so failures reproduce.
  RecordingConnection() : id_(next_id()) {}
  explicit RecordingConnection(std::string id) : id_(std::move(id)) {}

  std::string_view id() const noexcept override { return id_; }
  bool is_open() const noexcept override { return !close_code_; }

  void send(const Message& message) override {
    if (!is_open()) {
      ++dropped_;
      return;
    }
    sent_.push_back(message);
  }

  void close(CloseCode code, std::string_view reason) override {
    if (close_code_) return;
    close_code_ = code;
    close_reason_ = std::string(reason);
  }

  const std::vector<Message>& messages() const noexcept { return sent_; }
  std::size_t sent_count() const noexcept { return sent_.size(); }
  std::size_t dropped_count() const noexcept { return dropped_; }
  std::string_view json(std::size_t i) const { return at(i).json(); }
  // The i-th message parsed; throws when it is not a JSON object (every server message is one).
  boost::json::object object(std::size_t i) const { return boost::json::parse(json(i)).as_object(); }
  boost::json::object last() const {
    if (sent_.empty()) throw std::out_of_range("RecordingConnection: nothing was sent");
    return object(sent_.size() - 1);
  }
  std::vector<boost::json::value> parsed() const {
    std::vector<boost::json::value> out;
    out.reserve(sent_.size());
    for (const auto& m : sent_) out.push_back(boost::json::parse(m.json()));
    return out;
  }
  void clear() noexcept { sent_.clear(); }

  std::optional<CloseCode> close_code() const noexcept { return close_code_; }
  const std::string& close_reason() const noexcept { return close_reason_; }

 private:
  const Message& at(std::size_t i) const {
    if (i >= sent_.size()) throw std::out_of_range("RecordingConnection: no message " + std::to_string(i));
    return sent_[i];
  }

  static std::string next_id() {
    static std::atomic<std::uint64_t> counter{0};
    char buf[40];
    std::snprintf(buf, sizeof buf, "00000000-0000-4000-8000-%012llx",
                  static_cast<unsigned long long>(++counter & 0xFFFFFFFFFFFFull));
    return buf;
  }

  std::string id_;
  std::vector<Message> sent_;
  std::size_t dropped_ = 0;
  std::optional<CloseCode> close_code_;
  std::string close_reason_;
};

}  // namespace boundary::realtime::testing
