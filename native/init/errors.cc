#include "errors.h"

#include "../common/json.h"

namespace errors {
namespace {
Failure g_failure;
bool g_failed = false;
}  // namespace

bool fail(const char* step, int err, const std::string& path, const std::string& detail) {
  if (!g_failed) {
    g_failed = true;
    g_failure = Failure{step, err, path, detail};
  }
  return false;
}

const Failure& last() { return g_failure; }

std::string toJson(const Failure& f) {
  return "{\"t\":\"error\",\"step\":" + json::quote(f.step) + ",\"errno\":" + std::to_string(f.err) +
         ",\"path\":" + json::quote(f.path) + ",\"detail\":" + json::quote(f.detail) + "}";
}

}  // namespace errors
