// YAML -> RunConfig through protobuf reflection: the schema is the proto.
#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/config_internal.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/yaml.h"

namespace bpo::config_internal {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

SourcePosition ToPosition(const YAML::Mark& mark) {
  return SourcePosition{mark.line + 1, mark.column + 1};
}

std::string EnumChoices(const EnumDescriptor* e) {
  std::vector<std::string> names;
  for (int i = 0; i < e->value_count(); ++i) {
    names.push_back(absl::AsciiStrToLower(e->value(i)->name()));
  }
  return absl::StrJoin(names, ", ");
}

std::string Expected(const FieldDescriptor* field) {
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
      return "an integer";
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64:
      return "a non-negative integer";
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT:
      return "a number";
    case FieldDescriptor::CPPTYPE_BOOL:
      return "true or false";
    case FieldDescriptor::CPPTYPE_ENUM:
      return absl::StrCat("one of ", EnumChoices(field->enum_type()));
    case FieldDescriptor::CPPTYPE_STRING:
      return "a string";
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return "a mapping of keys";
  }
  return "a value";
}

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar:
      if (node.Tag() == "!") return absl::StrCat("the quoted string \"", node.Scalar(), "\"");
      return absl::StrCat("'", node.Scalar(), "'");
    case YAML::NodeType::Undefined:
      break;
  }
  return "an undefined value";
}

class Parser {
 public:
  Parser(std::map<std::string, SourcePosition>* positions, ErrorList* errors)
      : positions_(positions), errors_(errors) {}

  void ParseMessage(const YAML::Node& node, const std::string& path, Message* msg) {
    if (!node.IsMap()) {
      errors_->AddAt(ToPosition(node.Mark()), path.empty() ? "<top level>" : path,
                     absl::StrCat("expected a mapping of keys, got ", Describe(node)));
      return;
    }
    const Descriptor* desc = msg->GetDescriptor();
    std::map<std::string, int> seen;  // key -> line
    for (auto it = node.begin(); it != node.end(); ++it) {
      // Copies: yaml-cpp's iterator hands out a temporary pair.
      const YAML::Node key = it->first;
      const YAML::Node value = it->second;
      const SourcePosition key_pos = ToPosition(key.Mark());
      if (!key.IsScalar()) {
        errors_->AddAt(key_pos, path.empty() ? "<top level>" : path, "keys must be plain names");
        continue;
      }
      const std::string& name = key.Scalar();
      const std::string field_path = path.empty() ? name : absl::StrCat(path, ".", name);
      if (auto [where, inserted] = seen.emplace(name, key_pos.line); !inserted) {
        errors_->AddAt(key_pos, field_path,
                       absl::StrCat("duplicate key (first written at line ", where->second, ")"));
        continue;
      }
      const FieldDescriptor* field = desc->FindFieldByName(name);
      if (field == nullptr) {
        errors_->AddAt(key_pos, field_path, UnknownKeyReason(name, desc));
        continue;
      }
      (*positions_)[field_path] = key_pos;
      ParseField(value, field_path, field, msg);
    }
  }

 private:
  static std::string UnknownKeyReason(const std::string& name, const Descriptor* desc) {
    std::vector<std::string> known;
    for (int i = 0; i < desc->field_count(); ++i) known.push_back(desc->field(i)->name());
    const std::string closest = ClosestName(name, known);
    if (!closest.empty()) {
      return absl::StrCat("unknown key '", name, "' (did you mean '", closest, "'?)");
    }
    return absl::StrCat("unknown key '", name, "' (known keys: ", absl::StrJoin(known, ", "), ")");
  }

