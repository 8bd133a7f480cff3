// Rendezvous stores for the collectives: gloo's FileStore with bounded,
// millisecond waits, and a small TCP key-value store served by rank 0 (Debian's
// gloo 0.5 has no TCP store).
//
// TCP wire format, both directions: [u32 length][payload], little endian.
// Request payload: [u8 op][u32 key length][key][value]; reply: [u8 found][value].
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <map>
#include <system_error>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "collective/collective_internal.h"
#include "gloo/common/error.h"
#include "gloo/rendezvous/file_store.h"
#include "gloo/rendezvous/store.h"

namespace bpo::collective::internal {
namespace {

using Millis = std::chrono::milliseconds;

constexpr uint32_t kMaxFrameBytes = 64 << 20;
constexpr char kOpSet = 1, kOpGet = 2, kOpCheck = 3;

std::string ErrnoText(int err) { return std::generic_category().message(err); }

void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v |= static_cast<uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

std::string Frame(const std::string& payload) {
  std::string out;
  PutU32(out, static_cast<uint32_t>(payload.size()));
  return out + payload;
}

bool SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

// 0 on success, else errno (EAGAIN: the receive timeout passed; ECONNRESET: EOF).
int RecvAll(int fd, char* data, size_t size) {
  size_t got = 0;
  while (got < size) {
    const ssize_t n = recv(fd, data + got, size - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return ECONNRESET;
    got += static_cast<size_t>(n);
  }
  return 0;
}

void SetSocketTimeouts(int fd, Millis timeout) {
  timeval tv{};
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

[[noreturn]] void ThrowWaitTimeout(const std::vector<std::string>& keys, Millis timeout,
                                   absl::string_view where) {
  throw gloo::IoException(
      absl::StrCat("timed out after ", timeout.count(), " ms waiting for rendezvous key(s) ",
                   absl::StrJoin(keys, ", "), " in ", where, " (has every rank started?)"));
}

// Serves the key-value store from one thread polling every connection.
class TcpStoreServer {
 public:
  static absl::StatusOr<std::unique_ptr<TcpStoreServer>> Start(const RendezvousAddress& address) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    addrinfo* found = nullptr;
    const std::string where = absl::StrCat(address.host, ":", address.port);
    if (const int rc =
            getaddrinfo(address.host.c_str(), std::to_string(address.port).c_str(), &hints, &found);
        rc != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("rendezvous tcp:", where, ": cannot resolve: ", gai_strerror(rc)));
    }
    std::string error = "no address";
    int fd = -1;
    for (addrinfo* ai = found; ai != nullptr && fd < 0; ai = ai->ai_next) {
      fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
      if (fd < 0) continue;
      const int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0) {
        error = ErrnoText(errno);
        close(fd);
        fd = -1;
      }
    }
    freeaddrinfo(found);
    if (fd < 0) {
      return absl::UnavailableError(
          absl::StrCat("rank 0 cannot serve the rendezvous store on ", where, ": ", error));
    }
    const int wake_fd = eventfd(0, EFD_CLOEXEC);
    if (wake_fd < 0) {
      close(fd);
      return absl::InternalError(absl::StrCat("eventfd: ", ErrnoText(errno)));
    }
    return std::unique_ptr<TcpStoreServer>(new TcpStoreServer(fd, wake_fd));
  }

  ~TcpStoreServer() {
    const uint64_t one = 1;
    if (write(wake_fd_, &one, sizeof(one)) != sizeof(one)) {
      shutdown(listen_fd_, SHUT_RDWR);  // still wakes poll()
    }
    thread_.join();
    close(listen_fd_);
    close(wake_fd_);
  }

 private:
  TcpStoreServer(int listen_fd, int wake_fd)
      : listen_fd_(listen_fd), wake_fd_(wake_fd), thread_([this] { Serve(); }) {}

