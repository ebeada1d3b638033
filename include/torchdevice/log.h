#pragma once

#include <string>

// A narrow logging interface so that spdlog stays an implementation detail of src/log.cpp.
// Level comes from TORCHDEVICE_LOG_LEVEL (trace, debug, info, warn, error, off; default warn)
// and output goes to stderr, or to TORCHDEVICE_LOG_FILE when set.
namespace torchdevice::log {

enum class Level { trace, debug, info, warn, error, off };

bool enabled(Level level);
void write(Level level, const std::string& message);

inline void debug(const std::string& message) { write(Level::debug, message); }
inline void info(const std::string& message) { write(Level::info, message); }
inline void warn(const std::string& message) { write(Level::warn, message); }

// Re-reads the environment (tests change it between installs).
void configure_from_env();

}  // namespace torchdevice::log
