#include "common/rpc.h"

#include "absl/strings/str_cat.h"
#include "common/endpoint.h"

namespace bpo {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status, absl::string_view what) {
  if (status.ok()) return absl::OkStatus();
  const auto code = static_cast<absl::StatusCode>(status.error_code());
  if (what.empty()) return absl::Status(code, status.error_message());
  return absl::Status(code, absl::StrCat(what, ": ", status.error_message()));
}

void SetDeadline(grpc::ClientContext* context, absl::Duration timeout) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> Connect(const std::string& address,
                                                       absl::string_view role,
                                                       absl::Duration timeout) {
  auto endpoint = ParseEndpoint(address);
  if (!endpoint.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(role, ": ", endpoint.status().message()));
  }
  if (endpoint->port == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(role, " at ", address, ": port 0 cannot be connected to"));
  }
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 64 << 20);
  auto channel =
      grpc::CreateCustomChannel(endpoint->ToString(), grpc::InsecureChannelCredentials(), args);
  if (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + timeout))) {
    return absl::UnavailableError(absl::StrCat(role, " at ", endpoint->ToString(),
                                               " is unreachable (no connection within ",
                                               absl::FormatDuration(timeout), ")"));
  }
  return channel;
}

absl::StatusOr<GrpcServer> StartGrpcServer(const std::string& address,
                                           const std::vector<grpc::Service*>& services,
                                           int max_message_bytes) {
  auto endpoint = ParseEndpoint(address);
  if (!endpoint.ok()) return endpoint.status();
  GrpcServer out;
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(max_message_bytes);
  builder.SetMaxSendMessageSize(max_message_bytes);
  // Without this, gRPC lets a second server share the port (SO_REUSEPORT).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(endpoint->ToString(), grpc::InsecureServerCredentials(), &out.port);
  for (grpc::Service* s : services) builder.RegisterService(s);
  out.server = builder.BuildAndStart();
  if (out.server == nullptr || out.port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot serve gRPC on ", endpoint->ToString(),
                                               ": the address is in use or not local"));
  }
  return out;
}

}  // namespace bpo
