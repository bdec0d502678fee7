#include "core/deflate_codec.hpp"

#include <array>
#include <new>
#include <stdexcept>

#include <zlib.h>

namespace boundary::realtime::core {
namespace {

// RFC 7692 7.2.1: the sync flush's empty stored block, removed on send and restored on receive.
constexpr std::array<unsigned char, 4> flush_tail{0x00, 0x00, 0xFF, 0xFF};
// Level 6, zlib's default: a message is compressed once for all its recipients, so the pass
// is paid per message, not per delivery, and the better ratio saves bytes on every one.
constexpr int deflate_level = 6;
// Bytes inflated per step before they are appended to the output; the output never goes past
// the limit, whatever the input claims.
constexpr std::size_t inflate_chunk = 16 * 1024;

// zlib's allocations, counted per stream (Inflater::memory_bytes).
struct Counted {
  std::size_t bytes = 0;
};
voidpf counted_alloc(voidpf opaque, uInt items, uInt size) {
  const std::size_t n = static_cast<std::size_t>(items) * size;
  auto* p = static_cast<std::size_t*>(::operator new(n + sizeof(std::size_t), std::nothrow));
  if (!p) return Z_NULL;
  *p = n;
  static_cast<Counted*>(opaque)->bytes += n;
  return p + 1;
}
void counted_free(voidpf opaque, voidpf address) {
  auto* p = static_cast<std::size_t*>(address) - 1;
  static_cast<Counted*>(opaque)->bytes -= *p;
  ::operator delete(p);
}

class Deflater {
 public:
  Deflater() {
    if (deflateInit2(&z_, deflate_level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
      throw std::bad_alloc();
  }
  ~Deflater() { deflateEnd(&z_); }
  Deflater(const Deflater&) = delete;
  Deflater& operator=(const Deflater&) = delete;

  std::string compress(std::string_view in) {
    deflateReset(&z_);
    // Output not shorter than the input is thrown away, so the input's size (plus the tail the
    // flush adds) bounds what is worth producing.
    std::string out(in.size() + flush_tail.size(), '\0');
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z_.avail_in = static_cast<uInt>(in.size());
    z_.next_out = reinterpret_cast<Bytef*>(out.data());
    z_.avail_out = static_cast<uInt>(out.size());
    const int rc = deflate(&z_, Z_SYNC_FLUSH);
    // Not all input taken, or no room left for the whole flush: compressing does not pay.
    if (rc != Z_OK || z_.avail_in != 0 || z_.avail_out == 0) return {};
    const std::size_t produced = out.size() - z_.avail_out;
    if (produced < flush_tail.size() + 1) return {};
    out.resize(produced - flush_tail.size());
    if (out.size() >= in.size()) return {};
    return out;
  }

 private:
  z_stream z_{};
};

}  // namespace

std::string deflate_message(std::string_view payload) {
  if (payload.size() < min_deflate_payload || payload.size() > UINT32_MAX / 2) return {};
  thread_local Deflater deflater;
  return deflater.compress(payload);
}

struct Inflater::State {
  Counted counted;
  z_stream z{};
};

Inflater::Inflater() : state_(std::make_unique<State>()) {
  state_->z.zalloc = counted_alloc;
  state_->z.zfree = counted_free;
  state_->z.opaque = &state_->counted;
  if (inflateInit2(&state_->z, -15) != Z_OK) throw std::bad_alloc();
}

Inflater::~Inflater() { inflateEnd(&state_->z); }

std::size_t Inflater::memory_bytes() const noexcept { return state_->counted.bytes; }

Inflater::Result Inflater::inflate(std::string_view payload, std::size_t max_bytes, std::string& out,
                                   bool reset_after) {
  out.clear();
  z_stream& z = state_->z;
  std::array<unsigned char, inflate_chunk> chunk;
  bool ended = false;  // a final block (BFINAL) closed the stream
  auto run = [&](const unsigned char* data, std::size_t size) -> Result {
    z.next_in = const_cast<Bytef*>(data);
    z.avail_in = static_cast<uInt>(size);
    while (true) {
      z.next_out = chunk.data();
      z.avail_out = static_cast<uInt>(chunk.size());
      const int rc = ::inflate(&z, Z_SYNC_FLUSH);
      const std::size_t produced = chunk.size() - z.avail_out;
      if (produced > max_bytes - out.size()) return Result::too_big;
      out.append(reinterpret_cast<const char*>(chunk.data()), produced);
      if (rc == Z_STREAM_END) {
        ended = true;
        return z.avail_in == 0 ? Result::ok : Result::corrupt;
      }
      if (rc == Z_BUF_ERROR) return Result::ok;  // no progress: the input is used up
      if (rc != Z_OK) return Result::corrupt;
      if (z.avail_in == 0 && z.avail_out != 0) return Result::ok;
    }
  };
  // The decoder's limit (at most 1 GiB) keeps a message's payload well under uInt's range.
  Result r = run(reinterpret_cast<const unsigned char*>(payload.data()), payload.size());
  if (r == Result::ok && !ended) r = run(flush_tail.data(), flush_tail.size());
  // After a final block the client starts a fresh stream, as it does without context takeover.
  // After an error the stream is left mid-message: a shared one must start clean for the next.
  if (r != Result::ok || reset_after || ended) inflateReset(&z);
  return r;
}

}  // namespace boundary::realtime::core
