#include "data/prompts.h"

#include <zlib.h>

#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"

namespace bpo::data {
namespace {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> ReadTextFile(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");  // reads plain files as they are
  if (f == nullptr) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::string out;
  char buf[1 << 16];
  while (true) {
    const int n = gzread(f, buf, sizeof(buf));
    if (n < 0) {
      int err = 0;
      std::string what = gzerror(f, &err);
      gzclose(f);
      return absl::DataLossError(absl::StrCat(path, ": cannot decompress: ", what));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  gzclose(f);
  return out;
}

absl::Status ForEachJsonlObject(
    const std::string& path, const std::function<absl::Status(int, const nlohmann::json&)>& row) {
  absl::StatusOr<std::string> text = ReadTextFile(path);
  if (!text.ok()) return text.status();
  const std::vector<std::string> lines = Lines(*text);
  for (int n = 1; n <= static_cast<int>(lines.size()); ++n) {
    const std::string& line = lines[n - 1];
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", n, ": not a JSON object"));
    }
    if (absl::Status s = row(n, j); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(path, ":", n, ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::vector<std::string>>> ReadJsonlStringFields(
    const std::string& path, const std::vector<std::string>& keys) {
  std::vector<std::vector<std::string>> out;
  BPO_RETURN_IF_ERROR(ForEachJsonlObject(path, [&](int, const nlohmann::json& j) -> absl::Status {
    std::vector<std::string> row;
    for (const std::string& key : keys) {
      auto it = j.find(key);
      if (it == j.end() || !it->is_string()) {
        return absl::InvalidArgumentError(absl::StrCat("missing string field \"", key, "\""));
      }
      row.push_back(it->get<std::string>());
    }
    out.push_back(std::move(row));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<bpo::v1::Prompt>> ReadJsonlPrompts(const std::string& path) {
  std::vector<bpo::v1::Prompt> out;
  absl::Status s = ForEachJsonlObject(path, [&](int n, const nlohmann::json& j) -> absl::Status {
    auto text = j.find("prompt");
    if (text == j.end() || !text->is_string() || text->get<std::string>().empty()) {
      return absl::InvalidArgumentError("needs a non-empty string \"prompt\"");
    }
    bpo::v1::Prompt p;
    p.set_text(text->get<std::string>());
    if (auto r = j.find("reference"); r != j.end()) {
      if (!r->is_string()) return absl::InvalidArgumentError("\"reference\" must be a string");
      p.set_reference(r->get<std::string>());
    }
    if (auto id = j.find("id"); id != j.end()) {
      // Prompt ids key the coordinator's store and the eval results: an
      // empty one, or one made of a dumped object, names nothing.
      if (id->is_string() && !id->get<std::string>().empty()) {
        p.set_prompt_id(id->get<std::string>());
      } else if (id->is_number()) {
        p.set_prompt_id(id->dump());
      } else {
        return absl::InvalidArgumentError("\"id\" must be a non-empty string or a number");
      }
    } else {
      p.set_prompt_id(absl::StrCat("line-", n));
    }
    out.push_back(std::move(p));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": has no prompts"));
  return out;
}

absl::StatusOr<std::vector<bpo::v1::Prompt>> ReadTldrCsv(const std::string& path) {
  absl::StatusOr<std::string> text = ReadTextFile(path);
  if (!text.ok()) return text.status();
  // RFC 4180: quoted fields may hold commas, newlines and doubled quotes.
  std::vector<std::vector<std::string>> rows;
  std::vector<int> row_lines;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, any = false;
  int line = 1, row_line = 1;
  const std::string& s = *text;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (quoted) {
      if (c == '"' && i + 1 < s.size() && s[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == '"') {
      quoted = true;
      any = true;
    } else if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
      any = true;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
      if (any || !field.empty()) {
        row.push_back(std::move(field));
        rows.push_back(std::move(row));
        row_lines.push_back(row_line);
      }
      row.clear();
      field.clear();
      any = false;
      row_line = ++line;
    } else {
      field += c;
      any = true;
    }
  }
  if (quoted) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ":", row_line, ": a quoted field is not closed before the end of the file"));
  }
  if (any || !field.empty()) {
    row.push_back(std::move(field));
    rows.push_back(std::move(row));
    row_lines.push_back(row_line);
  }
  if (rows.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": is empty"));
  std::map<std::string, size_t> column;
  for (size_t i = 0; i < rows[0].size(); ++i) column[rows[0][i]] = i;
  if (!column.count("query")) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":1: the header has no 'query' column (TL;DR CSV format)"));
  }
  const size_t q = column["query"];
  const bool has_ref = column.count("reference_responses") > 0;
  const size_t r = has_ref ? column["reference_responses"] : 0;
  std::vector<bpo::v1::Prompt> out;
  for (size_t i = 1; i < rows.size(); ++i) {
    if (rows[i].size() != rows[0].size()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", row_lines[i], ": ", rows[i].size(),
                                                     " fields, the header has ", rows[0].size()));
    }
    if (rows[i][q].empty()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", row_lines[i], ": empty query"));
    }
    bpo::v1::Prompt p;
    p.set_prompt_id(absl::StrCat("row-", i));
    p.set_text(rows[i][q]);
    if (has_ref) p.set_reference(rows[i][r]);
    out.push_back(std::move(p));
  }
  if (out.empty())
    return absl::InvalidArgumentError(absl::StrCat(path, ": has a header but no rows"));
  return out;
}

absl::StatusOr<std::pair<std::string, std::string>> SplitHhDialogue(const std::string& transcript) {
  static const std::string kHuman = "\n\nHuman:", kAssistant = "\n\nAssistant:";
  const size_t last = transcript.rfind(kAssistant);
  if (last == std::string::npos) {
    return absl::InvalidArgumentError("the transcript has no \"\\n\\nAssistant:\" turn");
  }
  // Turns in order, each "user: ..." or "assistant: ...", one a line.
  std::string prompt;
  size_t pos = 0;
  while (pos < last) {
    const size_t h = transcript.find(kHuman, pos), a = transcript.find(kAssistant, pos);
    const size_t start = std::min(h, a);
    if (start == std::string::npos || start >= last) break;
    const bool human = start == h;
    const size_t body = start + (human ? kHuman.size() : kAssistant.size());
    size_t next = std::min(transcript.find(kHuman, body), transcript.find(kAssistant, body));
    if (next == std::string::npos || next > last) next = last;
    std::string turn(absl::StripAsciiWhitespace(transcript.substr(body, next - body)));
    absl::StrAppend(&prompt, prompt.empty() ? "" : "\n", human ? "user: " : "assistant: ", turn);
    pos = next;
  }
  if (prompt.empty())
    return absl::InvalidArgumentError("the transcript has no turn before the last \"Assistant:\"");
  absl::StrAppend(&prompt, "\nassistant:");
  std::string reference(absl::StripAsciiWhitespace(transcript.substr(last + kAssistant.size())));
  return std::make_pair(prompt, " " + reference);
}

absl::StatusOr<std::vector<bpo::v1::Prompt>> ReadHarmlessJsonl(const std::string& path) {
  std::vector<bpo::v1::Prompt> out;
  absl::Status s = ForEachJsonlObject(path, [&](int n, const nlohmann::json& j) -> absl::Status {
    auto chosen = j.find("chosen");
    if (chosen == j.end() || !chosen->is_string()) {
      return absl::InvalidArgumentError("needs a string \"chosen\"");
    }
    auto split = SplitHhDialogue(chosen->get<std::string>());
    if (!split.ok()) return split.status();
    bpo::v1::Prompt p;
    p.set_prompt_id(absl::StrCat("line-", n));
    p.set_text(split->first);
    p.set_reference(split->second);
    out.push_back(std::move(p));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": has no dialogues"));
  return out;
}

absl::StatusOr<std::vector<bpo::v1::Prompt>> LoadPrompts(const bpo::v1::DataConfig& data) {
  if (data.prompts().empty()) {
    return absl::InvalidArgumentError("data.prompts names no prompt file");
  }
  switch (data.format()) {
    case bpo::v1::DataConfig::JSONL:
      return ReadJsonlPrompts(data.prompts());
    case bpo::v1::DataConfig::TLDR:
      return ReadTldrCsv(data.prompts());
    case bpo::v1::DataConfig::HARMLESS:
      return ReadHarmlessJsonl(data.prompts());
    default:
      return absl::UnimplementedError(
          absl::StrCat("data.format ", bpo::v1::DataConfig::Format_Name(data.format()),
                       " has no reader yet: use jsonl, tldr or harmless"));
  }
}

}  // namespace bpo::data
