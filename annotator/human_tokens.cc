#include "annotator/human_tokens.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace bpo::annotator {
namespace {

constexpr absl::string_view kScheme = "pbkdf2-sha256";
constexpr int kSaltBytes = 16;
constexpr int kHashBytes = 32;
constexpr int kSecretBytes = 32;
constexpr int kIterationsMax = 100000000;

absl::StatusOr<std::string> RandomBytes(int n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), n) != 1) {
    return absl::InternalError("OpenSSL RAND_bytes failed");
  }
  return out;
}

bool IsHex(absl::string_view text) {
  if (text.empty() || text.size() % 2 != 0) return false;
  for (char c : text) {
    if (!absl::ascii_isxdigit(c)) return false;
  }
  return true;
}

std::string Pbkdf2(absl::string_view secret, absl::string_view salt, int iterations) {
  std::string out(kHashBytes, '\0');
  // Fails only for out-of-range arguments, which ParseSecretHash excludes;
  // the all-zero output then matches nothing a caller can compute.
  (void)PKCS5_PBKDF2_HMAC(secret.data(), static_cast<int>(secret.size()),
                          reinterpret_cast<const unsigned char*>(salt.data()),
                          static_cast<int>(salt.size()), iterations, EVP_sha256(), kHashBytes,
                          reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

absl::Status ErrnoError(const std::string& what, const std::string& path) {
  const int error = errno;
  return absl::Status(absl::ErrnoToStatusCode(error),
                      absl::StrCat("raters file '", path, "': ", what, ": ", std::strerror(error)));
}

// The raters named in `text`, read from `path` (for messages); an empty
// file is an error unless `allow_empty`.
absl::StatusOr<std::map<std::string, SecretHash>> ParseRaters(absl::string_view text,
                                                              const std::string& path,
                                                              bool allow_empty) {
  std::map<std::string, SecretHash> raters;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> words =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    const std::string where = absl::StrCat(path, ":", number, ": ");
    if (words.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "expected 'name pbkdf2-sha256$...', got ", words.size(), " fields"));
    }
    const std::string name(words[0]);
    if (!IsValidRaterName(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "rater name '", name, "' must be 1-64 characters of [A-Za-z0-9._@-]"));
    }
    if (!absl::StrContains(words[1], '$')) {
      // The old format; the token itself is not repeated in the message.
      return absl::InvalidArgumentError(absl::StrCat(
          where, "rater '", name,
          "' has a plaintext token; raters files now hold only hashed secrets: delete the line "
          "and run `bpo annotator add-rater --raters ",
          path, " ", name, "` to issue a new secret"));
    }
    absl::StatusOr<SecretHash> hash = ParseSecretHash(words[1]);
    if (!hash.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "rater '", name, "': ", hash.status().message()));
    }
    if (!raters.emplace(name, *std::move(hash)).second) {
      return absl::InvalidArgumentError(absl::StrCat(where, "rater '", name, "' appears twice"));
    }
  }
  if (raters.empty() && !allow_empty) {
    return absl::InvalidArgumentError(absl::StrCat(
        "raters file '", path, "' names no rater (add one with `bpo annotator add-rater`)"));
  }
  return raters;
}

absl::StatusOr<std::string> ReadAll(int fd, const std::string& path) {
  std::string text;
  char buf[8192];
  for (ssize_t n; (n = pread(fd, buf, sizeof(buf), static_cast<off_t>(text.size()))) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("cannot read", path);
    }
    text.append(buf, n);
  }
  return text;
}

}  // namespace

bool IsValidRaterName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-' && c != '@') return false;
  }
  return true;
}

absl::StatusOr<std::string> NewRaterSecret() {
  absl::StatusOr<std::string> bytes = RandomBytes(kSecretBytes);
  if (!bytes.ok()) return bytes.status();
  return absl::BytesToHexString(*bytes);
}

