#!/usr/bin/env python3
"""Hugging Face `generate` on a model written by one of bpo's benchmarks, with
the same settings as theirs: greedy, 64-token prompts, exactly 128 new
tokens, KV cache on. Prints the median tokens/s of --reps runs per batch size
(and writes them as JSON with --json).

The attention is transformers' default for the model (sdpa on current
versions) unless --attn names another; the dtype and device are bpo's.

    # the CPU benchmark model of build/bin/generate_benchmark
    /tmp/bpo-fixture-venv/bin/python tools/bench_hf_generate.py --batches 1,16
    # the 1.1B random Llama of gpu_bench, on a GPU, in bf16 (scripts/gpu-check)
    python3 tools/bench_hf_generate.py --model /tmp/bpo-gpu-bench-llama-1b \
        --device cuda --dtype bfloat16 --batches 1,16,64 --json hf.json

Developers only: run it in the same session as the C++ benchmark so that
both see the same machine.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import transformers
from transformers import LlamaForCausalLM


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=os.environ.get("BPO_BENCH_DIR", "/tmp/bpo-bench-llama20m"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--batches", default="1,16")
    p.add_argument("--prompt", type=int, default=64)
    p.add_argument("--new", type=int, default=128)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--attn", default=None, help="attn_implementation (default: transformers')")
    p.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", "0")))
    p.add_argument("--json", default="")
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    dtype = torch.bfloat16 if a.dtype == "bfloat16" else torch.float32
    kwargs = {"dtype": dtype}
    if a.attn:
        kwargs["attn_implementation"] = a.attn
    model = LlamaForCausalLM.from_pretrained(a.model, **kwargs).to(a.device).eval()
    device = torch.device(a.device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    report = {
        "tool": "bench_hf_generate.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "attn_implementation": model.config._attn_implementation,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "dtype": a.dtype,
        "params": sum(t.numel() for t in model.parameters()),
        "prompt_tokens": a.prompt,
        "new_tokens": a.new,
        "reps": a.reps,
        "decode": [],
    }
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{report['attn_implementation']} attention, {a.dtype} on {report['device_name']}, "
          f"{report['params'] / 1e6:.1f}M params", flush=True)
    for batch in [int(b) for b in a.batches.split(",") if b]:
        g = torch.Generator().manual_seed(1)
        ids = torch.randint(3, model.config.vocab_size, (batch, a.prompt), generator=g).to(device)
        mask = torch.ones_like(ids)

        def run():
            with torch.no_grad():
                out = model.generate(ids, attention_mask=mask, do_sample=False,
                                     max_new_tokens=a.new, min_new_tokens=a.new,
                                     eos_token_id=None, pad_token_id=0, use_cache=True)
            sync()
            assert out.shape == (batch, a.prompt + a.new), out.shape

        run()  # warm-up
        times = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        report["decode"].append({"batch": batch, "seconds": med,
                                 "tokens_per_s": batch * a.new / med})
        print(f"hf_generate batch {batch}: median {med * 1e3:.0f} ms, "
              f"{batch * a.new / med:.1f} tokens/s", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
