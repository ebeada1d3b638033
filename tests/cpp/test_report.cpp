#include <gtest/gtest.h>

#include "torchdevice/report.h"

namespace torchdevice::report {
namespace {

class Report : public ::testing::Test {
 protected:
  void SetUp() override {
    clear();
    set_site_resolver([this]() { return site; });
  }
  void TearDown() override {
    set_site_resolver(nullptr);
    clear();
  }
  Site site{"train.py", 12, "step"};
};

TEST_F(Report, CountsEachSiteAndRequestOnce) {
  const c10::Device cpu(c10::DeviceType::CPU);
  record("aten::empty.memory_format", "cuda", cpu);
  record("aten::empty.memory_format", "cuda", cpu);
  record("aten::empty.memory_format", "cuda:1", cpu);
  site.line = 13;
  record("aten::empty.memory_format", "cuda", cpu);
  const auto seen = entries();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].site.file, "train.py");
  EXPECT_EQ(seen[0].site.line, 12);
  EXPECT_EQ(seen[0].site.function, "step");
  EXPECT_EQ(seen[0].count, 2u);
  EXPECT_EQ(seen[1].requested, "cuda:1");
  EXPECT_EQ(seen[1].count, 1u);
  EXPECT_EQ(seen[2].site.line, 13);
  EXPECT_EQ(seen[2].target, "cpu");
}

TEST_F(Report, SummaryHasOneLinePerSite) {
  record("torch.device", "cuda", c10::Device(c10::DeviceType::CPU));
  const std::string table = summary();
  EXPECT_NE(table.find("1 call site:"), std::string::npos) << table;
  EXPECT_NE(table.find("       1  cuda -> cpu  train.py:12 (step): torch.device"),
            std::string::npos)
      << table;
}

TEST(ReportWithoutResolver, NamesTheCallerAsCpp) {
  clear();
  record("aten::empty_strided", "cuda", c10::Device(c10::DeviceType::CPU));
  ASSERT_EQ(entries().size(), 1u);
  EXPECT_EQ(entries()[0].site.file, "<C++>");
  clear();
}

}  // namespace
}  // namespace torchdevice::report
