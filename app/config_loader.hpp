#pragma once
// Reads the server's configuration from flags, environment variables and a TOML file, in that
// order of precedence (README.md, "Configuration").

#include <string>
#include <vector>

#include "boundary/realtime/config.hpp"

namespace boundary::realtime::app {

struct LoadedConfig {
  Config config;
  std::string jwt_public_key_pem;  // contents of --jwt-public-key, read at startup
};

// Throws std::invalid_argument with a message naming the option for any bad value.
// `flag_values` maps option names (without --) to what was given on the command line.
LoadedConfig load_config(const std::vector<std::pair<std::string, std::string>>& flag_values,
                         const std::string& config_file);

// Option names: flag `--name`, env `REALTIME_NAME` (dashes become underscores; `redis` is
// REALTIME_REDIS_URL), TOML key `name`.
const std::vector<std::string>& option_names();
std::string env_name(const std::string& option);
std::string describe(const std::string& option);

}  // namespace boundary::realtime::app
