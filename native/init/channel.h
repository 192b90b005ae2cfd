// The channel is a SOCK_SEQPACKET socket shared with the supervisor: one JSON record per packet,
// file descriptors attached with SCM_RIGHTS.
#pragma once
#include <string>
#include <vector>

namespace channel {

bool send(int fd, const std::string& record, const std::vector<int>& fds = {});
// Receives one packet; returns the byte count (0 on EOF, -1 on error with errno set).
long recv(int fd, std::string* record);

}  // namespace channel
