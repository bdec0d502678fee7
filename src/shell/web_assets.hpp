#pragma once
// Static files compiled into the binary (cmake/embed_assets.cmake): the dev-mode page at `/`
// and the JavaScript client it loads. Served only in dev mode.

#include <span>
#include <string_view>

namespace boundary::realtime::shell {

struct WebAsset {
  std::string_view path;          // request path, e.g. "/"
  std::string_view content_type;
  std::string_view body;
};

std::span<const WebAsset> web_assets() noexcept;

}  // namespace boundary::realtime::shell
