#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include "torchdevice/graph_capture.h"

namespace torchdevice {
namespace {

TEST(CapturedGraph, ReplayFollowsTheStaticInputAndLeavesOlderTensorsAsTheyWere) {
  at::Tensor input = at::ones({4});
  at::Tensor weight = at::full({4}, 2.0);
  at::Tensor counter = at::zeros({4});
  CapturedGraph graph;
  graph.begin();
  EXPECT_EQ(capturing_graph(), &graph);
  at::Tensor output = (input * weight).add_(1);
  counter.add_(input);
  graph.end();
  EXPECT_EQ(capturing_graph(), nullptr);
  EXPECT_TRUE(at::equal(counter, at::zeros({4})));  // the capture ran no work on older tensors

  input.fill_(3);
  graph.replay();
  EXPECT_TRUE(at::allclose(output, at::full({4}, 7.0)));
  EXPECT_TRUE(at::allclose(counter, at::full({4}, 3.0)));
  EXPECT_GE(graph.replayed_ops(), 3u);
}

TEST(CapturedGraph, OneCaptureAtATimeAndReplayOnlyAfterIt) {
  CapturedGraph first;
  CapturedGraph second;
  EXPECT_THROW(first.replay(), c10::Error);
  first.begin();
  EXPECT_THROW(second.begin(), c10::Error);
  EXPECT_THROW(first.begin(), c10::Error);
  first.end();
  EXPECT_THROW(first.end(), c10::Error);
  first.reset();
  EXPECT_FALSE(first.captured());
}

TEST(CapturedGraph, ViewsAreNotReplayedButFollowTheirSource) {
  at::Tensor input = at::arange(6, at::kFloat);
  CapturedGraph graph;
  graph.begin();
  at::Tensor view = input.view({2, 3}).t();
  at::Tensor sum = view.sum();
  graph.end();
  input.fill_(1);
  graph.replay();
  EXPECT_EQ(sum.item<float>(), 6.0f);
  for (const auto& line : graph.describe()) {
    if (line.rfind("aten::view", 0) == 0) {
      EXPECT_NE(line.find("not replayed"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace torchdevice
