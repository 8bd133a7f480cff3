#include "cli/command.h"

#include <iostream>

namespace bpo::cli {

int Fail(std::string_view command, const absl::Status& status) {
  std::cerr << "bpo " << command << ": " << status.message() << "\n";
  return kExitFailure;
}

}  // namespace bpo::cli
