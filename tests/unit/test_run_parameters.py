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


def test_declared_types_come_from_the_parameters_cell():
    types = declared_parameters(NB["04_sft"])
    assert types["INSTRUCTION"] == "str" and types["AUGMENT"] == "bool"
    assert types["STEPS"] == "int" and types["LR"] == "float"


@pytest.mark.parametrize("name, text, expected", [
    ("INSTRUCTION", "Rate the video: quality first", "Rate the video: quality first"),  # YAML: a dict
    ("INSTRUCTION", "no", "no"),  # YAML: False
    ("INSTRUCTION", "3", "3"),  # YAML: 3
    ("INSTRUCTION", "", ""),  # YAML: None
    ("INSTRUCTION", "[a, b]", "[a, b]"),  # YAML: a list
    ("AUGMENT", "no", False), ("AUGMENT", "Yes", True), ("AUGMENT", "0", False), ("AUGMENT", "TRUE", True),
    ("STEPS", "7", 7), ("LR", "5e-5", 5e-5), ("LR", "1", 1.0),
])
def test_values_take_the_declared_type(name, text, expected):
    got = typed_overrides([NB["04_sft"]], {name: text})["04_sft.ipynb"][name]
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("name, text, match", [
    ("AUGMENT", "maybe", "AUGMENT.*bool.*true/false"),
    ("AUGMENT", "on", "AUGMENT.*bool"),  # only true/false/yes/no/1/0
    ("STEPS", "1.5", "STEPS.*int.*whole number"),
    ("STEPS", "many", "STEPS.*int"),
    ("LR", "fast", "LR.*float"),
])
def test_unconvertible_values_are_refused_naming_the_parameter(name, text, match):
    with pytest.raises(ValueError, match=match):
        typed_overrides([NB["04_sft"]], {name: text})


def test_typed_values_from_python_are_checked_too():
    assert convert_parameter("STEPS", 3, "int") == 3 and convert_parameter("LR", 3, "float") == 3.0
    with pytest.raises(ValueError, match="STEPS"):
        convert_parameter("STEPS", True, "int")  # a bool is not a step count
    with pytest.raises(ValueError, match="INSTRUCTION"):
        convert_parameter("INSTRUCTION", {"Rate the video": "quality first"}, "str")


def test_a_parameter_goes_only_to_the_notebooks_that_declare_it():
    chosen = [NB["03_aso_derivation"], NB["04_sft"]]
    out = typed_overrides(chosen, {"INSTRUCTION": "Rate it.", "SEED": "2"})
    assert out["04_sft.ipynb"] == {"INSTRUCTION": "Rate it.", "SEED": 2}
    assert out["03_aso_derivation.ipynb"] == {"SEED": 2}
    with pytest.raises(ValueError, match="INSTRUCTIONS.*no selected notebook declares"):
        typed_overrides(chosen, {"INSTRUCTIONS": "typo"})


def test_the_injected_cell_holds_the_typed_values(tmp_path):
    """What papermill writes into the executed notebook (its own parameterize step, no kernel)."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    params = typed_overrides([NB["04_sft"]], {"INSTRUCTION": "Rate the video: quality first", "AUGMENT": "no",
                                              "RATIONALE": "no"})["04_sft.ipynb"]
    nb = parameterize_notebook(load_notebook_node(str(NB["04_sft"])), params)
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.tags)
    assert 'INSTRUCTION = "Rate the video: quality first"' in injected.source
    assert 'RATIONALE = "no"' in injected.source and "AUGMENT = False" in injected.source


def test_cli_refuses_a_bad_value_before_running_anything(tmp_path, capsys):
    rc = main(["--run-dir", str(tmp_path / "run"), "--only", "04", "-p", "STEPS", "many"])
    assert rc == 1
    assert "STEPS" in capsys.readouterr().err
    assert not (tmp_path / "run" / "notebooks" / "04_sft.ipynb").exists()


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
