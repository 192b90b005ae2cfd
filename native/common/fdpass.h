// One record with file descriptors attached (SCM_RIGHTS): the channel between the supervisor
// (addon) and clawjail-init speaks this in both directions.
#pragma once
#include <cstddef>
#include <sys/types.h>
#include <vector>

namespace fdpass {

// sendmsg() of data with fds attached, retried on EINTR; returns what sendmsg returned.
ssize_t send(int sock, const void* data, size_t len, const std::vector<int>& fds, int flags);

}  // namespace fdpass
