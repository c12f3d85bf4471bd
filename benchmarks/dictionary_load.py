"""Time `load_dictionary` on a Gemma Scope-sized SAE: JumpReLU, d_in 2304 (Gemma 2 2B), 131,072 latents, 2.25 GiB.

Writes the file once into --work (SAELens layout), then loads it --repeats times in fresh processes and prints
each load's seconds and peak RSS above the process's start (which counts the file's mapped pages).
    PYTHONPATH=src python benchmarks/dictionary_load.py --work /tmp/dictionary-load
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from mechscope.dictionaries import Dictionary, DictionaryConfig
from mechscope.dictionaries.formats import load_dictionary, save_dictionary
from process_memory import GIB_IN_MIB, status_mib


def _load(path: str) -> None:
    start = status_mib("VmRSS")
    began = time.perf_counter()
    load_dictionary(path)
    print(json.dumps({"seconds": round(time.perf_counter() - began, 2),
                      "peak_above_start_gib": round((status_mib("VmHWM") - start) / GIB_IN_MIB, 2)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/dictionary-load")
    parser.add_argument("--d-in", type=int, default=2304)
    parser.add_argument("--d-sae", type=int, default=131_072)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--load", help=argparse.SUPPRESS)  # the child process: load this path and report
    args = parser.parse_args()
    if args.load:
        return _load(args.load)
    path = Path(args.work) / f"jumprelu_{args.d_sae}"
    if not path.exists():
        save_dictionary(Dictionary(DictionaryConfig(args.d_in, args.d_sae, "jumprelu")), path, "saelens")
    for _ in range(args.repeats):
        subprocess.run([sys.executable, __file__, "--load", str(path)], check=True)


if __name__ == "__main__":
    main()
