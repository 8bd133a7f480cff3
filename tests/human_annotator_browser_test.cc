// The human-annotation page in a real browser: Debian's headless Chromium,
// driven over the DevTools protocol on a pipe (--remote-debugging-pipe),
// signs in, and labels every pair with real mouse clicks and key presses, so
// the page's own code posts each label. The labels must then be in the
// coordinator's store with provenance human:<rater> on the chosen side. The
// session must live only in an HttpOnly, SameSite=Strict, Secure cookie:
// Chromium keeps Secure cookies from http://127.0.0.1 (loopback counts as a
// secure context), so the test runs with the production default.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "annotator/human_service.h"
#include "annotator/human_tokens.h"
#include "coordinator/testing/in_process_coordinator.h"
#include "nlohmann/json.hpp"
#include "tests/testing/subprocess.h"

namespace bpo {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using coordinator::testing::InProcessCoordinator;
using ::testing::HasSubstr;

// One headless Chromium and one page, over the DevTools protocol: JSON
// messages separated by NUL bytes, written to the browser's fd 3 and read
// from its fd 4.
class Chromium {
 public:
  static absl::StatusOr<std::unique_ptr<Chromium>> Launch(const std::string& binary,
                                                          const fs::path& dir) {
    int to[2], from[2];
    if (pipe2(to, O_CLOEXEC) != 0 || pipe2(from, O_CLOEXEC) != 0) {
      return absl::InternalError("pipe2 failed");
    }
    const std::string profile = "--user-data-dir=" + (dir / "profile").string();
    const std::string log = (dir / "chromium.log").string();
    std::vector<std::string> args = {binary,
                                     "--headless=new",
                                     "--no-sandbox",
                                     "--disable-gpu",
                                     "--disable-dev-shm-usage",
                                     "--remote-debugging-pipe",
                                     profile,
                                     "--no-first-run",
                                     "--no-default-browser-check",
                                     "--disable-extensions",
                                     "--disable-background-networking",
                                     "--disable-component-update",
                                     "--disable-sync",
                                     "--window-size=1280,900",
                                     "about:blank"};
    const pid_t pid = fork();
    if (pid < 0) return absl::InternalError("fork failed");
    if (pid == 0) {
      // fds 3 and 4 may be the pipes themselves: move them out of the way first.
      const int in = fcntl(to[0], F_DUPFD, 10), out = fcntl(from[1], F_DUPFD, 10);
      dup2(in, 3);
      dup2(out, 4);
      const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(binary.c_str(), argv.data());
      _exit(127);
    }
    close(to[0]);
    close(from[1]);
    return std::unique_ptr<Chromium>(new Chromium(pid, to[1], from[0], log));
  }