  void ParseField(const YAML::Node& value, const std::string& path, const FieldDescriptor* field,
                  Message* msg) {
    const Reflection* refl = msg->GetReflection();
    if (field->is_repeated()) {
      if (!value.IsSequence()) {
        errors_->AddAt(ToPosition(value.Mark()), path,
                       absl::StrCat("expected a list, got ", Describe(value)));
        return;
      }
      refl->ClearField(msg, field);
      for (size_t i = 0; i < value.size(); ++i) {
        const std::string item_path = absl::StrCat(path, "[", i, "]");
        (*positions_)[item_path] = ToPosition(value[i].Mark());
        ParseScalar(value[i], item_path, field, msg);
      }
      return;
    }
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      ParseMessage(value, path, refl->MutableMessage(msg, field));
      return;
    }
    ParseScalar(value, path, field, msg);
  }

  // Sets (or appends, for repeated fields) one scalar value.
  void ParseScalar(const YAML::Node& node, const std::string& path, const FieldDescriptor* field,
                   Message* msg) {
    const SourcePosition pos = ToPosition(node.Mark());
    auto fail = [&] {
      errors_->AddAt(pos, path,
                     absl::StrCat("expected ", Expected(field), ", got ", Describe(node)));
    };
    if (!node.IsScalar()) return fail();
    const bool quoted = node.Tag() == "!";
    const std::string& text = node.Scalar();
    const Reflection* refl = msg->GetReflection();
    const bool rep = field->is_repeated();
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        rep ? refl->AddString(msg, field, text) : refl->SetString(msg, field, text);
        return;
      case FieldDescriptor::CPPTYPE_INT32: {
        int32_t v;
        if (quoted || !absl::SimpleAtoi(text, &v)) return fail();
        rep ? refl->AddInt32(msg, field, v) : refl->SetInt32(msg, field, v);
        return;
      }
      case FieldDescriptor::CPPTYPE_INT64: {
        int64_t v;
        if (quoted || !absl::SimpleAtoi(text, &v)) return fail();
        rep ? refl->AddInt64(msg, field, v) : refl->SetInt64(msg, field, v);
        return;
      }
      case FieldDescriptor::CPPTYPE_UINT32: {
        uint32_t v;
        if (quoted || text.rfind('-', 0) == 0 || !absl::SimpleAtoi(text, &v)) return fail();
        rep ? refl->AddUInt32(msg, field, v) : refl->SetUInt32(msg, field, v);
        return;
      }
      case FieldDescriptor::CPPTYPE_UINT64: {
        uint64_t v;
        if (quoted || text.rfind('-', 0) == 0 || !absl::SimpleAtoi(text, &v)) return fail();
        rep ? refl->AddUInt64(msg, field, v) : refl->SetUInt64(msg, field, v);
        return;
      }
      case FieldDescriptor::CPPTYPE_DOUBLE:
      case FieldDescriptor::CPPTYPE_FLOAT: {
        double v;
        if (quoted || !absl::SimpleAtod(text, &v) || !std::isfinite(v)) return fail();
        if (field->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT) {
          rep ? refl->AddFloat(msg, field, static_cast<float>(v))
              : refl->SetFloat(msg, field, static_cast<float>(v));
        } else {
          rep ? refl->AddDouble(msg, field, v) : refl->SetDouble(msg, field, v);
        }
        return;
      }
      case FieldDescriptor::CPPTYPE_BOOL: {
        if (quoted || (text != "true" && text != "false")) return fail();
        rep ? refl->AddBool(msg, field, text == "true") : refl->SetBool(msg, field, text == "true");
        return;
      }
      case FieldDescriptor::CPPTYPE_ENUM: {
        const auto* value = field->enum_type()->FindValueByName(absl::AsciiStrToUpper(text));
        if (value == nullptr) return fail();
        rep ? refl->AddEnum(msg, field, value) : refl->SetEnum(msg, field, value);
        return;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        return fail();
    }
  }

  std::map<std::string, SourcePosition>* positions_;
  ErrorList* errors_;
};

// Counts the documents of a YAML text and remembers where the second one's
// content starts. yaml-cpp 0.7's LoadAll never returns on some malformed
// input (a top-level line starting with ',' makes the parser report empty
// documents forever without consuming it, and LoadAll keeps allocating one
// node each): reading documents one at a time and stopping at the second
// bounds the work.
class DocumentCounter : public YAML::EventHandler {
 public:
  int count() const { return count_; }
  const YAML::Mark& second_mark() const { return second_; }

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++count_ == 2) second_ = mark;
    seen_node_ = false;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { Node(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { Node(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    Node(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Node(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Node(mark);
  }
  void OnMapEnd() override {}

 private:
  // The second document is reported where its first node is.
  void Node(const YAML::Mark& mark) {
    if (count_ == 2 && !seen_node_) second_ = mark;
    seen_node_ = true;
  }

  int count_ = 0;
  bool seen_node_ = false;
  YAML::Mark second_;
};

}  // namespace

std::string ClosestName(absl::string_view name, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = 3;
  for (const std::string& c : candidates) {
    // Levenshtein distance, two rows.
    std::vector<size_t> prev(c.size() + 1), cur(c.size() + 1);
    for (size_t j = 0; j <= c.size(); ++j) prev[j] = j;
    for (size_t i = 1; i <= name.size(); ++i) {
      cur[0] = i;
      for (size_t j = 1; j <= c.size(); ++j) {
        const size_t subst = prev[j - 1] + (name[i - 1] == c[j - 1] ? 0 : 1);
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
      }
      std::swap(prev, cur);
    }
    if (prev[c.size()] < best_distance) {
      best_distance = prev[c.size()];
      best = c;
    }
  }
  return best;
}

void ParseYaml(absl::string_view yaml, bpo::v1::RunConfig* config,
               std::map<std::string, SourcePosition>* positions, ErrorList* errors) {
  const std::string text(yaml);
  YAML::Node doc;
  try {
    std::istringstream in(text);
    YAML::Parser parser(in);
    DocumentCounter counter;
    while (counter.count() < 2 && parser.HandleNextDocument(counter)) {
    }
    if (counter.count() > 1) {
      errors->AddAt(ToPosition(counter.second_mark()), "<yaml>",
                    "expected one YAML document, found a second one");
      return;
    }
    doc = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    errors->AddAt(ToPosition(e.mark), "<yaml>", absl::StrCat("invalid YAML: ", e.msg));
    return;
  }
  if (doc.IsNull()) return;  // all defaults
  Parser(positions, errors).ParseMessage(doc, "", config);
}

}  // namespace bpo::config_internal
