#include "launch/progress.h"

#include <gtest/gtest.h>

namespace bpo::launch {
namespace {

TEST(ProgressTest, Bar) {
  EXPECT_EQ(ProgressBar(0, 8, 4), "[....]");
  EXPECT_EQ(ProgressBar(4, 8, 4), "[##..]");
  EXPECT_EQ(ProgressBar(8, 8, 4), "[####]");
  EXPECT_EQ(ProgressBar(3, 0, 4), "[....]");
}

TEST(ProgressTest, LineWithRateAndEta) {
  bpo::v1::RunStatus s;
  s.set_phase(1);
  s.set_phases(4);
  s.set_step(4);
  s.set_total_steps(8);
  s.set_pairs_queued(2);
  s.set_pairs_leased(1);
  s.set_pairs_sampled(5);
  s.set_pairs_annotated(3);
  s.set_pairs_batched(1);
  s.set_pairs_consumed(16);
  s.set_pairs_total(32);
  (*s.mutable_last_step_metrics())["loss"] = 0.5;
  // 2 steps since step 2 in 8 s: 4 s a step, 4 steps to go.
  EXPECT_EQ(FormatProgressLine(s, 2, 8.0),
            "phase 2/4 step 4/8 [##########..........] | pairs 3 queued 5 sampled 4 annotated 16 "
            "consumed /32 | loss 0.5000 | 2.0 pairs/s | ETA 16s");
  // Resumed at step 2 with 8 pairs consumed: the rate counts this launch's.
  EXPECT_EQ(FormatProgressLine(s, 2, 8.0, 8),
            "phase 2/4 step 4/8 [##########..........] | pairs 3 queued 5 sampled 4 annotated 16 "
            "consumed /32 | loss 0.5000 | 1.0 pairs/s | ETA 16s");
  s.clear_last_step_metrics();
  EXPECT_EQ(FormatProgressLine(s, 4, 0.0),
            "phase 2/4 step 4/8 [##########..........] | pairs 3 queued 5 sampled 4 annotated 16 "
            "consumed /32 | loss - | 0.0 pairs/s | ETA -");
}

}  // namespace
}  // namespace bpo::launch
