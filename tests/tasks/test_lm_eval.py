"""lm-evaluation-harness agrees with `scalinglab eval --tasks`: the Hugging Face export of
a tiny run, scored by lm-eval on local task definitions (YAML + the same JSONL, no
network), gives the same log-likelihood for every choice and the same acc and acc_norm."""

import json
from pathlib import Path

import pytest

from scalinglab.data.tokenizers import ByteTokenizer
from scalinglab.export.hf import export_hf
from scalinglab.tasks.format import read_task
from scalinglab.tasks.run import evaluate_run
from scalinglab.tasks.score import encode_pair, loglikelihoods
from scalinglab.train.evaluate import load_trained
from tests.export.runs import trained_runs

pytest.importorskip("transformers", reason="the [export] extra (transformers) is not installed")
lm_eval = pytest.importorskip("lm_eval", reason="the [lm-eval] extra is not installed")
pytest.importorskip("accelerate", reason="the [lm-eval] extra (lm-eval[hf]) is not installed")


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "tasks"
YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {path}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{gold}}}}"
target_delimiter: ""
metric_list:
  - metric: acc
  - metric: acc_norm
"""


def task_files(tmp: Path) -> dict[str, Path]:
    fox = tmp / "fox.jsonl"
    items = [
        {"context": "a quick brown", "choices": [" cat", " fox", " dog"], "gold": 1},
        {"context": "jumps over the", "choices": [" lazy", " quick"], "gold": 0},
        {"context": "the lazy", "choices": [" fox", " dog", " cat"], "gold": 1},
        {"context": "over the lazy dog. a quick ", "choices": ["brown", "green"], "gold": 0},
    ]
    fox.write_text("".join(json.dumps(i) + "\n" for i in items))
    return {"fox": fox, "qa": EXAMPLES / "qa.jsonl", "sentiment": EXAMPLES / "sentiment.jsonl"}


@pytest.mark.slow
def test_lm_eval_scores_the_export_as_scalinglab_eval_does(tmp_path, monkeypatch):
    for var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))  # no cache outside the test
    run = trained_runs(tmp_path, gpt={"pos": "learned"})["gpt"]
    export_hf(run, tmp_path / "hf")
    files = task_files(tmp_path)
    yamls = tmp_path / "yaml"
    yamls.mkdir()
    for name, path in files.items():
        (yamls / f"sl_{name}.yaml").write_text(YAML.format(name=f"sl_{name}", path=path))

    from lm_eval.tasks import TaskManager

    res = lm_eval.simple_evaluate(
        model="hf",
        # a byte-level tokenizer has no BOS/EOS token: the prefix (unused: no context is
        # empty) is named so that lm-eval does not look for one
        model_args=f"pretrained={tmp_path / 'hf'},dtype=float32,prefix_token_id=0",
        tasks=[f"sl_{n}" for n in files],
        task_manager=TaskManager(include_path=str(yamls)),
        device="cpu",
        batch_size=4,
        log_samples=True,
    )
    ours = {r["task"]: r for r in evaluate_run(run, [read_task(p) for p in files.values()])}
    model, cfg, _ = load_trained(run)
    for name, path in files.items():
        theirs = res["results"][f"sl_{name}"]
        assert theirs["acc,none"] == ours[name]["acc"], name
        assert theirs["acc_norm,none"] == ours[name]["acc_norm"], name
        task = read_task(path)
        for sample in res["samples"][f"sl_{name}"]:
            it = task.items[sample["doc_id"]]
            pairs = [encode_pair(ByteTokenizer(), it.context, c) for c in it.choices]
            mine = loglikelihoods(model, pairs, cfg.model.block_size)
            lls = [float(r[0]) for r in sample["filtered_resps"]]
            assert lls == pytest.approx(list(mine), abs=1e-4), (name, sample["doc_id"])
    assert ours["fox"]["acc"] == 1.0  # the run knows its sentence: the agreement is not on noise
