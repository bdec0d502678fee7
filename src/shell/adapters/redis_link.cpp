#include "shell/adapters/redis_link.hpp"

#include <cstdlib>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <hiredis/hiredis.h>

namespace boundary::realtime::shell {
namespace asio = boost::asio;
using boost::system::error_code;

namespace {
core::RespValue to_resp(const redisReply* r) {
  using K = core::RespValue::Kind;
  core::RespValue v;
  switch (r->type) {
    case REDIS_REPLY_STRING: v.kind = K::string; v.str.assign(r->str, r->len); break;
    case REDIS_REPLY_STATUS: v.kind = K::status; v.str.assign(r->str, r->len); break;
    case REDIS_REPLY_ERROR: v.kind = K::error; v.str.assign(r->str, r->len); break;
    case REDIS_REPLY_INTEGER: v.kind = K::integer; v.integer = r->integer; break;
    case REDIS_REPLY_ARRAY:
      v.kind = K::array;
      v.elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i) v.elements.push_back(to_resp(r->element[i]));
      break;
    default: break;  // nil
  }
  return v;
}
}  // namespace

RedisLink::RedisLink(asio::io_context& io, bool push_mode)
    : io_(io), socket_(io), push_mode_(push_mode), reader_(redisReaderCreate()) {}

RedisLink::~RedisLink() {
  close();
  redisReaderFree(reader_);
}

void RedisLink::connect(const asio::ip::tcp::resolver::results_type& endpoints,
                        std::function<void(const error_code&)> done) {
  close();
  const unsigned gen = generation_;
  asio::async_connect(socket_, endpoints, [this, gen, done = std::move(done)](const error_code& ec, const auto&) {
    if (gen != generation_) return done(asio::error::operation_aborted);
    if (ec) {
      error_code ignored;
      socket_.close(ignored);
      return done(ec);
    }
    error_code ignored;
    socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
    open_ = true;
    do_read();
    done(ec);
  });
}

void RedisLink::command(std::initializer_list<std::string_view> argv, ReplyHandler on_reply) {
  if (!open_) {
    if (on_reply) asio::post(io_, [h = std::move(on_reply)] { h(nullptr); });
    return;
  }
  std::vector<const char*> ptrs;
  std::vector<std::size_t> lens;
  ptrs.reserve(argv.size());
  lens.reserve(argv.size());
  for (auto a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  char* cmd = nullptr;
  const int n = redisFormatCommandArgv(&cmd, static_cast<int>(ptrs.size()), ptrs.data(), lens.data());
  if (n < 0 || !cmd) {
    if (on_reply) asio::post(io_, [h = std::move(on_reply)] { h(nullptr); });
    return;
  }
  out_.append(cmd, static_cast<std::size_t>(n));
  redisFreeCommand(cmd);
  if (!push_mode_) waiting_.push_back(std::move(on_reply));
  if (out_.size() > max_output_bytes) return fail();
  if (!write_in_flight_) do_write();
}

void RedisLink::do_write() {
  writing_.swap(out_);
  out_.clear();
  write_in_flight_ = true;
  const unsigned gen = generation_;
  asio::async_write(socket_, asio::buffer(writing_), [this, gen](const error_code& ec, std::size_t) {
    if (gen != generation_) return;
    write_in_flight_ = false;
    writing_.clear();
    if (ec) return fail();
    if (!out_.empty()) do_write();
  });
}

void RedisLink::do_read() {
  const unsigned gen = generation_;
  socket_.async_read_some(asio::buffer(in_), [this, gen](const error_code& ec, std::size_t n) {
    if (gen != generation_) return;
    if (ec) return fail();
    if (redisReaderFeed(reader_, in_.data(), n) != REDIS_OK) return fail();
    for (;;) {
      void* r = nullptr;
      if (redisReaderGetReply(reader_, &r) != REDIS_OK) return fail();
      if (!r) break;
      const core::RespValue reply = to_resp(static_cast<redisReply*>(r));
      freeReplyObject(r);
      if (push_mode_) {
        if (on_push_) on_push_(&reply);
      } else if (!waiting_.empty()) {
        auto h = std::move(waiting_.front());
        waiting_.pop_front();
        if (h) h(&reply);
      }
      if (gen != generation_) return;  // a handler closed the link
    }
    do_read();
  });
}

void RedisLink::reset() {
  ++generation_;
  open_ = false;
  error_code ignored;
  socket_.close(ignored);
  redisReaderFree(reader_);
  reader_ = redisReaderCreate();
  out_.clear();
  writing_.clear();
  write_in_flight_ = false;
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& h : waiting)
    if (h) h(nullptr);
}

void RedisLink::fail() {
  const bool was_open = open_;
  reset();
  if (was_open && on_down_) on_down_();
}

void RedisLink::close() { reset(); }

}  // namespace boundary::realtime::shell
