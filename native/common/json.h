// A small strict JSON reader for the launch plan. The plan is produced by our own TypeScript, so
// anything unexpected (trailing bytes, duplicate keys, non-integer numbers where integers are
// required, deep nesting) is a rejection, never a guess.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace json {

enum class Type { Null, Bool, Number, String, Array, Object };

struct Value {
  Type type = Type::Null;
  bool boolean = false;
  double number = 0;
  bool isInteger = false;
  int64_t integer = 0;
  std::string string;
  std::vector<Value> array;
  std::map<std::string, Value> object;

  const Value* get(const std::string& key) const;
};

// Returns false and sets *error on malformed input.
bool parse(const std::string& text, Value* out, std::string* error);

// Writes a JSON string literal (with quotes) for s.
std::string quote(const std::string& s);

}  // namespace json
