#include "cli/dispatch.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <iostream>

#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/shared_flags.h"
#include "common/version.h"

namespace bpo::cli {
namespace {

bool Allowed(const std::vector<std::string>& only, absl::string_view name) {
  return only.empty() || std::find(only.begin(), only.end(), name) != only.end();
}

// Flags defined in `file` (restricted to `only` when given), sorted by name.
std::vector<absl::CommandLineFlag*> FlagsOf(const char* file,
                                            const std::vector<std::string>& only = {}) {
  std::vector<absl::CommandLineFlag*> out;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (flag->Filename() == file && Allowed(only, flag->Name())) out.push_back(flag);
  }
  std::sort(out.begin(), out.end(), [](auto* a, auto* b) { return a->Name() < b->Name(); });
  return out;
}

void PrintFlags(const std::vector<absl::CommandLineFlag*>& flags) {
  size_t width = 0;
  for (const absl::CommandLineFlag* f : flags) width = std::max(width, f->Name().size());
  for (const absl::CommandLineFlag* f : flags) {
    std::string name(f->Name());
    name.resize(width, ' ');
    std::cout << "  --" << name << "  " << f->Help()
              << " (default: " << (f->DefaultValue().empty() ? "\"\"" : f->DefaultValue()) << ")\n";
  }
}

void PrintTopHelp(const std::vector<const Command*>& commands, const char* global_file) {
  std::cout << "bpo " << kBpoVersion
            << ": online preference learning in proximity to the behavior LLM\n\n"
               "usage: bpo <command> [flags] [args]\n\ncommands:\n";
  size_t width = 0;
  for (const Command* c : commands) width = std::max(width, std::string(c->name).size());
  for (const Command* c : commands) {
    std::string name = c->name;
    name.resize(width, ' ');
    std::cout << "  " << name << "  " << c->summary;
    if (!c->aliases.empty()) std::cout << " (also: " << absl::StrJoin(c->aliases, ", ") << ")";
    std::cout << "\n";
  }
  std::cout << "\nglobal flags:\n";
  PrintFlags(FlagsOf(global_file));
  std::cout << "\n`bpo <command> --help` lists a command's flags.\n";
}

void PrintCommandHelp(const Command& c, const char* global_file) {
  std::cout << "usage: " << c.usage << "\n";
  for (const std::string& alias : c.aliases) {
    std::cout << "   or: bpo " << alias << " ... (the same command)\n";
  }
  std::cout << "\n" << c.summary << "\n";
  auto own = FlagsOf(c.flags_file, c.only_flags);
  if (!c.shared_flags.empty()) {
    for (absl::CommandLineFlag* f : FlagsOf(SharedFlagsFile(), c.shared_flags)) own.push_back(f);
    std::sort(own.begin(), own.end(), [](auto* a, auto* b) { return a->Name() < b->Name(); });
  }
  if (!own.empty()) {
    std::cout << "\nflags:\n";
    PrintFlags(own);
  }
  std::cout << "\nglobal flags:\n";
  PrintFlags(FlagsOf(global_file));
}

bool IsHelp(absl::string_view arg) {
  return arg == "--help" || arg == "-h" || arg == "-help" || arg == "--helpfull" || arg == "help";
}

// The flag name in "--name=value", "--name", "--noname" (booleans), or "".
std::string FlagName(absl::string_view arg) {
  if (!absl::StartsWith(arg, "-")) return "";
  arg.remove_prefix(absl::StartsWith(arg, "--") ? 2 : 1);
  return std::string(arg.substr(0, arg.find('=')));
}

}  // namespace

