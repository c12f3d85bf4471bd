"""Settings of the circuit verbs, one dataclass each; the CLI's flags are generated from them."""

from __future__ import annotations

from dataclasses import dataclass

from mechscope.circuits.components import COMPONENTS
from mechscope.errors import MechscopeError

METHODS = ("activation", "attribution")


@dataclass(frozen=True)
class TaskSelection:
    """Which prompts a circuit verb runs on."""

    task: str = "ioi"  # a task name (ioi, induction, greater-than, factual, refusal) or a .jsonl file of pairs
    prompts: int = 32  # clean/corrupted pairs to generate
    split: str = "test"  # train or test prompts of the task
    seed: int = 0  # the task generator's seed
    same_shape: bool = True  # keep the largest group of pairs with one length and answer position


@dataclass(frozen=True)
class PatchConfig(TaskSelection):
    component: str = "resid"  # resid, resid-post, attn, attn-by-pos, mlp, mlp-by-pos, heads, heads-by-pos, q/k/v-input, pattern
    method: str = "activation"  # activation (exact) or attribution (gradient estimate)
    metric: str = "logit_diff"  # logit_diff, prob_diff or kl_to_clean
    noising: bool = False  # patch corrupted activations into the clean run instead of the reverse
    max_rows: int = 64  # prompt copies per forward pass: the memory bound

    def __post_init__(self):
        if self.component not in COMPONENTS:
            raise MechscopeError(f"component must be one of {', '.join(COMPONENTS)}, got {self.component!r}")
        if self.method not in METHODS:
            raise MechscopeError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.max_rows < 1:
            raise MechscopeError(f"max_rows must be >= 1, got {self.max_rows}")


@dataclass(frozen=True)
class PathPatchConfig(TaskSelection):
    receivers: tuple[str, ...] = ("logits",)  # MIB names: a{l}.h{h}<q|k|v>, a{l}.h{h} (all three), m{l}, logits
    senders: tuple[str, ...] = ()  # heads a{l}.h{h} whose paths are patched; empty: every head
    metric: str = "logit_diff"  # logit_diff, prob_diff or kl_to_clean
    freeze_mlps: bool = False  # direct paths only: MLPs keep their clean outputs too
    max_rows: int = 64  # prompt copies per forward pass: the memory bound

    def __post_init__(self):
        if not self.receivers:
            raise MechscopeError("path patching needs at least one receiver, e.g. logits or a1.h2<k>")
        if self.max_rows < 1:
            raise MechscopeError(f"max_rows must be >= 1, got {self.max_rows}")


@dataclass(frozen=True)
class HeadsConfig:
    prompts: int = 8  # sequences of repeated random tokens
    length: int = 25  # random tokens per copy; each prompt is BOS + the segment twice
    seed: int = 0  # seed of the random tokens
    exclude_bos: bool = False  # ignore attention to the first token (TransformerLens's option)
    exclude_current_token: bool = False  # ignore attention to the query's own position


@dataclass(frozen=True)
class EdgeCircuitConfig(TaskSelection):
    method: str = "eap-ig"  # eap, eap-ig (EAP-IG-inputs), eap-ig-activations, clean-corrupted or acdc
    level: str = "edge"  # edge, node (heads, MLPs, the embedding) or neuron (MLP neurons); not acdc below edge
    tau: float = 0.01  # acdc: remove an edge when its removal worsens the objective by less than this
    taus: tuple[float, ...] = ()  # acdc: also run these thresholds; each edge scores the largest that keeps it
    steps: int = 5  # integrated-gradient steps (eap-ig, eap-ig-activations)
    edges: int = 200  # edges in the saved circuit
    nodes: int = 10  # node and neuron levels: heads/MLPs (or neurons) in the saved circuit
    selection: str = "topn"  # topn (highest |score|) or greedy (grown from the logits); both prune dangling nodes
    ablation: str = "patching"  # what edges outside a circuit carry: patching (corrupted run), zero or mean
    metric: str = "logit_diff"  # logit_diff, prob_diff or kl_to_clean
    memory_gb: float = 4.0  # prompts per pass are chosen so a pass's estimated memory fits; acdc stacks candidates to it
    source_chunk: int = 0  # memory mode: hold at most this many sources' outputs at once (0: all; passes repeat)
    max_rows: int = 64  # prompt copies per forward pass when evaluating circuits

    def __post_init__(self):
        from mechscope.circuits.edge_attribution import LEVELS
        from mechscope.circuits.edge_runs import CIRCUIT_METHODS
        from mechscope.circuits.edge_patching import ABLATIONS
        from mechscope.circuits.edge_selection import SELECTIONS

        for name, value, allowed in (("method", self.method, CIRCUIT_METHODS), ("selection", self.selection, SELECTIONS),
                                     ("ablation", self.ablation, ABLATIONS), ("level", self.level, LEVELS)):
            if value not in allowed:
                raise MechscopeError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        if self.level != "edge" and self.method == "acdc":
            raise MechscopeError(f"acdc prunes edges; the {self.level} level takes eap, eap-ig, eap-ig-activations "
                                 "or clean-corrupted")
        if min((self.tau, *self.taus)) <= 0:
            raise MechscopeError(f"acdc thresholds tau and taus must be > 0, got tau={self.tau}, taus={self.taus}")
        if min(self.steps, self.edges, self.nodes, self.max_rows) < 1 or self.memory_gb <= 0 or self.source_chunk < 0:
            raise MechscopeError(f"steps, edges, nodes and max_rows must be >= 1, memory_gb > 0 and source_chunk >= 0; "
                                 f"got steps={self.steps}, edges={self.edges}, nodes={self.nodes}, "
                                 f"max_rows={self.max_rows}, memory_gb={self.memory_gb}, "
                                 f"source_chunk={self.source_chunk}")
