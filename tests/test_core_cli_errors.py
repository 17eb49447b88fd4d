"""Command-line failures end in one line, exit 1, and leave nothing written."""
from __future__ import annotations

import json

import pytest

from replication.cli import _one_line, main


@pytest.fixture(scope="module")
def sim5(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim5")
    assert main(["simulate", "--out", str(out), "--seed", "2", "--n-annotators", "5", "--models", "4"]) == 0
    return out


def _bias(sim, *extra):
    return ["bias", "--annotations", str(sim / "annotations.csv"), "--correct", str(sim / "correct.parquet"),
            "--bootstrap", "20", *extra]


def test_unwritable_output_is_one_line_and_writes_nothing(sim5, tmp_path, capsys):
    weights = tmp_path / "w.csv"
    code = main(_bias(sim5, "--weights-out", str(weights), "--json", str(sim5 / "annotations.csv" / "out.json")))
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "is a file, not a folder" in err
    assert not weights.exists()
    assert main(_bias(sim5, "--json", str(tmp_path))) == 1  # a folder is no output file
    assert "it is a folder" in capsys.readouterr().err


def test_default_methods_leave_out_what_cannot_be_fitted(sim5, tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(_bias(sim5, "--json", str(out))) == 0
    payload = json.loads(out.read_text())
    assert set(payload["summary"]["adjusted_mean_gap"]) == {"naive", "jackknife"}
    assert set(payload["skipped_methods"]) == {"betabinomial", "npmle"}
    assert "5 annotators" in payload["skipped_methods"]["npmle"]
    # asked for by name, the same method is an error
    capsys.readouterr()
    assert main(_bias(sim5, "--methods", "naive,npmle", "--json", str(tmp_path / "c.json"))) == 1
    assert "n = 5 annotators" in capsys.readouterr().err
    assert not (tmp_path / "c.json").exists()


def test_missing_optional_package_names_the_extra():
    assert _one_line(ModuleNotFoundError("No module named 'torch'", name="torch")) == \
        'this needs the optional package \'torch\': pip install -e ".[eval]"'
    with pytest.raises(ModuleNotFoundError):  # a module of our own missing is a bug, not bad input
        _one_line(ModuleNotFoundError("No module named 'replication.nope'", name="replication.nope"))


def test_placebo_without_bootstrap(reference_dir, tmp_path):
    out = tmp_path / "p.json"
    code = main(["placebo", "--annotations", str(reference_dir / "real-reassessed-imagenet" / "real_votes_annotations.csv"),
                 "--correct", str(reference_dir / "imagenetv2" / "recht2019_correct_top1.parquet"),
                 "--methods", "naive", "--bootstrap", "0", "--seed", "1", "--json", str(out)])
    assert code == 0
    payload = json.loads(out.read_text())
    assert payload["placebo"]["coverage"] == {}
    assert payload["reference"] == payload["replication"] == "imagenet-val"  # contract: dataset ids
    assert payload["placebo"]["reference_half"] == "imagenet-val:placebo-reference"
    assert all(v["adjusted"]["naive"]["ci"] == [None, None] for v in payload["models"].values())


def _command_actions(parser=None, prefix=()):
    """(command words, action) for every option of every registered command,
    sub-commands included (``annotate plan``)."""
    import argparse

    from replication.cli import build_parser

    parser = build_parser() if parser is None else parser
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _command_actions(sub, (*prefix, name))
        elif prefix:
            out.append((prefix, action))
    return out


@pytest.mark.parametrize("flag,bad,what", [
    ("--seed", "-1", "must be >= 0, got -1"),
    ("--seed", "1.5", "expected an integer, got '1.5'"),
    ("--bootstrap", "-2", "must be >= 0, got -2"),
    ("--bootstrap", "1000000000", "must be <= 100,000"),
    ("--alpha", "1.5", "strictly between 0 and 1"),
])
def test_every_command_checks_seeds_replicates_and_levels_in_one_line(tmp_path, monkeypatch, capsys, flag, bad, what):
    """One mechanism (replication.cli.args) for every command that has the flag:
    the bad value ends in one line and exit 2 before any work, writing nothing."""
    from replication.cli import args as cli_args

    monkeypatch.chdir(tmp_path)
    commands = sorted({words for words, action in _command_actions() if flag in action.option_strings})
    assert commands, flag
    for words in commands:
        assert main([*words, flag, bad]) == 2, words
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith(f"replication {' '.join(words)}: error: argument {flag}: "), err
        assert what in err, err
    assert list(tmp_path.iterdir()) == []
    types = {action.type for _, action in _command_actions() if flag in action.option_strings}
    assert types == {{"--seed": cli_args.seed, "--bootstrap": cli_args.bootstrap_replicates,
                      "--alpha": cli_args.probability}[flag]}


def test_usage_errors_are_one_line_and_main_returns_the_status(capsys):
    assert main(["bias", "--json", "x.json"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("replication bias: error: the following arguments are required: --annotations, --correct "
                   "(see replication bias --help)")
    assert main(["bias", "--help"]) == 0 and "--weights-out" in capsys.readouterr().out


def test_probed_bad_inputs_end_in_one_line(sim5, tmp_path, monkeypatch, capsys):
    """What a probe of bad inputs found escaping as a traceback or passing silently."""
    cases = [
        (["simulate", "--out", str(tmp_path / "s"), "--classes", "100000"], "n_classes must be at most 1000"),
        (["simulate", "--out", str(tmp_path / "s"), "--shift", "1e308"], "shift must lie within +-10"),
        (_bias(sim5, "--methods", "", "--json", str(tmp_path / "b.json")), "unknown method(s) (none given)"),
        (_bias(sim5, "--json", str(sim5)), "it is a folder"),
    ]
    for argv, what in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and what in err, err
    # running out of memory is one line, not a numpy traceback
    from replication import simulate

    def too_big(*_args, **_kwargs):
        raise MemoryError("Unable to allocate 14.6 TiB for an array with shape (20000, 100000000)")

    monkeypatch.setattr(simulate, "simulate", too_big)
    assert main(["simulate", "--out", str(tmp_path / "s")]) == 1
    assert capsys.readouterr().err.strip() == ("replication simulate: error: not enough memory for this job: Unable to "
                                               "allocate 14.6 TiB for an array with shape (20000, 100000000)")
    assert list(tmp_path.iterdir()) == []


def test_many_models_reach_no_library_warning(tmp_path, capsys):
    """With hundreds of model columns, pandas warned that the correctness frame
    was built column by column ("highly fragmented"); nothing of the kind may
    reach the user."""
    sim = tmp_path / "sim"
    assert main(["simulate", "--out", str(sim), "--classes", "20", "--models", "300"]) == 0
    capsys.readouterr()
    assert main(["bias", "--annotations", str(sim / "annotations.csv"), "--correct", str(sim / "correct.parquet"),
                 "--methods", "naive,jackknife", "--bootstrap", "5", "--json", str(tmp_path / "b.json")]) == 0
    assert "warning" not in capsys.readouterr().err
