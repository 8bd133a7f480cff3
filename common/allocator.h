// glibc malloc tuned for tensor workloads. By default glibc serves blocks
// above a (dynamic, at most 32 MiB) threshold with fresh mmap()s and returns
// freed memory to the kernel, so every training step pays page faults and
// page clearing for its activations again (measured: a learner step on the
// ~20M benchmark model 4.2 s -> 2.8 s with this). Blocks up to 2 GiB then come
// from the heap and freed memory is kept for reuse; the price is that a
// process keeps its peak heap. Call once at the start of main().
#ifndef BPO_COMMON_ALLOCATOR_H_
#define BPO_COMMON_ALLOCATOR_H_

namespace bpo {

// Returns false if glibc refused a setting (the defaults then stay).
bool TuneAllocatorForTensors();

}  // namespace bpo

#endif  // BPO_COMMON_ALLOCATOR_H_
