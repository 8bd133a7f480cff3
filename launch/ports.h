// Loopback addresses for the children of one launch.
#ifndef BPO_LAUNCH_PORTS_H_
#define BPO_LAUNCH_PORTS_H_

namespace bpo::launch {

// A loopback TCP port that is free now (it could be bound) and outside the
// kernel's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range): below it
// when there is room, else above it, so that no outgoing connection of an
// earlier child can take it before the child told to listen on it starts.
// Random, from a generator seeded with the pid; 0 when 200 tries found none.
// Not thread-safe.
int PickLoopbackPort();

}  // namespace bpo::launch

#endif  // BPO_LAUNCH_PORTS_H_
