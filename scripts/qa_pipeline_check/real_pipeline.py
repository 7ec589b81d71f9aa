"""Step 2 (a venv with transformers 4.57.6, the last release with the question-answering
pipeline): run the real pipeline on the same models and cases and compare."""

import json
import math
import sys

import transformers
from transformers import AutoModelForQuestionAnswering, AutoTokenizer, pipeline

OUT, MAX_LENGTH = sys.argv[1], int(sys.argv[2])
with open(f"{OUT}/ours.json") as handle:
    ours = json.load(handle)
bad = total = 0
for name, entry in ours.items():
    model = AutoModelForQuestionAnswering.from_pretrained(entry["folder"]).eval()
    tok = AutoTokenizer.from_pretrained(entry["folder"])
    qa = pipeline("question-answering", model=model, tokenizer=tok, device="cpu")
    for item in entry["cases"]:
        c = item["case"]
        got = qa(
            question=c["question"],
            context=c["context"],
            max_seq_len=MAX_LENGTH,
            doc_stride=c["doc_stride"] or MAX_LENGTH // 2,
            max_answer_len=c["max_answer_length"] or 15,
            top_k=c["top_k"],
            handle_impossible_answer=c["allow_no_answer"],
        )
        got = got if isinstance(got, list) else [got]
        kept = []
        for a in got:
            if c["allow_no_answer"] and a["answer"] == "" and a["start"] == 0 and a["end"] == 0:
                break
            if a["score"] > 0:
                kept.append(a)
        want = item["answers"]
        total += 1
        spans = [(a["answer"], a["start"], a["end"]) for a in kept]
        same = spans == [(a["answer"], a["start"], a["end"]) for a in want] and all(
            math.isclose(a["score"], b["score"], rel_tol=1e-3)
            for a, b in zip(kept, want, strict=True)
        )
        if not same:
            bad += 1
            if bad <= 5:
                print("DIFF", name, c["question"][:30], kept, want)
print(f"transformers {transformers.__version__} pipeline: {total - bad}/{total} cases identical")
sys.exit(1 if bad else 0)
