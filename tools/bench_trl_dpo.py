#!/usr/bin/env python3
"""The peer for `tools/bench_learner_ranks.sh`: TRL's DPOTrainer (0.28, pinned in
tests/fixtures/requirements.txt) on the same ~20M benchmark model and the same
64 real TL;DR pairs, with the same settings as `bpo learner` E=1, one rank:
LoRA rank 8 / alpha 16 / dropout 0.1 on all linear layers, batch 8, lr 5e-5,
beta 0.1, prompts cut to 64 tokens and responses to 128, reference = the
model with the adapter disabled. Prints the median wall time of steps 2..4.
Developers only:

    /tmp/bpo-fixture-venv/bin/python tools/bench_trl_dpo.py
"""
import csv
import os
import statistics
import sys
import time

import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import LlamaForCausalLM, LlamaTokenizer, TrainerCallback
from trl import DPOConfig, DPOTrainer


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times, self.t0 = [], None

    def on_step_begin(self, args, state, control, **kwargs):
        self.t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self.t0)


def main():
    path = os.environ.get("BPO_BENCH_DIR", "/tmp/bpo-bench-llama20m")
    torch.manual_seed(0)
    rows = list(csv.DictReader(open("../shared/data/tldr/oai1b.csv")))[:64]
    data = Dataset.from_list([{"prompt": r["query"], "chosen": r["reference_responses"],
                               "rejected": r["postprocessed_response"]} for r in rows])
    tok = LlamaTokenizer(os.path.join(path, "tokenizer.model"), legacy=False)
    tok.pad_token = tok.unk_token
    model = LlamaForCausalLM.from_pretrained(path, torch_dtype=torch.float32,
                                             attn_implementation="eager")
    args = DPOConfig(output_dir="/tmp/bpo-trl-bench", per_device_train_batch_size=8,
                     max_steps=4, learning_rate=5e-5, beta=0.1, loss_type="sigmoid",
                     max_prompt_length=64, max_completion_length=128, max_length=192,
                     logging_steps=1, report_to=[], use_cpu=True, save_strategy="no",
                     lr_scheduler_type="linear", warmup_steps=0, adam_epsilon=1e-6,
                     max_grad_norm=1.0, dataloader_num_workers=0, seed=0)
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.1, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                      "up_proj", "down_proj"])
    timer = StepTimer()
    trainer = DPOTrainer(model=model, ref_model=None, args=args, train_dataset=data,
                         processing_class=tok, peft_config=lora, callbacks=[timer])
    trainer.train()
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads): TRL DPOTrainer "
          f"median step {statistics.median(timer.times[1:]):.2f} s for 8 pairs "
          f"(steps: {', '.join(f'{t:.2f}' for t in timer.times)})")


if __name__ == "__main__":
    sys.exit(main())
