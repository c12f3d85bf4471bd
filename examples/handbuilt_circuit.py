"""Path patching on the hand-built induction transformer: edge scores, their ROC AUC against the planted
circuit, a MIB circuit file and the interactive graph page.

Run: python examples/handbuilt_circuit.py [OUT]   (a few seconds on 2 CPU cores)
"""

import sys
from pathlib import Path

from mechscope import circuits, tasks, toy
from mechscope.circuits.path_patching import path_edge_scores

out = Path(sys.argv[1] if len(sys.argv) > 1 else "handbuilt-circuit")
model = toy.handbuilt_model()
truth = toy.handbuilt_circuit()
batch = tasks.make_task("induction").batch(model.tokenizer, 32)
receivers = [f"a1.h{h}<{p}>" for h in range(model.info.n_heads) for p in "qkv"] + ["logits"]
result = circuits.path_patching(model, batch.clean, batch.corrupted, circuits.task_metric(model, batch), receivers,
                                attention_mask=batch.attention_mask)
result.save(out / "path_patching")
scores = path_edge_scores(result, model)
print(f"clean {result.clean:.2f}, corrupted {result.corrupted:.2f}; {len(scores)} head edges scored")
print(f"ROC AUC against the planted head edges: {circuits.edge_roc_auc(scores, truth & set(scores)):.3f}")
for edge in circuits.edge_truth.top_k(scores, 4):
    print(f"  {edge:18s} {scores[edge]:+.3f}{'  (planted)' if edge in truth else ''}")
print(circuits.write_mib_circuit(out / "circuit.json", scores, truth, circuits.graph_config(model)))
print(circuits.write_graph_view(scores, out / "graph.html", truth, title="hand-built induction: path patching"))
