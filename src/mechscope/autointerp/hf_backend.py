"""A local Hugging Face causal LM answering in process: chat template, HookedModel.generate, logprobs."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from mechscope.autointerp.completion import Completion, LLMError, Message, Request
from mechscope.devices import resolve_device
from mechscope.errors import UnsupportedModelError


def with_schema_instruction(messages: tuple[Message, ...], schema: dict) -> list[Message]:
    """The messages with the last user turn asking for JSON that matches `schema` (no constrained decoding here)."""
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    instruction = f"\n\nReply with only a JSON object that matches this JSON schema:\n{json.dumps(schema)}"
    return [{**m, "content": m["content"] + instruction} if i == last_user else m for i, m in enumerate(messages)]


class HFBackend:
    """A causal LM from a local directory (or hub name); free, so every call costs 0 USD."""

    def __init__(self, path: str, device: str = "auto", top_logprobs: int = 5):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from mechscope.models import wrap

        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            self.lm = AutoModelForCausalLM.from_pretrained(path).to(resolve_device(device)).eval()
            self.hooked = wrap(self.lm, tokenizer, name=path, check=False)  # generates under its own lock
        except (OSError, UnsupportedModelError) as err:
            raise LLMError(f"hf:{path} is not a causal LM directory or hub name this machine can load: {err}") from err
        self.tokenizer = self.hooked.tokenizer
        self.model = path
        self.top_logprobs = top_logprobs
        local = Path(path).expanduser()
        self.identity = {"protocol": "hf-generate", "model": str(local.resolve()) if local.exists() else path,
                         "top_logprobs": top_logprobs}

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
        messages = list(request.messages) if request.json_schema is None else \
            with_schema_instruction(request.messages, request.json_schema)
        ids = self.prompt_ids(messages)
        out = self.hooked.generate(ids, max_new_tokens=request.max_tokens, temperature=request.temperature,
                                   output_logits=request.logprobs)
        logprobs = None
        if request.logprobs:
            logprobs = []
            for logits in out.logits[0]:  # raw model logits per generated position
                top = torch.log_softmax(logits.float(), dim=-1).topk(self.top_logprobs)
                logprobs.append({self.tokenizer.decode([i]): v for i, v in zip(top.indices.tolist(),
                                                                              top.values.tolist())})
        return Completion(text=out.texts[0].strip(), logprobs=logprobs, input_tokens=ids.shape[1],
                          output_tokens=len(out.tokens[0]), cost_usd=0.0)
