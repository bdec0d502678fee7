#pragma once
// Every rule a Config must satisfy, checked in one place: the server's constructor calls it, and
// the command line reports its message. Pure.

#include "boundary/realtime/config.hpp"

namespace boundary::realtime::core {

// Throws std::invalid_argument whose message names the option (`--max-message-bytes: ...`).
void validate_config(const Config& config);

}  // namespace boundary::realtime::core