  void Serve() {
    std::map<int, std::string> conns;  // fd -> bytes received, not yet parsed
    while (true) {
      std::vector<pollfd> fds = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
      for (const auto& [fd, unused] : conns) fds.push_back({fd, POLLIN, 0});
      if (poll(fds.data(), fds.size(), -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (fds[1].revents != 0) break;
      if (fds[0].revents & POLLIN) {
        const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
          SetSocketTimeouts(fd, std::chrono::seconds(10));
          conns[fd];
        }
      }
      for (size_t i = 2; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        const int fd = fds[i].fd;
        char buffer[1 << 16];
        const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
        bool open = n > 0 || (n < 0 && (errno == EINTR || errno == EAGAIN));
        if (n > 0) {
          conns[fd].append(buffer, static_cast<size_t>(n));
          open = ServeFrames(fd, conns[fd]);
        }
        if (!open) {
          close(fd);
          conns.erase(fd);
        }
      }
    }
    for (const auto& [fd, unused] : conns) close(fd);
  }

  // Answers every complete request in `in`; false closes the connection.
  bool ServeFrames(int fd, std::string& in) {
    while (in.size() >= 4) {
      const uint32_t size = GetU32(in.data());
      if (size < 5 || size > kMaxFrameBytes) return false;
      if (in.size() < 4 + size) break;
      const std::string payload = in.substr(4, size);
      in.erase(0, 4 + size);
      const uint32_t key_size = GetU32(payload.data() + 1);
      if (key_size > payload.size() - 5) return false;
      const std::string key = payload.substr(5, key_size);
      std::string reply;
      switch (payload[0]) {
        case kOpSet:
          data_[key] = payload.substr(5 + key_size);
          reply = "\x01";
          break;
        case kOpGet: {
          const auto it = data_.find(key);
          reply = it == data_.end() ? std::string(1, '\0') : "\x01" + it->second;
          break;
        }
        case kOpCheck:
          reply = data_.count(key) ? "\x01" : std::string(1, '\0');
          break;
        default:
          return false;
      }
      if (!SendAll(fd, Frame(reply))) return false;
    }
    return true;
  }

  const int listen_fd_;
  const int wake_fd_;
  std::map<std::string, std::string> data_;  // touched only by thread_
  std::thread thread_;
};

// One connection to the TcpStoreServer. Throws gloo::IoException, as Gloo
// expects of a store.
class TcpStoreClient final : public gloo::rendezvous::Store {
 public:
  static absl::StatusOr<std::unique_ptr<TcpStoreClient>> Connect(const RendezvousAddress& address,
                                                                 Millis timeout) {
    const std::string where = absl::StrCat(address.host, ":", address.port);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string error = "timed out";
    while (true) {
      const int fd = TryConnect(address, deadline, &error);
      if (fd >= 0) {
        SetSocketTimeouts(fd, timeout);
        return std::unique_ptr<TcpStoreClient>(new TcpStoreClient(fd, timeout, where));
      }
      if (std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(Millis(50));
    }
    return absl::DeadlineExceededError(absl::StrCat("cannot reach the rendezvous store at ", where,
                                                    " (served by rank 0) within ", timeout.count(),
                                                    " ms: ", error));
  }

  ~TcpStoreClient() override { close(fd_); }

  void set(const std::string& key, const std::vector<char>& data) override {
    Request(kOpSet, key, std::string(data.begin(), data.end()));
  }

  std::vector<char> get(const std::string& key) override {
    wait({key});
    const std::string reply = Request(kOpGet, key, "");
    if (reply.empty() || reply[0] != 1) {
      throw gloo::IoException(absl::StrCat("rendezvous store ", where_, ": key vanished: ", key));
    }
    return std::vector<char>(reply.begin() + 1, reply.end());
  }

  void wait(const std::vector<std::string>& keys) override { wait(keys, timeout_); }

  void wait(const std::vector<std::string>& keys, const Millis& timeout) override {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (const std::string& key : keys) {
      while (Request(kOpCheck, key, "") != "\x01") {
        if (std::chrono::steady_clock::now() > deadline) ThrowWaitTimeout(keys, timeout, where_);
        std::this_thread::sleep_for(Millis(5));
      }
    }
  }

 private:
  TcpStoreClient(int fd, Millis timeout, std::string where)
      : fd_(fd), timeout_(timeout), where_(std::move(where)) {}

  // A connected blocking socket, or -1 with *error set.
  static int TryConnect(const RendezvousAddress& address,
                        std::chrono::steady_clock::time_point deadline, std::string* error) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (const int rc =
            getaddrinfo(address.host.c_str(), std::to_string(address.port).c_str(), &hints, &found);
        rc != 0) {
      *error = absl::StrCat("cannot resolve: ", gai_strerror(rc));
      return -1;
    }
    int connected = -1;
    for (addrinfo* ai = found; ai != nullptr && connected < 0; ai = ai->ai_next) {
      const int fd =
          socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
      if (fd < 0) continue;
      int err = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : errno;
      if (err == EINPROGRESS) {
        const auto left =
            std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
        pollfd p{fd, POLLOUT, 0};
        const int ready = poll(&p, 1, static_cast<int>(std::clamp<int64_t>(left.count(), 1, 1000)));
        socklen_t len = sizeof(err);
        err = ready > 0 ? 0 : ETIMEDOUT;
        if (ready > 0) getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      }
      if (err == 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) == 0) {
        connected = fd;
      } else {
        *error = ErrnoText(err);
        close(fd);
      }
    }
    freeaddrinfo(found);
    return connected;
  }

