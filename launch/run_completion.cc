#include "launch/run_completion.h"

#include <filesystem>
#include <string>

#include "common/config.h"
#include "common/status_macros.h"
#include "coordinator/sqlite.h"

namespace bpo::launch {
namespace {

// Steps committed in the run's store; 0 when it has none yet.
absl::StatusOr<int64_t> CommittedSteps(const bpo::v1::RunConfig& config) {
  std::string path = config.coordinator().store();
  if (path.empty()) {
    BPO_ASSIGN_OR_RETURN(path, RunPath(config, "coordinator.db"));
  }
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return 0;
  BPO_ASSIGN_OR_RETURN(auto db, coordinator::Database::Open(path, {.fsync = false}));
  absl::StatusOr<coordinator::Statement*> st = db->Prepare("SELECT COUNT(*) FROM steps");
  if (!st.ok()) return 0;  // no steps table yet
  BPO_ASSIGN_OR_RETURN(bool row, (*st)->Step());
  return row ? (*st)->Int(0) : 0;
}

}  // namespace

absl::StatusOr<RunCompletion> ReadRunCompletion(const bpo::v1::RunConfig& config) {
  RunCompletion c;
  c.total_steps = config.schedule().total_steps();
  BPO_ASSIGN_OR_RETURN(c.steps_committed, CommittedSteps(config));
  BPO_ASSIGN_OR_RETURN(const std::string adapter,
                       RunPath(config, "adapter/adapter_model.safetensors"));
  std::error_code ec;
  c.adapter_exported = std::filesystem::exists(adapter, ec);
  return c;
}

}  // namespace bpo::launch
