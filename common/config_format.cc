// RunConfig -> YAML: the effective config, every field in schema order.
#include <cmath>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/config.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace bpo {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += ch;
    }
  }
  return out + "\"";
}

// Shortest text that parses back to exactly v.
std::string FormatDouble(double v) {
  char buf[32];
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string s = buf;
  // Keep it a YAML float, not an int: 512 -> 512.0.
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

std::string ScalarText(const Message& msg, const FieldDescriptor* f, int index) {
  const auto* r = msg.GetReflection();
  const bool rep = index >= 0;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return absl::StrCat(rep ? r->GetRepeatedInt32(msg, f, index) : r->GetInt32(msg, f));
    case FieldDescriptor::CPPTYPE_INT64:
      return absl::StrCat(rep ? r->GetRepeatedInt64(msg, f, index) : r->GetInt64(msg, f));
    case FieldDescriptor::CPPTYPE_UINT32:
      return absl::StrCat(rep ? r->GetRepeatedUInt32(msg, f, index) : r->GetUInt32(msg, f));
    case FieldDescriptor::CPPTYPE_UINT64:
      return absl::StrCat(rep ? r->GetRepeatedUInt64(msg, f, index) : r->GetUInt64(msg, f));
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return FormatDouble(rep ? r->GetRepeatedDouble(msg, f, index) : r->GetDouble(msg, f));
    case FieldDescriptor::CPPTYPE_FLOAT:
      return FormatDouble(rep ? r->GetRepeatedFloat(msg, f, index) : r->GetFloat(msg, f));
    case FieldDescriptor::CPPTYPE_BOOL:
      return (rep ? r->GetRepeatedBool(msg, f, index) : r->GetBool(msg, f)) ? "true" : "false";
    case FieldDescriptor::CPPTYPE_ENUM:
      return absl::AsciiStrToLower(
          (rep ? r->GetRepeatedEnum(msg, f, index) : r->GetEnum(msg, f))->name());
    case FieldDescriptor::CPPTYPE_STRING:
      return Quote(rep ? r->GetRepeatedString(msg, f, index) : r->GetString(msg, f));
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  return "";
}

void Emit(const Message& msg, int indent, std::string* out) {
  const auto* desc = msg.GetDescriptor();
  const auto* r = msg.GetReflection();
  const std::string pad(indent, ' ');
  for (int i = 0; i < desc->field_count(); ++i) {
    const FieldDescriptor* f = desc->field(i);
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !f->is_repeated()) {
      absl::StrAppend(out, pad, f->name(), ":\n");
      Emit(r->GetMessage(msg, f), indent + 2, out);
    } else if (f->is_repeated()) {
      std::vector<std::string> items;
      for (int j = 0; j < r->FieldSize(msg, f); ++j) items.push_back(ScalarText(msg, f, j));
      absl::StrAppend(out, pad, f->name(), ": [", absl::StrJoin(items, ", "), "]\n");
    } else {
      absl::StrAppend(out, pad, f->name(), ": ", ScalarText(msg, f, -1), "\n");
    }
  }
}

}  // namespace

std::string FormatRunConfigYaml(const bpo::v1::RunConfig& config) {
  std::string out;
  Emit(config, 0, &out);
  return out;
}

}  // namespace bpo
