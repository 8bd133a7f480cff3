#include "common/config.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/address_file.h"
#include "common/config_internal.h"
#include "common/endpoint.h"

namespace bpo {
namespace config_internal {
namespace {

namespace fs = std::filesystem;
using bpo::v1::LossConfig;
using bpo::v1::ReferenceConfig;
using bpo::v1::RunConfig;

// The linear modules of Gemma and Llama decoder layers that LoRA can target.
const std::vector<std::string>& KnownTargetModules() {
  static const auto* kModules = new std::vector<std::string>{
      "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  return *kModules;
}

// A file name stem turned into a safe run_id: unsafe characters become '-',
// leading '.' and '-' are dropped, at most 64 characters.
std::string RunIdFromStem(const std::string& stem) {
  std::string id;
  for (char ch : stem) {
    const bool safe =
        absl::ascii_isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-';
    if (id.empty() && (ch == '.' || ch == '-')) continue;
    id += safe ? ch : '-';
    if (id.size() == 64) break;
  }
  return id.empty() ? "bpo-run" : id;
}

// Why `s` cannot go into names, paths and logs unchanged, or "" when it can:
// NUL, CR, LF, other C0 controls except tab, DEL, U+2028, U+2029 and invalid
// UTF-8 all break a line-oriented log or a file name.
std::string UnsafeStringReason(absl::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c == 0) return absl::StrCat("contains a NUL byte at offset ", i);
      if (c == '\r') return absl::StrCat("contains a carriage return at offset ", i);
      if (c == '\n') return absl::StrCat("contains a line feed at offset ", i);
      if ((c < 0x20 && c != '\t') || c == 0x7f) {
        return absl::StrCat("contains control character 0x", absl::Hex(c, absl::kZeroPad2),
                            " at offset ", i);
      }
      ++i;
      continue;
    }
    int len = 0;
    uint32_t cp = 0;
    if ((c & 0xe0) == 0xc0) {
      len = 2, cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3, cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4, cp = c & 0x07;
    } else {
      return absl::StrCat("is not valid UTF-8 (byte ", i, ")");
    }
    if (i + len > s.size()) return absl::StrCat("is not valid UTF-8 (byte ", i, ")");
    for (int k = 1; k < len; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return absl::StrCat("is not valid UTF-8 (byte ", i, ")");
      cp = (cp << 6) | (cc & 0x3f);
    }
    const uint32_t min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return absl::StrCat("is not valid UTF-8 (byte ", i, ")");
    }
    if (cp == 0x2028 || cp == 0x2029) {
      return absl::StrCat("contains U+", absl::Hex(cp), " (a line separator) at offset ", i);
    }
    i += len;
  }
  return "";
}

std::string ResolvePath(absl::string_view base_dir, const std::string& path) {
  if (path.empty()) return path;
  fs::path p(path);
  if (p.is_relative()) p = fs::path(std::string(base_dir)) / p;
  return p.lexically_normal().string();
}

}  // namespace

void ErrorList::Add(absl::string_view path, absl::string_view reason) {
  if (positions_ != nullptr) {
    if (auto it = positions_->find(std::string(path)); it != positions_->end()) {
      return AddAt(it->second, path, reason);
    }
  }
  errors_.push_back(absl::StrCat(source_, ": ", path, ": ", reason));
}

void ErrorList::AddAt(SourcePosition pos, absl::string_view path, absl::string_view reason) {
  errors_.push_back(
      absl::StrCat(source_, ":", pos.line, ":", pos.column, ": ", path, ": ", reason));
}

absl::Status ErrorList::ToStatus() const {
  if (errors_.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrJoin(errors_, "\n"));
}

