"""Step 1 (project venv): build the four tiny QA models and cases of tests/test_span_qa.py
(harness/qa_cases.py) and the answers of harness/qa_reference.py (which the served answers
equal) into OUT/ours.json."""

import json
import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"
from pathlib import Path

from transformers import AutoModelForQuestionAnswering, AutoTokenizer

from harness import qa_models
from harness.minilm import minilm_source
from harness.qa_cases import ARCHITECTURES, cases, expected

OUT = Path(sys.argv[1])
root = OUT / "src"
out = {}
for index, name in enumerate(ARCHITECTURES):
    folder = qa_models.build(name, root / name, minilm_source(), seed=index)
    model = AutoModelForQuestionAnswering.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    out[name] = {
        "folder": str(folder),
        "cases": [
            {"case": c.__dict__, "answers": expected(model, tok, c)} for c in cases(seed=len(name))
        ],
    }
(OUT / "ours.json").write_text(json.dumps(out))
print({k: len(v["cases"]) for k, v in out.items()})
