#include <gtest/gtest.h>

#include <c10/util/Exception.h>

#include "torchdevice/event.h"

#include <chrono>
#include <thread>

namespace torchdevice {
namespace {

TEST(HostEvent, ElapsedTimeIsTheTimeBetweenRecords) {
  HostEvent start(true);
  HostEvent end(true);
  EXPECT_FALSE(start.recorded());
  const auto before = std::chrono::steady_clock::now();
  start.record();
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  end.record();
  const double outer =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - before).count();
  EXPECT_TRUE(start.recorded());
  const double ms = start.elapsed_ms(end);
  EXPECT_GE(ms, 30.0);
  EXPECT_LE(ms, outer);
  EXPECT_NEAR(end.elapsed_ms(start), -ms, 1e-9);
}

TEST(HostEvent, ReRecordingMovesTheEvent) {
  HostEvent start(true);
  HostEvent end(true);
  start.record();
  end.record();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  start.record();
  EXPECT_LT(start.elapsed_ms(end), -19.0);
}

TEST(HostEvent, RefusesWhatTorchRefuses) {
  HostEvent timed(true);
  HostEvent untimed(false);
  timed.record();
  untimed.record();
  EXPECT_THROW(timed.elapsed_ms(untimed), c10::Error);
  HostEvent never(true);
  EXPECT_THROW(timed.elapsed_ms(never), c10::Error);
  EXPECT_THROW(never.elapsed_ms(timed), c10::Error);
}

}  // namespace
}  // namespace torchdevice
