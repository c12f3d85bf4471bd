"""A local Hugging Face causal LM answering in process: chat template, greedy or sampled generate, logprobs."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import torch

from mechscope.autointerp.completion import Completion, LLMError, Message, Request
from mechscope.devices import resolve_device


def with_schema_instruction(messages: tuple[Message, ...], schema: dict) -> list[Message]:
    """The messages with the last user turn asking for JSON that matches `schema` (no constrained decoding here)."""
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    instruction = f"\n\nReply with only a JSON object that matches this JSON schema:\n{json.dumps(schema)}"
    return [{**m, "content": m["content"] + instruction} if i == last_user else m for i, m in enumerate(messages)]


class HFBackend:
    """A causal LM from a local directory (or hub name); free, so every call costs 0 USD."""

    def __init__(self, path: str, device: str = "auto", top_logprobs: int = 5):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.lm = AutoModelForCausalLM.from_pretrained(path).to(resolve_device(device)).eval()
        except OSError as err:
            raise LLMError(f"hf:{path} is not a causal LM directory or hub name this machine can load: {err}") from err
        self.model = path
        self.top_logprobs = top_logprobs
        local = Path(path).expanduser()
        self.identity = {"protocol": "hf-generate", "model": str(local.resolve()) if local.exists() else path,
                         "top_logprobs": top_logprobs}
        self._lock = threading.Lock()  # one generate at a time: the model is shared

    def __repr__(self) -> str:
        return f"HFBackend(model={self.model!r})"

    def prompt_ids(self, messages: list[Message]) -> torch.Tensor:  # [1, pos]
        """Token ids of the prompt: the tokenizer's chat template where it has one, else "role: content" turns."""
        if self.tokenizer.chat_template:
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
        else:
            text = "\n\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\n\nassistant:"
            ids = self.tokenizer(text, return_tensors="pt").input_ids
        return ids.to(self.lm.device)

    def generate(self, request: Request, timeout_s: float) -> Completion:
        """One answer; `timeout_s` does not apply in process."""
        from transformers import GenerationConfig

        messages = list(request.messages) if request.json_schema is None else \
            with_schema_instruction(request.messages, request.json_schema)
        ids = self.prompt_ids(messages)
        sample = request.temperature > 0
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        config = GenerationConfig(max_new_tokens=request.max_tokens, do_sample=sample,
                                  temperature=request.temperature if sample else None, top_p=None, top_k=None,
                                  eos_token_id=self.lm.generation_config.eos_token_id,
                                  pad_token_id=pad,
                                  output_logits=request.logprobs, return_dict_in_generate=True)
        with self._lock, torch.no_grad():
            out = self.lm.generate(ids, attention_mask=torch.ones_like(ids), generation_config=config)
        new = out.sequences[0, ids.shape[1]:]
        logprobs = None
        if request.logprobs:
            logprobs = []
            for logits in out.logits:  # raw model logits per generated position
                top = torch.log_softmax(logits[0].float(), dim=-1).topk(self.top_logprobs)
                logprobs.append({self.tokenizer.decode([i]): v for i, v in zip(top.indices.tolist(),
                                                                              top.values.tolist())})
        return Completion(text=self.tokenizer.decode(new, skip_special_tokens=True).strip(), logprobs=logprobs,
                          input_tokens=ids.shape[1], output_tokens=len(new), cost_usd=0.0)
