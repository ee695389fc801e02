"""generate: --max-new-tokens is bounded; a prompt the tokenizer makes no tokens of says so;
eval: an --eval-tokens below one window says so."""

from types import SimpleNamespace

from tests.reliability.helpers import one_line_error


def test_max_new_tokens_is_bounded(tmp_path, capsys):
    argv = ["generate", str(tmp_path), "--max-new-tokens", "99999999999999999999999"]
    assert one_line_error(capsys, argv) == (
        "error: --max-new-tokens must be at most 1000000, got 99999999999999999999999 "
        "(a bound against a typo that would run for days; run generate again for more)\n"
    )


def test_a_prompt_without_tokens_names_the_tokenizer(tmp_path, capsys, monkeypatch):
    from tokenizers import Tokenizer, models

    import scalinglab.train.evaluate as evaluate

    Tokenizer(models.BPE(vocab={"a": 0, "b": 1}, merges=[])).save(str(tmp_path / "tokenizer.json"))
    cfg = SimpleNamespace(train=SimpleNamespace(data=str(tmp_path)),
                          model=SimpleNamespace(vocab_size=2))  # fmt: skip
    monkeypatch.setattr(evaluate, "load_trained", lambda run, device: (None, cfg, 0))
    assert one_line_error(capsys, ["generate", str(tmp_path), "--device", "cpu"]) == (
        "error: --prompt '\\n' makes no tokens: the run's bpe tokenizer has none for its "
        "characters; the default --prompt is a newline; give a --prompt of text it knows\n"
    )


def test_eval_tokens_below_one_window(tmp_path, capsys, monkeypatch):
    import scalinglab.train.evaluate as evaluate

    cfg = SimpleNamespace(model=SimpleNamespace(block_size=32))
    monkeypatch.setattr(evaluate, "load_trained", lambda run, device: (None, cfg, 0))
    argv = ["eval", str(tmp_path), "--eval-tokens", "1", "--device", "cpu"]
    assert one_line_error(capsys, argv) == (
        "error: --eval-tokens 1 is less than one window of the run's block_size 32; "
        "give at least 32, or 0 for the whole split\n"
    )


def test_generate_json_writes_the_prompt_as_given(tmp_path, capsys, monkeypatch):
    """--json wrote the prompt's tokens decoded as `prompt`: here 'ab' for the prompt 'a?b',
    whose '?' the tokenizer has no token for. `prompt` is the text given; `text` is what
    the model read and wrote."""
    import json

    from tokenizers import Tokenizer, models

    import scalinglab.train.evaluate as evaluate
    import scalinglab.train.generate as generate
    from scalinglab.cli import main

    Tokenizer(models.BPE(vocab={"a": 0, "b": 1}, merges=[])).save(str(tmp_path / "tokenizer.json"))
    cfg = SimpleNamespace(train=SimpleNamespace(data=str(tmp_path)),
                          model=SimpleNamespace(vocab_size=2))  # fmt: skip
    monkeypatch.setattr(evaluate, "load_trained", lambda run, device: (None, cfg, 0))
    monkeypatch.setattr(generate, "sample", lambda model, prompt, n, *a, **k: iter([1] * n))
    argv = ["generate", str(tmp_path), "--prompt", "a?b", "--json", "--max-new-tokens", "2"]
    assert main([*argv, "--device", "cpu"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["prompt"] == "a?b" and got["prompt_tokens"] == 2 and got["new_tokens"] == 2
    assert got["text"] == Tokenizer.from_file(str(tmp_path / "tokenizer.json")).decode([0, 1, 1, 1])
