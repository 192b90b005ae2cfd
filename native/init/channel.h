// The channel is a SOCK_SEQPACKET socket shared with the supervisor: one JSON record per packet,
// file descriptors attached with SCM_RIGHTS.
#pragma once
#include <string>
#include <vector>

namespace channel {

bool send(int fd, const std::string& record, const std::vector<int>& fds = {});
// Receives one packet; returns the byte count (0 on EOF, -1 on error with errno set).
long recv(int fd, std::string* record);

// A "connect to port P" request from the supervisor: {"t":"connect","id":N,"port":P}. False for
// any other record (ignored: the supervisor sends nothing else).
bool parseConnect(const std::string& record, long long* id, int* port);
// The answer: the connected fd attached, or the errno of the failed connect (fd < 0 is -errno).
void replyConnected(int channelFd, long long id, int fd);

}  // namespace channel