void Resolve(absl::string_view source, absl::string_view base_dir, RunConfig* c) {
  if (c->run_id().empty()) {
    const std::string stem = fs::path(std::string(source)).stem().string();
    c->set_run_id(stem.empty() || stem.front() == '<' ? "bpo-run" : RunIdFromStem(stem));
  }
  c->set_output_dir(ResolvePath(base_dir, c->output_dir()));
  auto* schedule = c->mutable_schedule();
  const int32_t t = schedule->total_steps(), f = schedule->phases();
  if (schedule->pairs_per_phase() == 0 && f > 0 && t > 0 && t % f == 0) {
    const int64_t m = static_cast<int64_t>(t / f) * schedule->batch_size();
    if (m > 0 && m <= std::numeric_limits<int32_t>::max()) {
      schedule->set_pairs_per_phase(static_cast<int32_t>(m));
    }
  }
  if (c->lora().target_modules().empty()) c->mutable_lora()->add_target_modules("all-linear");
  auto* model = c->mutable_model();
  model->set_policy(ResolvePath(base_dir, model->policy()));
  model->set_reward_model(ResolvePath(base_dir, model->reward_model()));
  model->set_tokenizer(ResolvePath(base_dir, model->tokenizer()));
  if (model->tokenizer().empty() && !model->policy().empty()) {
    model->set_tokenizer((fs::path(model->policy()) / "tokenizer.model").string());
  }
  auto* data = c->mutable_data();
  data->set_prompts(ResolvePath(base_dir, data->prompts()));
  data->set_eval_prompts(ResolvePath(base_dir, data->eval_prompts()));
  auto* ref = c->mutable_reference();
  ref->set_static_adapter(ResolvePath(base_dir, ref->static_adapter()));
  auto* learner = c->mutable_learner();
  learner->set_snapshot_dir(ResolvePath(base_dir, learner->snapshot_dir()));
  c->mutable_coordinator()->set_store(ResolvePath(base_dir, c->coordinator().store()));
  auto* security = c->mutable_security();
  security->set_dir(ResolvePath(base_dir, security->dir()));
  security->set_ca(ResolvePath(base_dir, security->ca()));
  security->set_cert(ResolvePath(base_dir, security->cert()));
  security->set_key(ResolvePath(base_dir, security->key()));
  security->set_tokens_file(ResolvePath(base_dir, security->tokens_file()));
  auto* seeds = c->mutable_seeds();
  if (!seeds->has_prompts()) seeds->set_prompts(seeds->global());
  if (!seeds->has_sampling()) seeds->set_sampling(seeds->global());
  if (!seeds->has_lora_init()) seeds->set_lora_init(seeds->global());
}

