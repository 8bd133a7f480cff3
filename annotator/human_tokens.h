// Who may sign in to the human-annotation page: the raters file, one line
//
//   name pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>
//
// per rater ('#' comments and blank lines are ignored). Every rater has their
// own random secret; the file keeps only its salted PBKDF2-HMAC-SHA256 hash,
// so reading the file reveals no secret. `bpo annotator add-rater` (AddRater)
// makes the secrets and writes the lines.
#ifndef BPO_ANNOTATOR_HUMAN_TOKENS_H_
#define BPO_ANNOTATOR_HUMAN_TOKENS_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace bpo::annotator {

// PBKDF2-HMAC-SHA256 rounds of new hashes (OWASP's 2023 figure; about 0.2 s
// of one core per sign-in), and the fewest a raters file may name.
inline constexpr int kSecretHashIterations = 600000;
inline constexpr int kSecretHashIterationsMin = 1000;

struct SecretHash {
  int iterations = 0;
  std::string salt;  // raw bytes, 16 in new hashes
  std::string hash;  // raw bytes, 32
};

// 32 bytes from OpenSSL's RAND_bytes as 64 hex digits. INTERNAL when the RNG fails.
absl::StatusOr<std::string> NewRaterSecret();

// Hashes `secret` under a fresh random salt.
absl::StatusOr<SecretHash> HashSecret(absl::string_view secret,
                                      int iterations = kSecretHashIterations);

// "pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>" and back. Parsing is
// INVALID_ARGUMENT for another scheme, fewer than kSecretHashIterationsMin
// rounds, bad hex or a hash that is not 32 bytes.
std::string FormatSecretHash(const SecretHash& hash);
absl::StatusOr<SecretHash> ParseSecretHash(absl::string_view text);

// Hashes `secret` with `hash`'s salt and rounds and compares the results in
// constant time (CRYPTO_memcmp). Costs `hash.iterations` rounds whatever the input.
bool SecretMatches(absl::string_view secret, const SecretHash& hash);

// Reads a raters file. INVALID_ARGUMENT names file:line for a malformed
// line, an invalid name, a duplicate, or a plaintext `name token` line (the
// old format, refused: the message says how to issue a hashed secret);
// NOT_FOUND when the file cannot be read.
absl::StatusOr<std::map<std::string, SecretHash>> LoadRaters(const std::string& path);

// Adds `name` to the raters file at `path` (creating it with mode 0600) with
// a new secret and returns the secret, which is stored nowhere: the caller
// shows it once. ALREADY_EXISTS when the file names the rater; the errors of
// LoadRaters for a bad file. The file is locked (flock) while it is changed.
absl::StatusOr<std::string> AddRater(const std::string& path, const std::string& name,
                                     int iterations = kSecretHashIterations);

// True for 1-64 characters of [A-Za-z0-9._@-].
bool IsValidRaterName(absl::string_view name);

}  // namespace bpo::annotator

#endif  // BPO_ANNOTATOR_HUMAN_TOKENS_H_