int Dispatch(int argc, char** argv, const std::vector<const Command*>& commands,
             const char* global_flags_file,
             const std::function<absl::Status()>& apply_global_flags) {
  // Flag file names must stay as __FILE__ wrote them: commands are matched to
  // their flags by file.
  absl::FlagsUsageConfig usage;
  usage.normalize_filename = [](absl::string_view f) { return std::string(f); };
  absl::SetFlagsUsageConfig(usage);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || IsHelp(args[0])) {
    PrintTopHelp(commands, global_flags_file);
    return args.empty() ? kExitUsage : kExitOk;
  }
  if (args[0] == "--version") {
    std::cout << "bpo " << kBpoVersion << "\n";
    return kExitOk;
  }

  // The longest command name or alias whose words start the argument list;
  // messages below call the command by the words given.
  const Command* command = nullptr;
  size_t words = 0;
  std::string invoked;
  for (const Command* c : commands) {
    std::vector<std::string> names = {c->name};
    names.insert(names.end(), c->aliases.begin(), c->aliases.end());
    for (const std::string& n : names) {
      std::vector<std::string> w = absl::StrSplit(n, ' ');
      if (w.size() <= args.size() && std::equal(w.begin(), w.end(), args.begin()) &&
          w.size() > words) {
        command = c;
        words = w.size();
        invoked = n;
      }
    }
  }
  if (command == nullptr) {
    std::vector<std::string> names;
    for (const Command* c : commands) names.push_back(c->name);
    std::cerr << "bpo: unknown command '" << args[0]
              << "'; commands: " << absl::StrJoin(names, ", ") << " (bpo --help)\n";
    return kExitUsage;
  }
  std::vector<std::string> rest(args.begin() + words, args.end());
  for (const std::string& a : rest) {
    if (IsHelp(a)) {
      PrintCommandHelp(*command, global_flags_file);
      return kExitOk;
    }
  }

  // Refuse flags that belong to other commands (Abseil would accept them).
  for (const std::string& a : rest) {
    if (a == "--") break;
    const std::string name = FlagName(a);
    if (name.empty()) continue;
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr && absl::StartsWith(name, "no")) {
      flag = absl::FindCommandLineFlag(name.substr(2));
    }
    const bool own =
        flag != nullptr &&
        ((flag->Filename() == command->flags_file && Allowed(command->only_flags, flag->Name())) ||
         (flag->Filename() == SharedFlagsFile() && !command->shared_flags.empty() &&
          Allowed(command->shared_flags, flag->Name())));
    if (!own && (flag == nullptr || flag->Filename() != global_flags_file)) {
      std::cerr << "bpo " << invoked << ": unknown flag --" << name << " (bpo " << invoked
                << " --help lists its flags)\n";
      return kExitUsage;
    }
  }

  std::vector<char*> parse_argv = {argv[0]};
  for (std::string& a : rest) parse_argv.push_back(a.data());
  std::vector<char*> positional =
      absl::ParseCommandLine(static_cast<int>(parse_argv.size()), parse_argv.data());
  std::vector<std::string> pos(positional.begin() + 1, positional.end());
  if (absl::Status s = apply_global_flags(); !s.ok()) {
    std::cerr << "bpo " << invoked << ": " << s.message() << "\n";
    return kExitUsage;
  }
  if (static_cast<int>(pos.size()) < command->min_args ||
      static_cast<int>(pos.size()) > command->max_args) {
    std::cerr << "bpo " << invoked << ": expected "
              << (command->min_args == command->max_args
                      ? absl::StrCat(command->min_args)
                      : absl::StrCat(command->min_args, " to ", command->max_args))
              << " argument(s), got " << pos.size() << "\nusage: " << command->usage << "\n";
    return kExitUsage;
  }
  // The last line of defence: libraries return Status, but no command may
  // end in an uncaught exception (std::terminate, abort, a core dump).
  try {
    return command->run(pos);
  } catch (const std::exception& e) {
    std::cerr << "bpo " << invoked << ": internal error: " << e.what() << "\n";
  } catch (...) {
    std::cerr << "bpo " << invoked << ": internal error: an unknown exception\n";
  }
  return kExitFailure;
}

}  // namespace bpo::cli