  ~Chromium() {
    (void)Send("Browser.close", json::object(), "", absl::Seconds(5));
    close(to_);
    close(from_);
    for (int i = 0; i < 50 && waitpid(pid_, nullptr, WNOHANG) == 0; ++i)
      absl::SleepFor(absl::Milliseconds(100));
    if (kill(pid_, 0) == 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  // Sends one command and waits for its answer (events in between are kept
  // for diagnostics). The page's session unless `session` says otherwise.
  absl::StatusOr<json> Send(const std::string& method, json params, const char* session = nullptr,
                            absl::Duration timeout = absl::Seconds(20)) {
    const int id = next_id_++;
    json message{{"id", id}, {"method", method}, {"params", std::move(params)}};
    const std::string to_session = session != nullptr ? session : session_;
    if (!to_session.empty()) message["sessionId"] = to_session;
    const std::string text = message.dump() + '\0';
    for (size_t sent = 0; sent < text.size();) {
      const ssize_t n = write(to_, text.data() + sent, text.size() - sent);
      if (n <= 0)
        return absl::UnavailableError(absl::StrCat(method, ": the browser's pipe closed"));
      sent += n;
    }
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      for (size_t end; (end = buffer_.find('\0')) != std::string::npos;) {
        json reply = json::parse(buffer_.substr(0, end), nullptr, false);
        buffer_.erase(0, end + 1);
        if (reply.is_discarded()) continue;
        if (reply.contains("id") && reply["id"] == id) {
          if (reply.contains("error")) {
            return absl::InternalError(absl::StrCat(method, ": ", reply["error"].dump()));
          }
          return reply["result"];
        }
        const std::string event = reply.value("method", "");
        if (event == "Runtime.consoleAPICalled" || event == "Runtime.exceptionThrown") {
          events_.push_back(reply["params"].dump().substr(0, 400));
        }
      }
      const int left_ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
      pollfd p = {from_, POLLIN, 0};
      if (left_ms <= 0 || poll(&p, 1, left_ms) <= 0) {
        return absl::DeadlineExceededError(absl::StrCat(method, ": no answer from the browser"));
      }
      char buf[65536];
      const ssize_t n = read(from_, buf, sizeof(buf));
      if (n <= 0) return absl::UnavailableError(absl::StrCat(method, ": the browser exited"));
      buffer_.append(buf, n);
    }
  }

  // Opens `url` in a new page and attaches to it.
  absl::Status Open(const std::string& url) {
    auto target = Send("Target.createTarget", {{"url", url}}, "");
    if (!target.ok()) return target.status();
    auto attached =
        Send("Target.attachToTarget", {{"targetId", (*target)["targetId"]}, {"flatten", true}}, "");
    if (!attached.ok()) return attached.status();
    session_ = (*attached)["sessionId"];
    return Send("Runtime.enable", json::object()).status();
  }

  // Evaluates `expression` in the page and returns its value.
  absl::StatusOr<json> Eval(const std::string& expression) {
    auto out = Send("Runtime.evaluate",
                    {{"expression", expression}, {"returnByValue", true}, {"awaitPromise", true}});
    if (!out.ok()) return out.status();
    if (out->contains("exceptionDetails")) {
      return absl::InternalError(absl::StrCat(expression, ": ", (*out)["exceptionDetails"].dump()));
    }
    return (*out)["result"].value("value", json());
  }

  // Polls until `expression` is true.
  absl::Status WaitFor(const std::string& expression, absl::Duration timeout = absl::Seconds(20)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      auto value = Eval(expression);
      if (!value.ok()) return value.status();
      if (*value == true) return absl::OkStatus();
      absl::SleepFor(absl::Milliseconds(50));
    }
    return absl::DeadlineExceededError(
        absl::StrCat("timed out waiting for ", expression, "; ", Diagnostics()));
  }

  // A real left click in the middle of the element.
  absl::Status Click(const std::string& id) {
    auto center = Eval(absl::StrCat("(() => { const r = document.getElementById('", id,
                                    "').getBoundingClientRect(); return {x: r.x + r.width / 2, "
                                    "y: r.y + r.height / 2}; })()"));
    if (!center.ok()) return center.status();
    for (const char* type : {"mouseMoved", "mousePressed", "mouseReleased"}) {
      auto sent = Send("Input.dispatchMouseEvent", {{"type", type},
                                                    {"x", (*center)["x"]},
                                                    {"y", (*center)["y"]},
                                                    {"button", "left"},
                                                    {"clickCount", 1}});
      if (!sent.ok()) return sent.status();
    }
    return absl::OkStatus();
  }

  // Focuses the input and types `text` into it.
  absl::Status Type(const std::string& id, const std::string& text) {
    auto focused = Eval(absl::StrCat("document.getElementById('", id, "').focus(); true"));
    if (!focused.ok()) return focused.status();
    return Send("Input.insertText", {{"text", text}}).status();
  }

  // Presses and releases one key (`key` as in KeyboardEvent.key).
  absl::Status Press(const std::string& key, const std::string& code, int key_code,
                     const std::string& text) {
    json down{
        {"type", "keyDown"}, {"key", key}, {"code", code}, {"windowsVirtualKeyCode", key_code}};
    if (!text.empty()) down["text"] = text;
    auto sent = Send("Input.dispatchKeyEvent", down);
    if (!sent.ok()) return sent.status();
    return Send("Input.dispatchKeyEvent", {{"type", "keyUp"},
                                           {"key", key},
                                           {"code", code},
                                           {"windowsVirtualKeyCode", key_code}})
        .status();
  }

