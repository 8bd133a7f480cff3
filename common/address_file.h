// Address files: how a process that listens on port 0 says where it listens.
//
// A server that binds "host:0" writes the addresses it got to a small JSON
// file ({"pid": 123, "grpc": "127.0.0.1:40411", "metrics": "..."}), replaced
// atomically at every start. A client whose endpoint is "file:PATH" reads the
// address from there, and again whenever the server is unreachable (a
// restarted server has a new port). `bpo local` uses this for every process
// (nothing guesses a free port), and any shared filesystem carries it across
// machines (Slurm).
#ifndef BPO_COMMON_ADDRESS_FILE_H_
#define BPO_COMMON_ADDRESS_FILE_H_

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace bpo {

// The entries a process publishes: "grpc", "metrics", "snapshots", ...
using AddressMap = std::map<std::string, std::string>;

// True for "file:PATH" endpoints.
bool IsFileEndpoint(absl::string_view endpoint);
// PATH of a "file:PATH" endpoint; "" for any other endpoint.
std::string FileEndpointPath(absl::string_view endpoint);

// Writes `addresses` (plus this process's pid) to `path` atomically,
// creating its directory.
absl::Status WriteAddressFile(const std::string& path, const AddressMap& addresses);

// The entries of an address file. UNAVAILABLE when it does not exist yet
// (its server has not started); INVALID_ARGUMENT naming the path when it is
// not an address file.
absl::StatusOr<AddressMap> ReadAddressFile(const std::string& path);

// The address to dial for `endpoint`: itself for "host:port", else entry
// `key` of the address file. UNAVAILABLE while the file or the entry is
// missing.
absl::StatusOr<std::string> ResolveEndpoint(absl::string_view endpoint,
                                            absl::string_view key = "grpc");

// The address others should dial for a server that listens on `listen` and
// got `port`: the listen host with the port, except that a wildcard host
// (0.0.0.0, ::, empty) becomes this machine's host name.
std::string PublishedAddress(absl::string_view listen, int port);

}  // namespace bpo

#endif  // BPO_COMMON_ADDRESS_FILE_H_
