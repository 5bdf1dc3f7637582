"""Which tttv2 files one decode step of the serving engine touches, and where calls cross
from one tttv2 package into another (architecture issue 26's "files and crossings" count).

Drives ``LLMEngine.step`` as ``tttv2 generate`` and ``tttv2 bench`` do (SmolLM2-135M shape,
random bf16 weights, decode captured), traces one warm step with ``sys.setprofile`` and prints
JSON: ``files`` (tttv2 source file -> Python calls in it), ``crossings`` (caller -> callee
where the packages differ). Pass the folder of bench_model.py (to trace another checkout's
sources, put its packages' src folders first on PYTHONPATH).

    uv run python tools/bench/trace_decode_step.py tools/bench
"""

import json
import sys
import tempfile
from pathlib import Path

tools = Path(sys.argv[1])
sys.path.insert(0, str(tools))
import torch  # noqa: E402
from bench_composition import ours_engine  # noqa: E402
from bench_model import Ours, checkpoint  # noqa: E402

folder, _ = checkpoint("smollm2-135m", Path(tempfile.gettempdir()) / "tttv2-bench-checkpoints")
torch.set_num_threads(2)
with torch.inference_mode():
    ours = Ours(folder, torch.bfloat16, False, True)
    step = ours_engine(ours, [[1] * 16], [[2] * 8])
    step()
    step()

    def pkg(fn):
        if "/packages/tttv2-" in fn:
            return fn.split("/packages/")[1].split("/")[0]
        if "tttv2" in fn:
            return "tttv2?"
        return None

    files, crossings, calls = {}, [], 0

    def prof(frame, event, arg):
        global calls
        if event != "call":
            return
        fn = frame.f_code.co_filename
        p = pkg(fn)
        if p is None:
            return
        calls += 1
        short = fn.split("/src/")[-1]
        files[short] = files.get(short, 0) + 1
        back = frame.f_back
        while back is not None and pkg(back.f_code.co_filename) is None:
            back = back.f_back
        if back is not None:
            q = pkg(back.f_code.co_filename)
            if q != p:
                crossings.append(
                    f"{back.f_code.co_filename.split('/src/')[-1]}:{back.f_code.co_name} -> {short}:{frame.f_code.co_name}"
                )

    sys.setprofile(prof)
    step()
    sys.setprofile(None)
print(
    json.dumps({"files": files, "python_calls_in_tttv2": calls, "crossings": crossings}, indent=1)
)