  std::string Request(char op, const std::string& key, const std::string& value) {
    std::string payload(1, op);
    PutU32(payload, static_cast<uint32_t>(key.size()));
    payload += key;
    payload += value;
    if (!SendAll(fd_, Frame(payload))) {
      throw gloo::IoException(
          absl::StrCat("rendezvous store ", where_, ": send: ", ErrnoText(errno)));
    }
    char header[4];
    int err = RecvAll(fd_, header, sizeof(header));
    std::string reply;
    if (err == 0) {
      reply.resize(GetU32(header));
      err = reply.size() > kMaxFrameBytes ? EPROTO : RecvAll(fd_, reply.data(), reply.size());
    }
    if (err == EAGAIN || err == EWOULDBLOCK) {
      throw gloo::IoException(absl::StrCat("rendezvous store ", where_, ": timed out after ",
                                           timeout_.count(), " ms waiting for a reply"));
    }
    if (err != 0) {
      throw gloo::IoException(absl::StrCat("rendezvous store ", where_, ": ", ErrnoText(err)));
    }
    return reply;
  }

  const int fd_;
  const Millis timeout_;
  const std::string where_;
};

// gloo's FileStore rounds its wait timeout down to whole seconds and get()
// waits 30 s; this one waits exactly `timeout` everywhere.
class BoundedFileStore final : public gloo::rendezvous::FileStore {
 public:
  BoundedFileStore(const std::string& path, Millis timeout) : FileStore(path), timeout_(timeout) {}

  void wait(const std::vector<std::string>& keys) override { wait(keys, timeout_); }

  void wait(const std::vector<std::string>& keys, const Millis& timeout) override {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!check(keys)) {
      if (std::chrono::steady_clock::now() > deadline) ThrowWaitTimeout(keys, timeout, basePath_);
      std::this_thread::sleep_for(Millis(10));
    }
  }

 private:
  const Millis timeout_;
};

// Keys under a prefix; every wait bounded by the run's timeout, whatever
// timeout Gloo asks for (it passes a fixed 30 s default in places).
class PrefixedStore final : public gloo::rendezvous::Store {
 public:
  PrefixedStore(std::string prefix, gloo::rendezvous::Store& base, Millis timeout)
      : prefix_(std::move(prefix)), base_(base), timeout_(timeout) {}

  void set(const std::string& key, const std::vector<char>& data) override {
    base_.set(prefix_ + key, data);
  }

  std::vector<char> get(const std::string& key) override {
    base_.wait({prefix_ + key}, timeout_);
    return base_.get(prefix_ + key);
  }

  void wait(const std::vector<std::string>& keys) override { wait(keys, timeout_); }

  void wait(const std::vector<std::string>& keys, const Millis& /*timeout*/) override {
    std::vector<std::string> full;
    for (const std::string& key : keys) full.push_back(prefix_ + key);
    base_.wait(full, timeout_);
  }

 private:
  const std::string prefix_;
  gloo::rendezvous::Store& base_;
  const Millis timeout_;
};

}  // namespace

absl::StatusOr<RendezvousAddress> ParseRendezvous(absl::string_view spec) {
  const auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rendezvous '", spec, "': ", why, " (expected file:/shared/dir or tcp:host:port)"));
  };
  RendezvousAddress address;
  if (absl::ConsumePrefix(&spec, "file:")) {
    if (spec.empty()) return invalid("empty directory");
    address.path = std::string(spec);
    return address;
  }
  if (!absl::ConsumePrefix(&spec, "tcp:")) return invalid("unknown scheme");
  address.kind = RendezvousAddress::Kind::kTcp;
  absl::string_view host, port;
  if (absl::StartsWith(spec, "[")) {
    const size_t close = spec.find("]:");
    if (close == absl::string_view::npos) return invalid("IPv6 host without ]:port");
    host = spec.substr(1, close - 1);
    port = spec.substr(close + 2);
  } else {
    const size_t colon = spec.rfind(':');
    if (colon == absl::string_view::npos) return invalid("no port");
    host = spec.substr(0, colon);
    port = spec.substr(colon + 1);
  }
  if (host.empty()) return invalid("empty host");
  if (!absl::SimpleAtoi(port, &address.port) || address.port < 1 || address.port > 65535) {
    return invalid("port must be in [1, 65535]");
  }
  address.host = std::string(host);
  return address;
}

const std::string& HostName() {
  static const std::string* const kName = [] {
    char name[256] = {};
    if (gethostname(name, sizeof(name) - 1) != 0) return new std::string("unknown-host");
    return new std::string(name);
  }();
  return *kName;
}

