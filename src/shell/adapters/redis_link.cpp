#include "shell/adapters/redis_link.hpp"

#include <cstdlib>
#include <stdexcept>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <hiredis/hiredis.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace boundary::realtime::shell {
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
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

std::string ssl_error_text(const error_code& ec, SSL* ssl) {
  std::string text = ec.message();
  if (ssl) {
    const long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) text += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
  }
  return text;
}
}  // namespace

bool is_auth_error(std::string_view error) noexcept {
  return error.starts_with("WRONGPASS") || error.starts_with("NOAUTH") || error.starts_with("NOPERM") ||
         error.starts_with("ERR invalid password") || error.starts_with("ERR AUTH");
}

class RedisTls {
 public:
  ssl::context ctx{ssl::context::tls_client};
};

std::shared_ptr<RedisTls> make_redis_tls(const RedisTlsFiles& files) {
  auto tls = std::make_shared<RedisTls>();
  auto& ctx = tls->ctx;
  error_code ec;
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  ctx.set_verify_mode(ssl::verify_peer, ec);
  if (files.ca_file.empty()) ctx.set_default_verify_paths(ec);
  else if (ctx.load_verify_file(files.ca_file, ec); ec)
    throw std::invalid_argument("--redis-tls-ca: cannot load '" + files.ca_file + "': " + ec.message());
  if (files.cert_file.empty() != files.key_file.empty())
    throw std::invalid_argument("--redis-tls-cert and --redis-tls-key go together");
  if (!files.cert_file.empty()) {
    if (ctx.use_certificate_chain_file(files.cert_file, ec); ec)
      throw std::invalid_argument("--redis-tls-cert: cannot load '" + files.cert_file + "': " + ec.message());
    if (ctx.use_private_key_file(files.key_file, ssl::context::pem, ec); ec)
      throw std::invalid_argument("--redis-tls-key: cannot load '" + files.key_file + "': " + ec.message());
  }
  return tls;
}

struct RedisLink::TlsStream {
  TlsStream(asio::ip::tcp::socket socket, ssl::context& ctx) : stream(std::move(socket), ctx) {}
  ssl::stream<asio::ip::tcp::socket> stream;
};

template <class F>
void RedisLink::with_stream(F&& f) {
  if (tls_) f(tls_->stream, tls_);
  else f(socket_, tls_);
}

RedisLink::RedisLink(asio::io_context& io, bool push_mode, std::shared_ptr<const RedisLinkSettings> settings)
    : io_(io),
      socket_(io),
      connect_timer_(io),
      push_mode_(push_mode),
      settings_(settings ? std::move(settings) : std::make_shared<const RedisLinkSettings>()),
      reader_(redisReaderCreate()) {}

RedisLink::~RedisLink() {
  on_connect_ = nullptr;
  close();
  redisReaderFree(reader_);
}

void RedisLink::connect(const asio::ip::tcp::resolver::results_type& endpoints, std::string host,
                        std::function<void(const LinkError&)> done) {
  close();
  on_connect_ = std::move(done);
  const unsigned gen = generation_;
  connect_timer_.expires_after(connect_timeout);
  connect_timer_.async_wait([this, gen](const error_code& ec) {
    if (ec || gen != generation_ || !on_connect_) return;
    connected({LinkError::Kind::network, "no answer within " + std::to_string(connect_timeout.count()) + " s"});
  });
  asio::async_connect(socket_, endpoints, [this, gen, host = std::move(host)](const error_code& ec, const auto&) {
    if (gen != generation_) return;
    if (ec) return connected({LinkError::Kind::network, ec.message()});
    error_code ignored;
    socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
    on_tcp(host);
  });
}

void RedisLink::on_tcp(const std::string& host) {
  if (!settings_->tls) return authenticate();
  tls_ = std::make_shared<TlsStream>(std::move(socket_), settings_->tls->ctx);
  SSL* native = tls_->stream.native_handle();
  error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  X509_VERIFY_PARAM* param = SSL_get0_param(native);
  if (!ec) {
    X509_VERIFY_PARAM_set1_ip_asc(param, address.to_string().c_str());
  } else {
    SSL_set_tlsext_host_name(native, host.c_str());  // SNI
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
  }
  const unsigned gen = generation_;
  tls_->stream.async_handshake(ssl::stream_base::client, [this, gen, keep = tls_](const error_code& e) {
    if (gen != generation_) return;
    if (e) return connected({LinkError::Kind::tls, "TLS handshake failed: " + ssl_error_text(e, keep->stream.native_handle())});
    authenticate();
  });
}