void Validate(const RunConfig& c, const ConfigOptions& options, ErrorList* errors) {
  auto positive = [&](const char* path, double v) {
    if (!(v > 0)) errors->Add(path, absl::StrCat("must be > 0, got ", v));
  };
  auto at_least = [&](const char* path, int64_t v, int64_t min) {
    if (v < min) errors->Add(path, absl::StrCat("must be >= ", min, ", got ", v));
  };
  auto at_most = [&](const char* path, int64_t v, int64_t max) {
    if (v > max) errors->Add(path, absl::StrCat("must be <= ", max, ", got ", v));
  };
  auto in_range = [&](const char* path, double v, double lo, double hi, const char* range) {
    if (!(v >= lo && v <= hi)) errors->Add(path, absl::StrCat("must be in ", range, ", got ", v));
  };

  // Strings that end up in names, paths and logs.
  auto safe_string = [&](const std::string& path, const std::string& v) {
    if (std::string why = UnsafeStringReason(v); !why.empty()) errors->Add(path, why);
  };
  for (const auto& [path, value] : std::vector<std::pair<std::string, std::string>>{
           {"run_id", c.run_id()},
           {"output_dir", c.output_dir()},
           {"reference.static_adapter", c.reference().static_adapter()},
           {"model.policy", c.model().policy()},
           {"model.reward_model", c.model().reward_model()},
           {"model.tokenizer", c.model().tokenizer()},
           {"model.device", c.model().device()},
           {"data.prompts", c.data().prompts()},
           {"data.eval_prompts", c.data().eval_prompts()},
           {"annotation.rule", c.annotation().rule()},
           {"coordinator.store", c.coordinator().store()},
           {"endpoints.coordinator", c.endpoints().coordinator()},
           {"endpoints.snapshots", c.endpoints().snapshots()},
           {"endpoints.metrics", c.endpoints().metrics()},
           {"learner.snapshot_dir", c.learner().snapshot_dir()},
           {"security.dir", c.security().dir()},
           {"security.ca", c.security().ca()},
           {"security.cert", c.security().cert()},
           {"security.key", c.security().key()},
           {"security.tokens_file", c.security().tokens_file()}}) {
    safe_string(path, value);
  }
  for (int i = 0; i < c.lora().target_modules_size(); ++i) {
    safe_string(absl::StrCat("lora.target_modules[", i, "]"), c.lora().target_modules(i));
  }
  if (absl::Status id = CheckRunId(c.run_id()); !id.ok()) {
    // The message starts with "run_id: "; ErrorList adds the key itself.
    errors->Add("run_id", absl::StripPrefix(id.message(), "run_id: "));
  }
  if (c.output_dir().empty()) errors->Add("output_dir", "must not be empty");

  // Schedule: T, F, K = T/F, B, M.
  const auto& s = c.schedule();
  at_least("schedule.total_steps", s.total_steps(), 1);
  at_least("schedule.phases", s.phases(), 1);
  at_least("schedule.batch_size", s.batch_size(), 1);
  at_least("schedule.max_staleness", s.max_staleness(), 0);
  const bool schedule_ok = s.total_steps() >= 1 && s.phases() >= 1 && s.batch_size() >= 1;
  if (schedule_ok && s.total_steps() % s.phases() != 0) {
    errors->Add("schedule.phases",
                absl::StrCat("F = ", s.phases(),
                             " does not divide schedule.total_steps = ", s.total_steps()));
  } else if (schedule_ok) {
    const int64_t k = s.total_steps() / s.phases();
    const int64_t kb = k * s.batch_size();
    if (s.each_pair_once() && s.pairs_per_phase() != kb) {
      errors->Add("schedule.pairs_per_phase",
                  absl::StrCat("M = ", s.pairs_per_phase(), " must equal K*B = ", k, "*",
                               s.batch_size(), " = ", kb, " when schedule.each_pair_once is true"));
    } else if (!s.each_pair_once() && s.pairs_per_phase() < kb) {
      errors->Add("schedule.pairs_per_phase",
                  absl::StrCat("M = ", s.pairs_per_phase(), " is less than K*B = ", kb,
                               ": the learner would run out of pairs"));
    }
  }

  at_most("schedule.batch_size", s.batch_size(), 1 << 20);
  at_most("schedule.max_staleness", s.max_staleness(), 1 << 20);

  // Loss.
  const auto& loss = c.loss();
  positive("loss.beta", loss.beta());
  if (loss.label_smoothing() != 0) {
    if (loss.type() != LossConfig::DPO) {
      errors->Add("loss.label_smoothing", "only applies to loss.type dpo");
    } else if (!(loss.label_smoothing() >= 0 && loss.label_smoothing() < 0.5)) {
      errors->Add("loss.label_smoothing",
                  absl::StrCat("must be in [0, 0.5), got ", loss.label_smoothing()));
    }
  }

  // Reference.
  const auto& ref = c.reference();
  if (ref.mode() == ReferenceConfig::EMA) {
    if (!(ref.ema_rate() > 0 && ref.ema_rate() <= 1)) {
      errors->Add("reference.ema_rate", absl::StrCat("must be in (0, 1], got ", ref.ema_rate()));
    }
  }
  if (ref.mode() == ReferenceConfig::STATIC && ref.static_adapter().empty()) {
    errors->Add("reference.static_adapter", "required when reference.mode is static");
  }

  // LoRA.
  const auto& lora = c.lora();
  at_least("lora.members", lora.members(), 1);
  at_most("lora.members", lora.members(), 1024);
  at_least("lora.rank", lora.rank(), 1);
  at_most("lora.rank", lora.rank(), 1 << 16);
  positive("lora.alpha", lora.alpha());
  in_range("lora.dropout", lora.dropout(), 0, 0.999999, "[0, 1)");
  std::set<std::string> modules;
  for (int i = 0; i < lora.target_modules_size(); ++i) {
    const std::string& m = lora.target_modules(i);
    const std::string path = absl::StrCat("lora.target_modules[", i, "]");
    const auto& known = KnownTargetModules();
    if (m == "all-linear") {
      if (lora.target_modules_size() > 1) {
        errors->Add(path, "'all-linear' cannot be combined with other modules");
      }
    } else if (std::find(known.begin(), known.end(), m) == known.end()) {
      const std::string closest = ClosestName(m, known);
      errors->Add(path, absl::StrCat(
                            "unknown module '", m, "'",
                            closest.empty() ? "" : absl::StrCat(" (did you mean '", closest, "'?)"),
                            "; expected all-linear or some of ", absl::StrJoin(known, ", ")));
    }
    if (!modules.insert(m).second) errors->Add(path, absl::StrCat("'", m, "' is listed twice"));
  }

  // Optimizer.
  const auto& opt = c.optimizer();
  positive("optimizer.learning_rate", opt.learning_rate());
  in_range("optimizer.adam_beta1", opt.adam_beta1(), 0, 0.999999999, "[0, 1)");
  in_range("optimizer.adam_beta2", opt.adam_beta2(), 0, 0.999999999, "[0, 1)");
  positive("optimizer.adam_eps", opt.adam_eps());
  if (opt.weight_decay() < 0) {
    errors->Add("optimizer.weight_decay", absl::StrCat("must be >= 0, got ", opt.weight_decay()));
  }
  if (opt.grad_clip() < 0) {
    errors->Add("optimizer.grad_clip",
                absl::StrCat("must be >= 0 (0 disables), got ", opt.grad_clip()));
  }
  if (opt.warmup_steps() < 0 || opt.warmup_steps() > s.total_steps()) {
    errors->Add("optimizer.warmup_steps",
                absl::StrCat("must be in [0, schedule.total_steps = ", s.total_steps(), "], got ",
                             opt.warmup_steps()));
  }

  // Sampling.
  const auto& smp = c.sampling();
  positive("sampling.temperature", smp.temperature());
  at_least("sampling.top_k", smp.top_k(), 0);
  if (!(smp.top_p() > 0 && smp.top_p() <= 1)) {
    errors->Add("sampling.top_p", absl::StrCat("must be in (0, 1], got ", smp.top_p()));
  }
  at_least("sampling.max_new_tokens", smp.max_new_tokens(), 1);
  at_most("sampling.max_new_tokens", smp.max_new_tokens(), 1 << 20);
  if (smp.samples_per_prompt() != 2) {
    errors->Add("sampling.samples_per_prompt",
                absl::StrCat("must be 2 (a preference pair), got ", smp.samples_per_prompt()));
  }
  at_least("sampling.max_resamples", smp.max_resamples(), 0);

  // Model.
  const std::string& device = c.model().device();
  int ordinal;
  if (device != "cpu" && device != "cuda" &&
      !(absl::StartsWith(device, "cuda:") && absl::SimpleAtoi(device.substr(5), &ordinal) &&
        ordinal >= 0)) {
    errors->Add("model.device", absl::StrCat("expected cpu, cuda or cuda:N, got '", device, "'"));
  }

  // Annotation.
  const auto& ann = c.annotation();
  at_least("annotation.rm_max_length", ann.rm_max_length(), 8);
  at_least("annotation.raters_per_pair", ann.raters_per_pair(), 1);
  at_least("annotation.lease_seconds", ann.lease_seconds(), 1);
  at_least("annotation.pairs_per_lease", ann.pairs_per_lease(), 1);
  {
    const std::string& rule = ann.rule();
    if (rule != "shorter" && rule != "longer" &&
        !(absl::StartsWith(rule, "contains:") && rule.size() > 9) &&
        !(absl::StartsWith(rule, "oracle:") && rule.size() > 7)) {
      errors->Add("annotation.rule",
                  absl::StrCat("expected shorter, longer, contains:<word> or oracle:<task>, got '",
                               rule, "'"));
    }
  }
  at_most("annotation.raters_per_pair", ann.raters_per_pair(), 1024);
  at_most("annotation.pairs_per_lease", ann.pairs_per_lease(), 1 << 20);
  at_least("sampling.prompts_per_lease", smp.prompts_per_lease(), 1);
  at_most("sampling.prompts_per_lease", smp.prompts_per_lease(), 1 << 20);

  // Coordinator and launcher.
  const auto& co = c.coordinator();
  at_least("coordinator.actor_lease_seconds", co.actor_lease_seconds(), 1);
  positive("coordinator.heartbeat_seconds", co.heartbeat_seconds());
  at_least("coordinator.stall_seconds", co.stall_seconds(), 0);
  at_least("coordinator.worker_timeout_seconds", co.worker_timeout_seconds(), 1);
  at_least("coordinator.max_message_bytes", co.max_message_bytes(), 1 << 16);
  at_least("coordinator.rpcs_per_second_max", co.rpcs_per_second_max(), 0);
  at_least("coordinator.workers_per_identity_max", co.workers_per_identity_max(), 0);
  at_least("coordinator.string_bytes_max", co.string_bytes_max(), 16);
  at_least("coordinator.vocab_size", co.vocab_size(), 0);
  at_least("coordinator.prompt_tokens_max", co.prompt_tokens_max(), 1);
  at_least("launch.actors", c.launch().actors(), 1);
  at_least("launch.annotators", c.launch().annotators(), 1);
  at_least("launch.max_restarts", c.launch().max_restarts(), 0);
  at_most("launch.actors", c.launch().actors(), 1024);
  at_most("launch.annotators", c.launch().annotators(), 1024);

  // Endpoints.
  const auto& ep = c.endpoints();
  for (const auto& [path, value] :
       {std::pair<const char*, std::string>{"endpoints.coordinator", ep.coordinator()},
        {"endpoints.snapshots", ep.snapshots()},
        {"endpoints.metrics", ep.metrics()}}) {
    // The coordinator may publish where it listens in an address file
    // (common/address_file.h): "file:PATH".
    if (std::string_view(path) == "endpoints.coordinator" && IsFileEndpoint(value)) {
      if (FileEndpointPath(value).empty()) errors->Add(path, "'file:' needs a path");
      continue;
    }
    if (auto parsed = ParseEndpoint(value); !parsed.ok()) {
      errors->Add(path, parsed.status().message());
    }
  }
  positive("endpoints.rpc_deadline_seconds", ep.rpc_deadline_seconds());

  // Learner.
  const auto& learner = c.learner();
  at_least("learner.world_size", learner.world_size(), 1);
  at_most("learner.world_size", learner.world_size(), 4096);
  if (learner.world_size() >= 1 && s.batch_size() >= 1 &&
      s.batch_size() % learner.world_size() != 0) {
    errors->Add("learner.world_size",
                absl::StrCat("R = ", learner.world_size(),
                             " does not divide schedule.batch_size = ", s.batch_size()));
  }
  if (learner.backend() == bpo::v1::LearnerConfig::NCCL && device == "cpu") {
    errors->Add("learner.backend", "nccl needs a CUDA model.device, got cpu");
  }
  at_least("learner.checkpoint_every", learner.checkpoint_every(), 0);

  if (c.security().plaintext()) {
    // Plain connections carry no authentication: only where no other machine
    // can connect or listen.
    for (const auto& [path, address] : std::vector<std::pair<const char*, std::string>>{
             {"endpoints.coordinator", c.endpoints().coordinator()},
             {"endpoints.snapshots", c.endpoints().snapshots()},
             {"endpoints.metrics", c.endpoints().metrics()}}) {
      absl::StatusOr<Endpoint> ep = ParseEndpoint(address);
      if (ep.ok() && !IsLoopbackHost(ep->host)) {
        errors->Add(path, absl::StrCat("'", address,
                                       "' is not a loopback address, and security.plaintext "
                                       "allows only loopback (use TLS: docs/security.md)"));
      }
    }
  }

  // Files that must exist.
  if (!options.check_files) return;
  auto must_exist = [&](const char* path, const std::string& value) {
    if (value.empty()) return;
    std::error_code ec;
    if (!fs::exists(value, ec)) errors->Add(path, absl::StrCat("'", value, "' does not exist"));
  };
  must_exist("model.policy", c.model().policy());
  must_exist("model.reward_model", c.model().reward_model());
  must_exist("model.tokenizer", c.model().tokenizer());
  must_exist("data.prompts", c.data().prompts());
  must_exist("data.eval_prompts", c.data().eval_prompts());
  must_exist("reference.static_adapter", ref.static_adapter());
}

}  // namespace config_internal

