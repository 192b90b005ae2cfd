#pragma once
#include <cstdint>
#include <vector>

#include "plan.h"

namespace net {

// A new network namespace starts with lo down.
bool loopbackUp();

// Creates the service sockets inside the namespace, already listening, so a client that connects
// before the supervisor serves them waits in the backlog instead of being refused.
bool listenServices(const std::vector<plan::Service>& services, std::vector<int>* fds);

// Connects to 127.0.0.1:port inside the namespace; returns the fd or -errno.
int connectInside(uint16_t port);

}  // namespace net