std::string Where(int rank, int world_size) {
  return absl::StrCat("rank ", rank, "/", world_size, " on ", HostName());
}

absl::Status StatusFromException(const std::exception& e, absl::string_view what, int rank,
                                 int world_size) {
  const std::string message = e.what();
  const std::string lower = absl::AsciiStrToLower(message);
  absl::StatusCode code = absl::StatusCode::kInternal;
  std::string hint;
  if (absl::StrContains(lower, "timed out") || absl::StrContains(lower, "timeout")) {
    code = absl::StatusCode::kDeadlineExceeded;
  } else if (absl::StrContains(lower, "file already exists")) {
    code = absl::StatusCode::kAlreadyExists;
    hint = " (a run with this run_id already used this rendezvous directory)";
  } else if (dynamic_cast<const gloo::IoException*>(&e) != nullptr) {
    code = absl::StatusCode::kUnavailable;
  }
  return absl::Status(
      code, absl::StrCat(Where(rank, world_size), ": ", what, " failed: ", message, hint));
}

struct RendezvousStore::State {
  Millis timeout{0};
  std::string prefix;
  std::unique_ptr<TcpStoreServer> server;  // rank 0 of tcp: only
  std::unique_ptr<gloo::rendezvous::Store> base;
  std::map<std::string, std::unique_ptr<PrefixedStore>> namespaces;
};

RendezvousStore::RendezvousStore(std::unique_ptr<State> state) : state_(std::move(state)) {}

// The clients close before the server stops.
RendezvousStore::~RendezvousStore() {
  state_->namespaces.clear();
  state_->base.reset();
  state_->server.reset();
}

absl::StatusOr<std::shared_ptr<RendezvousStore>> RendezvousStore::Open(
    const CollectiveOptions& options) {
  absl::StatusOr<RendezvousAddress> address = ParseRendezvous(options.rendezvous);
  if (!address.ok()) return address.status();
  auto state = std::make_unique<State>();
  state->timeout = std::max(Millis(1), absl::ToChronoMilliseconds(options.timeout));
  state->prefix = (options.run_id.empty() ? std::string("default") : options.run_id) + "/";
  const std::string where = Where(options.rank, options.world_size);
  if (address->kind == RendezvousAddress::Kind::kFile) {
    std::error_code error;
    std::filesystem::create_directories(address->path, error);
    if (error) {
      return absl::FailedPreconditionError(absl::StrCat(
          where, ": cannot create rendezvous directory ", address->path, ": ", error.message()));
    }
    try {
      state->base = std::make_unique<BoundedFileStore>(address->path, state->timeout);
    } catch (const std::exception& e) {
      return StatusFromException(e, "opening the file store", options.rank, options.world_size);
    }
  } else {
    if (options.rank == 0) {
      absl::StatusOr<std::unique_ptr<TcpStoreServer>> server = TcpStoreServer::Start(*address);
      if (!server.ok()) return server.status();
      state->server = *std::move(server);
    }
    absl::StatusOr<std::unique_ptr<TcpStoreClient>> client =
        TcpStoreClient::Connect(*address, state->timeout);
    if (!client.ok()) {
      return absl::Status(client.status().code(),
                          absl::StrCat(where, ": ", client.status().message()));
    }
    state->base = *std::move(client);
  }
  return std::shared_ptr<RendezvousStore>(new RendezvousStore(std::move(state)));
}

gloo::rendezvous::Store& RendezvousStore::Namespace(const std::string& name) {
  std::unique_ptr<PrefixedStore>& store = state_->namespaces[name];
  if (store == nullptr) {
    store = std::make_unique<PrefixedStore>(state_->prefix + name + "/", *state_->base,
                                            state_->timeout);
  }
  return *store;
}

absl::Status RendezvousStore::Set(const std::string& key, const std::string& value) {
  try {
    Namespace("kv").set(key, std::vector<char>(value.begin(), value.end()));
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("rendezvous store: set ", key, ": ", e.what()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> RendezvousStore::Get(const std::string& key) {
  try {
    const std::vector<char> value = Namespace("kv").get(key);
    return std::string(value.begin(), value.end());
  } catch (const std::exception& e) {
    const bool timeout = absl::StrContains(absl::AsciiStrToLower(e.what()), "timed out");
    return absl::Status(
        timeout ? absl::StatusCode::kDeadlineExceeded : absl::StatusCode::kUnavailable,
        absl::StrCat("rendezvous store: get ", key, ": ", e.what()));
  }
}

}  // namespace bpo::collective::internal