  std::string Diagnostics() const {
    return absl::StrCat("page console: [", absl::StrJoin(events_, "; "), "], browser log: ", log_);
  }

 private:
  Chromium(pid_t pid, int to, int from, std::string log)
      : pid_(pid), to_(to), from_(from), log_(std::move(log)) {}

  pid_t pid_;
  int to_;
  int from_;
  std::string log_;
  int next_id_ = 1;
  std::string buffer_;
  std::string session_;
  std::vector<std::string> events_;
};

TEST(HumanAnnotatorBrowserTest, ARaterSignsInAndLabelsEveryPairInChromium) {
  const std::string chromium = testing::FindProgram("chromium");
  ASSERT_FALSE(chromium.empty())
      << "chromium is not installed: run scripts/setup-deps (it installs Debian's chromium "
         "package, which this test drives headless)";
  const fs::path dir = fs::path(::testing::TempDir()) / "human_annotator_browser_test";
  fs::remove_all(dir);
  auto coordinator = InProcessCoordinator::Start((dir / "coordinator").string(),
                                                 coordinator::testing::SmallRunConfig());
  ASSERT_TRUE(coordinator.ok()) << coordinator.status();
  ASSERT_TRUE((*coordinator)->SamplePhase(0).ok());
  annotator::HumanOptions options;
  options.coordinator_address = (*coordinator)->address();
  options.transport = TransportSecurity::Plaintext();
  auto hash = annotator::HashSecret("carol-secret", annotator::kSecretHashIterationsMin);
  ASSERT_TRUE(hash.ok()) << hash.status();
  options.raters = {{"carol", *hash}};
  options.seed = 7;
  options.rpc_deadline = absl::Seconds(10);
  auto service = annotator::HumanAnnotationService::Start(options);
  ASSERT_TRUE(service.ok()) << service.status();

  auto browser = Chromium::Launch(chromium, dir);
  ASSERT_TRUE(browser.ok()) << browser.status();
  Chromium& page = **browser;
  ASSERT_TRUE(page.Open(absl::StrCat("http://127.0.0.1:", (*service)->port(), "/")).ok())
      << page.Diagnostics();
  ASSERT_TRUE(page.WaitFor("document.body && document.body.dataset.state === 'login'").ok());

  // A wrong secret is refused on the page; the right one signs in.
  ASSERT_TRUE(page.Type("rater", "carol").ok());
  ASSERT_TRUE(page.Type("secret", "not-the-secret").ok());
  ASSERT_TRUE(page.Click("signin").ok());
  ASSERT_TRUE(page.WaitFor("document.getElementById('login-error').textContent !== ''").ok());
  EXPECT_EQ(*page.Eval("document.getElementById('login-error').textContent"),
            "unknown rater or wrong secret");
  ASSERT_TRUE(page.Eval("document.getElementById('secret').value = ''; true").ok());
  ASSERT_TRUE(page.Type("secret", "carol-secret").ok());
  ASSERT_TRUE(page.Click("signin").ok());
  absl::Status rating = page.WaitFor("document.body.dataset.state === 'rating'");
  ASSERT_TRUE(rating.ok()) << rating;

  // The session is in the cookie only: the page's script cannot read it,
  // and neither the URL nor the page's storage holds it.
  const std::string origin = absl::StrCat("http://127.0.0.1:", (*service)->port());
  auto cookies = page.Send("Network.getCookies", {{"urls", {origin + "/"}}});
  ASSERT_TRUE(cookies.ok()) << cookies.status();
  ASSERT_EQ((*cookies)["cookies"].size(), 1u) << cookies->dump();
  const json cookie = (*cookies)["cookies"][0];
  EXPECT_EQ(cookie["name"], "bpo_session");
  EXPECT_EQ(cookie["value"].get<std::string>().size(), 64u);
  EXPECT_EQ(cookie["httpOnly"], true);
  EXPECT_EQ(cookie["secure"], true);
  EXPECT_EQ(cookie["sameSite"], "Strict");
  EXPECT_EQ(*page.Eval("document.cookie"), "");
  EXPECT_EQ(*page.Eval("location.href"), origin + "/");
  EXPECT_EQ(*page.Eval("sessionStorage.length + localStorage.length"), 0);

  // A reload keeps the rater signed in, on the same pair.
  const json before = *page.Eval("document.body.dataset.pair");
  ASSERT_TRUE(page.Eval("window.beforeReload = true").ok());
  ASSERT_TRUE(page.Send("Page.reload", json::object()).ok());
  bool reloaded = false;
  for (const absl::Time deadline = absl::Now() + absl::Seconds(20);
       !reloaded && absl::Now() < deadline; absl::SleepFor(absl::Milliseconds(50))) {
    // Evaluation fails while the old document goes away: try again.
    auto done = page.Eval(
        "!window.beforeReload && document.body && document.body.dataset.state === 'rating' && "
        "document.getElementById('who').textContent === 'carol'");
    reloaded = done.ok() && *done == true;
  }
  ASSERT_TRUE(reloaded) << page.Diagnostics();
  EXPECT_EQ(*page.Eval("document.body.dataset.pair"), before);

  // Four pairs: a click on "left", the key 2 (right), the left arrow, a
  // click on "right".
  std::map<std::string, bpo::v1::Choice> expected;
  for (int i = 0; i < 4; ++i) {
    auto shown = page.Eval(
        "({pair: document.body.dataset.pair, prompt: document.getElementById('prompt').textContent,"
        " left: document.getElementById('left-text').textContent,"
        " right: document.getElementById('right-text').textContent})");
    ASSERT_TRUE(shown.ok()) << shown.status();
    const std::string id = (*shown)["pair"];
    EXPECT_THAT((*shown)["prompt"].get<std::string>(), HasSubstr("prompt number"));
    const bool left_is_a = (*shown)["left"] == InProcessCoordinator::TextA(id);
    EXPECT_EQ((*shown)[left_is_a ? "right" : "left"], InProcessCoordinator::TextB(id));
    const bool left = i % 2 == 0;
    expected[id] = left == left_is_a ? bpo::v1::CHOICE_A : bpo::v1::CHOICE_B;
    absl::Status done;
    switch (i) {
      case 0:
        done = page.Click("btn-left");
        break;
      case 1:
        done = page.Press("2", "Digit2", 50, "2");
        break;
      case 2:
        done = page.Press("ArrowLeft", "ArrowLeft", 37, "");
        break;
      default:
        done = page.Click("btn-right");
        break;
    }
    ASSERT_TRUE(done.ok()) << done;
    absl::Status next = page.WaitFor(absl::StrCat(
        "document.body.dataset.labelled === '", i + 1, "' && document.body.dataset.pair !== '", id,
        "' || document.body.dataset.state === 'waiting'"));
    ASSERT_TRUE(next.ok()) << next;
  }
  ASSERT_TRUE(page.WaitFor("document.body.dataset.state === 'waiting'").ok());
  EXPECT_EQ(*page.Eval("document.body.dataset.labelled"), "4");
  EXPECT_THAT(page.Eval("document.getElementById('message').textContent")->get<std::string>(),
              HasSubstr("Nothing to label"));
  browser->reset();

  std::map<std::string, bpo::v1::Label> labels;
  for (int64_t step = 0; step < 2; ++step) {
    auto batch = (*coordinator)->FetchAndCommit(step);
    ASSERT_TRUE(batch.ok()) << batch.status();
    for (const auto& p : batch->pairs()) labels[p.pair().pair_id()] = p.label();
  }
  ASSERT_EQ(labels.size(), 4u);
  for (const auto& [id, label] : labels) {
    EXPECT_EQ(label.provenance(), "human:carol") << id;
    EXPECT_EQ(label.choice(), expected.at(id)) << id;
    EXPECT_GT(label.time_taken().seconds() * 1000000000LL + label.time_taken().nanos(), 0) << id;
  }
}

}  // namespace
}  // namespace bpo
