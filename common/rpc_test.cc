#include "common/rpc.h"

#include "bpo/v1/coordinator.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace bpo {
namespace {

using ::testing::HasSubstr;

// A real service over a real channel: RunStatus answers with the run id, and
// Register fails with a Status that must arrive with its code and message.
class ScriptedCoordinator final : public bpo::v1::Coordinator::CallbackService {
  grpc::ServerUnaryReactor* GetRunStatus(grpc::CallbackServerContext* ctx,
                                         const bpo::v1::GetRunStatusRequest*,
                                         bpo::v1::RunStatus* out) override {
    out->set_run_id("r1");
    out->set_total_steps(625);
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  grpc::ServerUnaryReactor* Register(grpc::CallbackServerContext* ctx,
                                     const bpo::v1::RegisterRequest* req,
                                     bpo::v1::RegisterResponse*) override {
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(ToGrpcStatus(absl::FailedPreconditionError("worker " + req->worker().name() +
                                                               " loaded a different model")));
    return reactor;
  }
};

TEST(RpcTest, StatusMappingKeepsCodeAndMessage) {
  for (auto code : {absl::StatusCode::kInvalidArgument, absl::StatusCode::kNotFound,
                    absl::StatusCode::kUnavailable, absl::StatusCode::kDataLoss}) {
    const absl::Status s(code, "why");
    EXPECT_EQ(FromGrpcStatus(ToGrpcStatus(s)), s);
  }
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_EQ(FromGrpcStatus(grpc::Status(grpc::StatusCode::NOT_FOUND, "no such lease"),
                           "AnnotationQueue.ExtendLease at h:1"),
            absl::NotFoundError("AnnotationQueue.ExtendLease at h:1: no such lease"));
}

TEST(RpcTest, ServerAndClientRoundTrip) {
  ScriptedCoordinator service;
  auto server = StartGrpcServer("127.0.0.1:0", {&service}, TransportSecurity::Plaintext());
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string address = "127.0.0.1:" + std::to_string(server->port);
  auto channel = Connect(address, "coordinator", absl::Seconds(5), TransportSecurity::Plaintext(),
                         Role::kCoordinator);
  ASSERT_TRUE(channel.ok()) << channel.status();
  auto stub = bpo::v1::Coordinator::NewStub(*channel);

  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Seconds(5));
  bpo::v1::RunStatus status;
  ASSERT_TRUE(stub->GetRunStatus(&ctx, {}, &status).ok());
  EXPECT_EQ(status.run_id(), "r1");
  EXPECT_EQ(status.total_steps(), 625);

  grpc::ClientContext ctx2;
  SetDeadline(&ctx2, absl::Seconds(5));
  bpo::v1::RegisterRequest req;
  req.mutable_worker()->set_name("actor-7");
  bpo::v1::RegisterResponse resp;
  const absl::Status s = FromGrpcStatus(stub->Register(&ctx2, req, &resp), "Register");
  EXPECT_EQ(s, absl::FailedPreconditionError("Register: worker actor-7 loaded a different model"));
  server->server->Shutdown();
}

TEST(RpcTest, PortInUseIsAClearError) {
  ScriptedCoordinator service;
  auto first = StartGrpcServer("127.0.0.1:0", {&service}, TransportSecurity::Plaintext());
  ASSERT_TRUE(first.ok());
  const std::string address = "127.0.0.1:" + std::to_string(first->port);
  ScriptedCoordinator other;
  auto second = StartGrpcServer(address, {&other}, TransportSecurity::Plaintext());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status(), absl::UnavailableError("cannot serve gRPC on " + address +
                                                    ": the address is in use or not local"));
  first->server->Shutdown();
}

TEST(RpcTest, UnreachableEndpointIsAClearError) {
  const testing::ClosedPort closed;  // refuses connections
  const std::string address = closed.address();
  auto channel = Connect(address, "coordinator", absl::Milliseconds(300),
                         TransportSecurity::Plaintext(), Role::kCoordinator);
  EXPECT_EQ(channel.status(),
            absl::UnavailableError("coordinator at " + address +
                                   " is unreachable (no connection within 300ms)"));
  EXPECT_THAT(std::string(Connect("nowhere", "coordinator", absl::Seconds(1),
                                  TransportSecurity::Plaintext(), Role::kCoordinator)
                              .status()
                              .message()),
              HasSubstr("coordinator: endpoint 'nowhere': missing ':port'"));
}

}  // namespace
}  // namespace bpo
