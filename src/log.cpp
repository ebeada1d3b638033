#include "torchdevice/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <memory>
#include <mutex>

namespace torchdevice::log {

namespace {

std::mutex logger_mutex;
std::shared_ptr<spdlog::logger> logger;

spdlog::level::level_enum to_spdlog(Level level) {
  switch (level) {
    case Level::trace: return spdlog::level::trace;
    case Level::debug: return spdlog::level::debug;
    case Level::info: return spdlog::level::info;
    case Level::warn: return spdlog::level::warn;
    case Level::error: return spdlog::level::err;
    case Level::off: return spdlog::level::off;
  }
  return spdlog::level::warn;
}

std::shared_ptr<spdlog::logger> make_logger() {
  const char* file = std::getenv("TORCHDEVICE_LOG_FILE");
  std::shared_ptr<spdlog::logger> made;
  if (file != nullptr && *file != '\0') {
    made = std::make_shared<spdlog::logger>(
        "torchdevice", std::make_shared<spdlog::sinks::basic_file_sink_mt>(file));
  } else {
    made = std::make_shared<spdlog::logger>("torchdevice",
                                            std::make_shared<spdlog::sinks::stderr_sink_mt>());
  }
  made->set_pattern("[%l] %v");
  const char* level = std::getenv("TORCHDEVICE_LOG_LEVEL");
  // Unknown names map to "off" in spdlog; keep the quiet default instead.
  auto parsed = level != nullptr ? spdlog::level::from_str(level) : spdlog::level::warn;
  if (level != nullptr && parsed == spdlog::level::off && std::string(level) != "off") {
    parsed = spdlog::level::warn;
  }
  made->set_level(parsed);
  made->flush_on(spdlog::level::trace);
  return made;
}

std::shared_ptr<spdlog::logger> get() {
  std::lock_guard<std::mutex> lock(logger_mutex);
  if (!logger) {
    logger = make_logger();
  }
  return logger;
}

}  // namespace

bool enabled(Level level) {
  return get()->should_log(to_spdlog(level));
}

void write(Level level, const std::string& message) {
  get()->log(to_spdlog(level), message);
}

void configure_from_env() {
  std::lock_guard<std::mutex> lock(logger_mutex);
  logger = make_logger();
}

}  // namespace torchdevice::log
