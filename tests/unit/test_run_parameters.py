"""Run parameters from the command line: ``run-notebooks -p NAME VALUE`` converts VALUE to the type
the notebook's parameters cell declares (issue 8, section 4), and the train CLI takes several
KEY=VALUE after one ``--set`` as the README writes it.

Before the fix, ``-p`` values were read as YAML: ``"Rate the video: quality first"`` became a dict
and ``no`` became ``False`` even for a ``str`` parameter; ``--set a=1 b=2`` was rejected by argparse.
"""

from __future__ import annotations

import papermill as pm
import pytest

from vqalib.notebook_runner import convert_parameter, declared_parameters, list_notebooks, main, typed_overrides
from vqalib.train.cli import main as train_main
from vqalib.train.common import load_config, parse_overrides

NB = {nb.stem: nb for nb in list_notebooks()}
#: a parameter of each declared type, and the notebook that declares it
WHERE = {"SET": "04_sft", "STRICT": "02_annotator_agreement", "STEPS": "06_aso", "EPS": "06_aso"}


def _typed(name, text):
    nb = NB[WHERE[name]]
    return typed_overrides([nb], {name: text})[nb.name]


def test_declared_types_come_from_the_parameters_cell():
    assert declared_parameters(NB["04_sft"])["SET"] == "str"
    assert declared_parameters(NB["02_annotator_agreement"])["STRICT"] == "bool"
    types = declared_parameters(NB["06_aso"])
    assert types["STEPS"] == "int" and types["EPS"] == "float"


@pytest.mark.parametrize("name, text, expected", [
    ("SET", "instruction='Rate the video: quality first'", "instruction='Rate the video: quality first'"),  # YAML: a dict
    ("SET", "no", "no"),  # YAML: False
    ("SET", "3", "3"),  # YAML: 3
    ("SET", "", ""),  # YAML: None
    ("SET", "[a, b]", "[a, b]"),  # YAML: a list
    ("STRICT", "no", False), ("STRICT", "Yes", True), ("STRICT", "0", False), ("STRICT", "TRUE", True),
    ("STEPS", "7", 7), ("EPS", "5e-5", 5e-5), ("EPS", "1", 1.0),
])
def test_values_take_the_declared_type(name, text, expected):
    got = _typed(name, text)[name]
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("name, text, match", [
    ("STRICT", "maybe", "STRICT.*bool.*true/false"),
    ("STRICT", "on", "STRICT.*bool"),  # only true/false/yes/no/1/0
    ("STEPS", "1.5", "STEPS.*int.*whole number"),
    ("STEPS", "many", "STEPS.*int"),
    ("EPS", "fast", "EPS.*float"),
])
def test_unconvertible_values_are_refused_naming_the_parameter(name, text, match):
    with pytest.raises(ValueError, match=match):
        _typed(name, text)


def test_typed_values_from_python_are_checked_too():
    assert convert_parameter("STEPS", 3, "int") == 3 and convert_parameter("LR", 3, "float") == 3.0
    with pytest.raises(ValueError, match="STEPS"):
        convert_parameter("STEPS", True, "int")  # a bool is not a step count
    with pytest.raises(ValueError, match="SET"):
        convert_parameter("SET", {"Rate the video": "quality first"}, "str")


def test_a_parameter_goes_only_to_the_notebooks_that_declare_it():
    chosen = [NB["03_aso_derivation"], NB["04_sft"]]
    out = typed_overrides(chosen, {"MODEL": "tiny", "SEED": "2"})
    assert out["04_sft.ipynb"] == {"MODEL": "tiny", "SEED": 2}
    assert out["03_aso_derivation.ipynb"] == {"SEED": 2}
    with pytest.raises(ValueError, match="MODELS.*no selected notebook declares"):
        typed_overrides(chosen, {"MODELS": "typo"})


def test_the_injected_cell_holds_the_typed_values(tmp_path):
    """What papermill writes into the executed notebook (its own parameterize step, no kernel)."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    params = typed_overrides([NB["04_sft"]], {"SET": "instruction='Rate the video: quality first'",
                                              "MODEL": "no"})["04_sft.ipynb"]
    nb = parameterize_notebook(load_notebook_node(str(NB["04_sft"])), params)
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.tags)
    assert 'SET = "instruction=\'Rate the video: quality first\'"' in injected.source
    assert 'MODEL = "no"' in injected.source
    params = typed_overrides([NB["02_annotator_agreement"]], {"STRICT": "no"})["02_annotator_agreement.ipynb"]
    nb = parameterize_notebook(load_notebook_node(str(NB["02_annotator_agreement"])), params)
    assert "STRICT = False" in next(c for c in nb.cells if "injected-parameters" in c.metadata.tags).source


def test_cli_refuses_a_bad_value_before_running_anything(tmp_path, capsys):
    rc = main(["--run-dir", str(tmp_path / "run"), "--only", "06", "-p", "STEPS", "many"])
    assert rc == 1
    assert "STEPS" in capsys.readouterr().err
    assert not (tmp_path / "run" / "notebooks" / "06_aso.ipynb").exists()


def test_help_notebook_lists_the_types_the_runner_uses():
    """The declared types are what ``papermill --help-notebook`` shows a user."""
    info = pm.inspect_notebook(str(NB["02_annotator_agreement"]))
    assert {k: v["inferred_type_name"] for k, v in info.items()} == declared_parameters(NB["02_annotator_agreement"])


# --------------------------------------------------------------------------- train CLI --set


def test_set_errors_name_the_item():
    with pytest.raises(ValueError, match="'lr'.*KEY=VALUE"):
        parse_overrides(["lr"])
    with pytest.raises(ValueError, match="'=5'.*KEY=VALUE"):
        parse_overrides(["=5"])
    with pytest.raises(ValueError, match="'lr' is given twice"):
        parse_overrides(["lr=1", "lr=2"])
    assert train_main(["sft", "--set", "max_steps=1", "bogus_key=3", "--print-config"]) == 2
    assert load_config("sft", None, ["data_dir=a=b"]).data_dir == "a=b"
