#!/usr/bin/env python3
"""Hugging Face `generate` on the model that build/bin/generate_benchmark
writes (default /tmp/bpo-bench-llama20m), with the same settings: greedy,
64-token prompts, exactly 128 new tokens, batch 1 and 16, KV cache on.
Prints the median tokens/s of 3 runs. Developers only (needs the venv of
tests/fixtures/requirements.txt); run it in the same session as the C++
benchmark so both see the same machine load:

    build/bin/generate_benchmark --benchmark_filter=DecodeKvCache
    /tmp/bpo-fixture-venv/bin/python tools/bench_hf_generate.py
"""
import os
import statistics
import sys
import time

import torch
from transformers import LlamaForCausalLM

def main():
    path = os.environ.get("BPO_BENCH_DIR", "/tmp/bpo-bench-llama20m")
    threads = int(os.environ.get("BENCH_THREADS", torch.get_num_threads()))
    torch.set_num_threads(threads)
    model = LlamaForCausalLM.from_pretrained(path, torch_dtype=torch.float32,
                                             attn_implementation="eager").eval()
    print(f"torch {torch.__version__}, {threads} threads, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params", flush=True)
    for batch in (1, 16):
        g = torch.Generator().manual_seed(1)
        ids = torch.randint(3, 32000, (batch, 64), generator=g)
        mask = torch.ones_like(ids)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            with torch.no_grad():
                out = model.generate(ids, attention_mask=mask, do_sample=False,
                                     max_new_tokens=128, min_new_tokens=128,
                                     eos_token_id=None, pad_token_id=0, use_cache=True)
            times.append(time.perf_counter() - t0)
            assert out.shape == (batch, 64 + 128), out.shape
        med = statistics.median(times)
        print(f"hf_generate batch {batch}: median {med * 1e3:.0f} ms, "
              f"{batch * 128 / med:.1f} tokens/s", flush=True)

if __name__ == "__main__":
    sys.exit(main())
