"""Loads a model with vLLM and prints the greedy tokens it generates for tiny_model.PROMPTS:
``python vllm_run.py MODEL LOAD_FORMAT [EXTRA_CONFIG_JSON]``. A process of its own per load, as
vLLM runs (its engine and the worker that loads the weights are child processes of it); the
last line of stdout is ``TOKENS <json>``."""

from __future__ import annotations

import json
import sys
from typing import Any

from tiny_model import PROMPTS


def generate(model: str, load_format: str, extra_config: dict[str, Any] | None) -> list[list[int]]:
    from vllm import LLM, SamplingParams

    options: dict[str, Any] = {}
    if extra_config is not None:  # vLLM's safetensors loader breaks on an explicit None
        options["model_loader_extra_config"] = extra_config
    llm = LLM(
        model=model,
        load_format=load_format,
        skip_tokenizer_init=True,
        enforce_eager=True,
        dtype="float32",
        max_model_len=64,
        max_num_seqs=4,
        kv_cache_memory_bytes=64 << 20,  # vLLM would take most of the machine's memory
        seed=0,
        **options,
    )
    greedy = SamplingParams(temperature=0, max_tokens=8, detokenize=False)
    outputs = llm.generate(
        [{"prompt_token_ids": prompt} for prompt in PROMPTS], greedy, use_tqdm=False
    )
    return [list(output.outputs[0].token_ids) for output in outputs]


def main() -> None:
    model, load_format = sys.argv[1], sys.argv[2]
    extra = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
    print("TOKENS " + json.dumps(generate(model, load_format, extra)), flush=True)


if __name__ == "__main__":  # vLLM starts its engine with multiprocessing's spawn
    main()
