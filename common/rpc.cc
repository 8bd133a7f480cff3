#include "common/rpc.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/endpoint.h"
#include "common/files.h"

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
                                                       absl::string_view what,
                                                       absl::Duration timeout,
                                                       const TransportSecurity& transport,
                                                       Role peer_role) {
  auto endpoint = ParseEndpoint(address);
  if (!endpoint.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", endpoint.status().message()));
  }
  if (endpoint->port == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " at ", address, ": port 0 cannot be connected to"));
  }
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 64 << 20);
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (transport.plaintext) {
    if (!IsLoopbackHost(endpoint->host)) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " at ", address, ": security.plaintext connects only to loopback addresses"));
    }
    credentials = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = transport.ca_pem;
    ssl.pem_cert_chain = transport.cert_pem;
    ssl.pem_private_key = transport.key_pem;
    credentials = grpc::SslCredentials(ssl);
    if (!transport.bearer_token.empty()) {
      credentials = grpc::CompositeChannelCredentials(
          credentials, grpc::AccessTokenCredentials(transport.bearer_token));
    }
    // The peer proves its role, not its host name: its certificate names
    // "<role>.bpo" (common/certs.h), whatever address it is reached at.
    args.SetSslTargetNameOverride(absl::StrCat(RoleName(peer_role), ".bpo"));
  }
  auto channel = grpc::CreateCustomChannel(endpoint->ToString(), credentials, args);
  if (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + timeout))) {
    return absl::UnavailableError(absl::StrCat(
        what, " at ", endpoint->ToString(), " is unreachable (no connection within ",
        absl::FormatDuration(timeout), ")",
        transport.plaintext ? ""
                            : absl::StrCat("; over TLS the peer must hold a ", RoleName(peer_role),
                                           " certificate of this run's CA, and accept ours")));
  }
  return channel;
}

absl::StatusOr<GrpcServer> StartGrpcServer(const std::string& address,
                                           const std::vector<grpc::Service*>& services,
                                           const TransportSecurity& transport,
                                           int max_message_bytes) {
  auto endpoint = ParseEndpoint(address);
  if (!endpoint.ok()) return endpoint.status();
  std::shared_ptr<grpc::ServerCredentials> credentials;
  if (transport.plaintext) {
    if (!IsLoopbackHost(endpoint->host)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot serve gRPC on ", address,
          ": security.plaintext serves only on loopback addresses (use TLS: docs/security.md)"));
    }
    credentials = grpc::InsecureServerCredentials();
  } else {
    if (transport.cert_pem.empty() || transport.key_pem.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot serve gRPC on ", address, " over TLS: no certificate"));
    }
    // Without accepted tokens, a client without a certificate of the run's
    // CA fails the handshake; with them, it may connect and must then show
    // a token on every call (PeerIdentity).
    grpc::SslServerCredentialsOptions ssl(
        transport.tokens.empty() ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                 : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
    ssl.pem_root_certs = transport.ca_pem;
    ssl.pem_key_cert_pairs.push_back({transport.key_pem, transport.cert_pem});
    credentials = grpc::SslServerCredentials(ssl);
  }
  GrpcServer out;
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(max_message_bytes);
  builder.SetMaxSendMessageSize(max_message_bytes);
  // Without this, gRPC lets a second server share the port (SO_REUSEPORT).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(endpoint->ToString(), credentials, &out.port);
  for (grpc::Service* s : services) builder.RegisterService(s);
  out.server = builder.BuildAndStart();
  if (out.server == nullptr || out.port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot serve gRPC on ", endpoint->ToString(),
                                               ": the address is in use or not local"));
  }
  return out;
}

absl::StatusOr<Identity> PeerIdentity(const grpc::ServerContextBase& context,
                                      const TransportSecurity& transport) {
  if (transport.plaintext) return Identity{Role::kPlaintext, "plaintext"};
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth != nullptr && auth->IsPeerAuthenticated()) {
    // The handshake verified the certificate against the run's CA.
    std::vector<grpc::string_ref> cn = auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME);
    if (cn.size() == 1) {
      absl::StatusOr<Identity> id = ParseIdentity(absl::string_view(cn[0].data(), cn[0].size()));
      if (!id.ok()) {
        return absl::UnauthenticatedError(
            absl::StrCat("client certificate: ", id.status().message()));
      }
      return id;
    }
  }
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it != metadata.end()) {
    absl::string_view value(it->second.data(), it->second.size());
    if (absl::ConsumePrefix(&value, "Bearer ") && !value.empty()) {
      auto found = transport.tokens.find(Sha256Hex(std::string_view(value.data(), value.size())));
      if (found != transport.tokens.end()) return found->second;
    }
    return absl::UnauthenticatedError("the bearer token is not one of security.tokens_file");
  }
  return absl::UnauthenticatedError(
      "no client certificate of the run's CA and no bearer token (docs/security.md)");
}

}  // namespace bpo
