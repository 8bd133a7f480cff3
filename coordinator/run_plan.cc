#include "coordinator/run_plan.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace bpo::coordinator {

Phase RunPlan::GetPhase(int32_t p) const {
  Phase phase;
  phase.index = p;
  phase.first_step = p * steps_per_phase;
  phase.end_step = (p + 1) * steps_per_phase;
  phase.snapshot_version = static_cast<uint64_t>(p);
  phase.pairs = pairs_per_phase;
  return phase;
}

absl::StatusOr<RunPlan> MakeRunPlan(const bpo::v1::RunConfig& config) {
  const auto& s = config.schedule();
  if (s.total_steps() < 1 || s.phases() < 1 || s.batch_size() < 1 ||
      s.total_steps() % s.phases() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("schedule: need T >= 1, B >= 1 and F dividing T; got T = ", s.total_steps(),
                     ", F = ", s.phases(), ", B = ", s.batch_size()));
  }
  RunPlan plan;
  plan.total_steps = s.total_steps();
  plan.phases = s.phases();
  plan.steps_per_phase = plan.total_steps / plan.phases;
  plan.batch_size = s.batch_size();
  plan.pairs_per_phase =
      s.pairs_per_phase() > 0 ? s.pairs_per_phase() : plan.steps_per_phase * plan.batch_size;
  if (plan.pairs_per_phase < plan.steps_per_phase * plan.batch_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("schedule: M = ", plan.pairs_per_phase,
                     " is less than K*B = ", plan.steps_per_phase * plan.batch_size));
  }
  plan.total_pairs = plan.pairs_per_phase * plan.phases;
  plan.pairs_used = plan.total_steps * plan.batch_size;
  return plan;
}

std::string FormatRunPlan(const RunPlan& plan, int max_phases_shown) {
  std::string out = absl::StrFormat(
      "T = %d steps, F = %d phases, K = %d steps/phase, B = %d pairs/step, M = %d pairs/phase\n"
      "annotated pairs: %d in all, %d used by the learner\n",
      plan.total_steps, plan.phases, plan.steps_per_phase, plan.batch_size, plan.pairs_per_phase,
      plan.total_pairs, plan.pairs_used);
  absl::StrAppend(&out, "phase  steps          behavior snapshot  pairs\n");
  const int shown_head = max_phases_shown / 2 + max_phases_shown % 2;
  for (int32_t p = 0; p < plan.phases; ++p) {
    if (plan.phases > max_phases_shown && p == shown_head) {
      absl::StrAppend(
          &out, absl::StrFormat("  ... %d more phases ...\n", plan.phases - max_phases_shown));
      p = plan.phases - (max_phases_shown - shown_head) - 1;
      continue;
    }
    const Phase ph = plan.GetPhase(p);
    absl::StrAppend(&out, absl::StrFormat("%5d  [%5d, %5d)  v%-16d  %d\n", ph.index, ph.first_step,
                                          ph.end_step, ph.snapshot_version, ph.pairs));
  }
  return out;
}

}  // namespace bpo::coordinator
