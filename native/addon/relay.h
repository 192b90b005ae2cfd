// Zero-copy byte relay between two connected stream sockets (an egress proxy's CONNECT tunnel
// once its policy checks are done). See relay.cc.
#pragma once

#include <napi.h>

namespace clawjail {

// relay(fdA, fdB, onDone, options?) → { cancel() }
//
// Duplicates fdA and fdB (the caller keeps and closes its own descriptors) and moves bytes both
// ways with splice() on the libuv loop until both directions have ended, then closes the
// duplicates and calls onDone({ bytesAtoB, bytesBtoA, error?, errorSide? }) exactly once.
// options.idleTimeoutMs (0 = none) ends a relay that moved no byte either way for that long.
Napi::Value Relay(const Napi::CallbackInfo& info);

}  // namespace clawjail
