// Setup failures travel to the supervisor as one record {step, errno, path, detail}. Steps are
// stable ids ("mount.pivot_root", "landlock.restrict_self", …) that the TypeScript side maps to
// error codes and hints; nothing parses the detail text.
#pragma once
#include <string>

namespace errors {

struct Failure {
  std::string step;
  int err = 0;
  std::string path;
  std::string detail;
};

// Records the failure (first one wins) and returns false, so callers can `return errors::fail(...)`.
bool fail(const char* step, int err, const std::string& path = "", const std::string& detail = "");
const Failure& last();

// The record as JSON, for the channel.
std::string toJson(const Failure& f);

}  // namespace errors
