"""Attention-pattern views: every head's pattern on one text, in one self-contained HTML page (no CDN)."""

from __future__ import annotations

import html
import json
from pathlib import Path

import torch

from mechscope.circuits.patching import token_strings
from mechscope.data.atomic import atomic_file
from mechscope.models import HookedModel

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>attention patterns</title><style>
body{{font:13px system-ui,sans-serif;margin:16px}} table{{border-collapse:collapse}}
td{{width:16px;height:16px;padding:0;border:1px solid #eee}} th{{font-weight:normal;font-size:11px;padding:0 4px}}
th.k{{writing-mode:vertical-rl;text-align:left}}</style></head><body>
<h2>{title}</h2><label>layer <select id="layer"></select></label> <label>head <select id="head"></select></label>
<p>rows: query positions; columns: the key positions they attend to (darker = more attention)</p>
<div id="grid"></div><script>
const data = {data};
const layer = document.getElementById('layer'), head = document.getElementById('head');
data.patterns.forEach((_, i) => layer.add(new Option(i, i)));
data.patterns[0].forEach((_, i) => head.add(new Option(i, i)));
function draw() {{
  const p = data.patterns[layer.value][head.value], t = document.createElement('table'), top = t.insertRow();
  top.appendChild(document.createElement('th'));
  data.tokens.forEach(tok => {{ const th = document.createElement('th'); th.className = 'k'; th.textContent = tok; top.appendChild(th); }});
  p.forEach((row, q) => {{ const tr = t.insertRow(), th = document.createElement('th'); th.textContent = data.tokens[q];
    tr.appendChild(th);
    row.forEach((v, k) => {{ const td = tr.insertCell(), c = Math.round(255 * (1 - v));
      td.style.background = `rgb(${{c}},${{c}},255)`; td.title = `${{data.tokens[q]}} -> ${{data.tokens[k]}}: ${{v.toFixed(3)}}`; }}); }});
  const grid = document.getElementById('grid'); grid.replaceChildren(t);
}}
layer.onchange = head.onchange = draw; draw();
</script></body></html>"""


def write_pattern_view(model: HookedModel, text: str | torch.Tensor, out: str | Path) -> Path:
    """`out`/attention.html: the attention pattern of every layer and head on `text` (or token ids [1, pos])."""
    tokens = model.to_tokens(text)
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.n_layers)]
    _, cache = model.run_with_cache(tokens, names)
    patterns = torch.stack([cache[name][0].float() for name in names])  # [layer, head, query, key]
    data = {"tokens": token_strings(model, tokens[0]), "patterns": patterns.round(decimals=4).tolist()}
    page = _PAGE.format(title=html.escape(f"{model.info.name}: {text[:80] if isinstance(text, str) else 'token ids'}"),
                        data=json.dumps(data).replace("</", "<\\/"))
    path = Path(out) / "attention.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as handle:
        handle.write(page.encode())
    return path