absl::StatusOr<RunConfigFile> ParseRunConfig(absl::string_view yaml, absl::string_view source,
                                             absl::string_view base_dir,
                                             const ConfigOptions& options) {
  RunConfigFile out;
  out.source = std::string(source);
  config_internal::ErrorList errors(out.source, &out.positions);
  config_internal::ParseYaml(yaml, &out.config, &out.positions, &errors);
  if (!errors.empty()) return errors.ToStatus();
  config_internal::Resolve(source, base_dir, &out.config);
  config_internal::Validate(out.config, options, &errors);
  if (!errors.empty()) return errors.ToStatus();
  return out;
}

absl::StatusOr<RunConfigFile> LoadRunConfig(const std::string& path, const ConfigOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("config file '", path, "': cannot open: ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return absl::DataLossError(absl::StrCat("config file '", path, "': read failed"));
  }
  std::error_code ec;
  const auto dir = std::filesystem::absolute(path, ec).parent_path();
  return ParseRunConfig(text.str(), path, dir.string(), options);
}

RunConfigFile DefaultRunConfig() {
  RunConfigFile out;
  out.source = "<defaults>";
  std::error_code ec;
  config_internal::Resolve(out.source, std::filesystem::current_path(ec).string(), &out.config);
  return out;
}

absl::Status CheckRunId(absl::string_view run_id) {
  constexpr size_t kMaxLength = 64;
  const char* const kAllowed = "1-64 characters of [A-Za-z0-9._-], not starting with '.' or '-'";
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("run_id: ", why, "; expected ", kAllowed, " (a single directory name)"));
  };
  if (run_id.empty()) return bad("is empty");
  if (run_id.size() > kMaxLength) {
    return bad(absl::StrCat("is ", run_id.size(), " characters long"));
  }
  if (run_id.front() == '.' || run_id.front() == '-') {
    return bad(
        absl::StrCat("'", absl::CHexEscape(run_id), "' starts with '", run_id.substr(0, 1), "'"));
  }
  for (size_t i = 0; i < run_id.size(); ++i) {
    const char ch = run_id[i];
    if (!absl::ascii_isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '_' &&
        ch != '-') {
      return bad(absl::StrCat("'", absl::CHexEscape(run_id), "' has '",
                              absl::CHexEscape(run_id.substr(i, 1)), "' at offset ", i));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> RunPath(const bpo::v1::RunConfig& config, absl::string_view relative) {
  namespace fs = std::filesystem;
  if (absl::Status id = CheckRunId(config.run_id()); !id.ok()) return id;
  if (config.output_dir().empty()) return absl::InvalidArgumentError("output_dir: is empty");
  const fs::path run_dir = (fs::path(config.output_dir()) / config.run_id()).lexically_normal();
  if (relative.empty()) return run_dir.string();
  const fs::path rel(std::string{relative});
  const fs::path joined = (run_dir / rel).lexically_normal();
  const fs::path inside = joined.lexically_relative(run_dir);
  if (rel.is_absolute() || inside.empty() || *inside.begin() == ".." || inside == ".") {
    return absl::InvalidArgumentError(absl::StrCat("run path '", absl::CHexEscape(relative),
                                                   "' is not below the run directory ",
                                                   run_dir.string()));
  }
  return joined.string();
}

int32_t StepsPerPhase(const bpo::v1::RunConfig& config) {
  return config.schedule().total_steps() / config.schedule().phases();
}

int64_t PairsPerPhase(const bpo::v1::RunConfig& config) {
  if (config.schedule().pairs_per_phase() > 0) return config.schedule().pairs_per_phase();
  return static_cast<int64_t>(StepsPerPhase(config)) * config.schedule().batch_size();
}

}  // namespace bpo