void RedisLink::authenticate() {
  open_ = true;
  do_read();
  if (settings_->password.empty()) return connected({});
  authenticating_ = true;
  auto on_auth = [this](const core::RespValue* r) {
    authenticating_ = false;
    if (!r) return;  // the link failed: connected() already reported it
    if (r->kind != core::RespValue::Kind::error) return connected({});
    // Redis's own text ("WRONGPASS invalid username-password pair ...") names no credentials.
    connected({is_auth_error(r->str) ? LinkError::Kind::refused : LinkError::Kind::network, "AUTH refused: " + r->str});
  };
  if (settings_->user.empty()) command({"AUTH", settings_->password}, std::move(on_auth));
  else command({"AUTH", settings_->user, settings_->password}, std::move(on_auth));
}

// Ends a connect(): reports to its caller once, closing the link on failure.
void RedisLink::connected(LinkError error) {
  auto done = std::move(on_connect_);
  on_connect_ = nullptr;
  connect_timer_.cancel();
  if (error) reset();
  if (done) done(error);
}

void RedisLink::command(std::initializer_list<std::string_view> argv, ReplyHandler on_reply) {
  command(std::span<const std::string_view>(argv.begin(), argv.size()), std::move(on_reply));
}

void RedisLink::command(std::span<const std::string_view> argv, ReplyHandler on_reply) {
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
  if (!push_mode_ || authenticating_) waiting_.push_back(std::move(on_reply));
  if (out_.size() > max_output_bytes) return fail();
  if (!write_in_flight_) do_write();
}

void RedisLink::do_write() {
  writing_.swap(out_);
  out_.clear();
  write_in_flight_ = true;
  const unsigned gen = generation_;
  with_stream([&](auto& stream, const std::shared_ptr<TlsStream>& tls) {
    asio::async_write(stream, asio::buffer(writing_), [this, gen, keep = tls](const error_code& ec, std::size_t) {
      if (gen != generation_) return;
      write_in_flight_ = false;
      writing_.clear();
      if (ec) return fail();
      if (!out_.empty()) do_write();
    });
  });
}

void RedisLink::do_read() {
  const unsigned gen = generation_;
  with_stream([&](auto& stream, const std::shared_ptr<TlsStream>& tls) {
    stream.async_read_some(asio::buffer(in_), [this, gen, keep = tls](const error_code& ec, std::size_t n) {
      on_read(gen, ec, n);
    });
  });
}

void RedisLink::on_read(unsigned gen, const error_code& ec, std::size_t n) {
  if (gen != generation_) return;
  if (ec) return fail();
  if (redisReaderFeed(reader_, in_.data(), n) != REDIS_OK) return fail();
  for (;;) {
    void* r = nullptr;
    if (redisReaderGetReply(reader_, &r) != REDIS_OK) return fail();
    if (!r) break;
    const core::RespValue reply = to_resp(static_cast<redisReply*>(r));
    freeReplyObject(r);
    if (push_mode_ && !authenticating_) {
      if (on_push_) on_push_(&reply);
    } else if (!waiting_.empty()) {
      auto h = std::move(waiting_.front());
      waiting_.pop_front();
      if (h) h(&reply);
    }
    if (gen != generation_) return;  // a handler closed the link
  }
  do_read();
}

void RedisLink::reset() {
  ++generation_;
  open_ = false;
  authenticating_ = false;
  error_code ignored;
  socket_.close(ignored);
  if (tls_) tls_->stream.next_layer().close(ignored);
  tls_.reset();
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
  if (on_connect_) return connected({LinkError::Kind::network, "connection lost while connecting"});
  const bool was_open = open_;
  reset();
  if (was_open && on_down_) on_down_();
}

void RedisLink::close() {
  on_connect_ = nullptr;
  connect_timer_.cancel();
  reset();
}

}  // namespace boundary::realtime::shell