absl::StatusOr<SecretHash> HashSecret(absl::string_view secret, int iterations) {
  if (iterations < kSecretHashIterationsMin || iterations > kIterationsMax) {
    return absl::InvalidArgumentError(absl::StrCat("PBKDF2 iterations ", iterations, " is not in [",
                                                   kSecretHashIterationsMin, ", ", kIterationsMax,
                                                   "]"));
  }
  absl::StatusOr<std::string> salt = RandomBytes(kSaltBytes);
  if (!salt.ok()) return salt.status();
  SecretHash out;
  out.iterations = iterations;
  out.salt = *std::move(salt);
  out.hash = Pbkdf2(secret, out.salt, iterations);
  return out;
}

std::string FormatSecretHash(const SecretHash& hash) {
  return absl::StrCat(kScheme, "$", hash.iterations, "$", absl::BytesToHexString(hash.salt), "$",
                      absl::BytesToHexString(hash.hash));
}

absl::StatusOr<SecretHash> ParseSecretHash(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, '$');
  if (parts.size() != 4 || parts[0] != kScheme) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a hash 'pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>'"));
  }
  SecretHash out;
  if (!absl::SimpleAtoi(parts[1], &out.iterations) || out.iterations < kSecretHashIterationsMin ||
      out.iterations > kIterationsMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("PBKDF2 iterations '", parts[1], "' is not a number in [",
                     kSecretHashIterationsMin, ", ", kIterationsMax, "]"));
  }
  if (!IsHex(parts[2]) || !IsHex(parts[3]) || parts[3].size() != 2 * kHashBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the salt must be hex and the hash ", 2 * kHashBytes, " hex digits"));
  }
  out.salt = absl::HexStringToBytes(parts[2]);
  out.hash = absl::HexStringToBytes(parts[3]);
  return out;
}

bool SecretMatches(absl::string_view secret, const SecretHash& hash) {
  const std::string computed = Pbkdf2(secret, hash.salt, hash.iterations);
  return hash.hash.size() == computed.size() &&
         CRYPTO_memcmp(computed.data(), hash.hash.data(), computed.size()) == 0;
}

absl::StatusOr<std::map<std::string, SecretHash>> LoadRaters(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(
        absl::StrCat("raters file '", path, "': cannot open: ", std::strerror(errno)));
  }
  absl::StatusOr<std::string> text = ReadAll(fd, path);
  close(fd);
  if (!text.ok()) return text.status();
  return ParseRaters(*text, path, /*allow_empty=*/false);
}

absl::StatusOr<std::string> AddRater(const std::string& path, const std::string& name,
                                     int iterations) {
  if (!IsValidRaterName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("rater name '", name, "' must be 1-64 characters of [A-Za-z0-9._@-]"));
  }
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError("cannot open or create", path);
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  if (flock(fd, LOCK_EX) != 0) return ErrnoError("cannot lock", path);
  absl::StatusOr<std::string> text = ReadAll(fd, path);
  if (!text.ok()) return text.status();
  absl::StatusOr<std::map<std::string, SecretHash>> raters =
      ParseRaters(*text, path, /*allow_empty=*/true);
  if (!raters.ok()) return raters.status();
  if (raters->count(name) > 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("raters file '", path, "' already names rater '", name,
                     "' (to issue a new secret, delete the line and add the rater again)"));
  }
  absl::StatusOr<std::string> secret = NewRaterSecret();
  if (!secret.ok()) return secret.status();
  absl::StatusOr<SecretHash> hash = HashSecret(*secret, iterations);
  if (!hash.ok()) return hash.status();
  std::string line;
  if (text->empty()) {
    line =
        "# bpo raters: name pbkdf2-sha256$<iterations>$<salt>$<hash>; add with `bpo annotator "
        "add-rater`\n";
  } else if (text->back() != '\n') {
    line = "\n";
  }
  absl::StrAppend(&line, name, " ", FormatSecretHash(*hash), "\n");
  for (size_t done = 0; done < line.size();) {
    const ssize_t n = write(fd, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ErrnoError("cannot write", path);
    done += n;
  }
  if (fsync(fd) != 0) return ErrnoError("cannot fsync", path);
  return *std::move(secret);
}

}  // namespace bpo::annotator
