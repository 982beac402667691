"""vqalib: the helper library behind the UltraVQA-ASO notebooks.

Analytic Score Optimization (ASO) for multi-dimension video quality assessment, with the data
layer, video sampling, a Qwen2.5-VL-family model wrapper, exact 9-level score distributions,
SFT / GRPO / ASO trainers and evaluation. Modules are imported on demand (``import vqalib.method.aso``)
so that ``import vqalib`` stays cheap.
"""

__version__ = "0.1.0"

import logging as _logging

# bitsandbytes' CPU backend warns at import that an optional 4-bit CPU kernel (fetched from a hub by
# the `kernels` package) is missing. vqalib never runs 4-bit on CPU (QLoRA raises a clear error
# without CUDA), so this one logger is quieted; every other bitsandbytes message is kept.
_logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(_logging.ERROR)

# ---------------------------------------------------------------------------------------------------
# Modules that moved when the package was regrouped into layers (CHANGELOG.md, 0.2.0). The old dotted
# paths still import, with a DeprecationWarning naming the new one; nothing is imported before use.
import importlib as _importlib
import importlib.abc as _abc
import importlib.util as _util
import sys as _sys

MOVED_MODULES: dict[str, tuple[str, ...]] = {
    "runs": ("core.runs",), "plots": ("eval.plots",), "train.distributed": ("core.distributed",),
    "levels": ("schema.levels",), "prompts": ("schema.prompts",),
    "aso": ("method.aso",), "train.grpo_math": ("method.grpo_math",), "scoring": ("method.distributions",),
    "synth": ("data.synth",), "agreement": ("data.agreement",), "mos": ("data.mos",),
    "models": ("model.loading", "model.tiny", "model.attention"), "tokenizer": ("model.tokenizer",),
    "pretrain": ("model.pretrain",), "generation": ("model.generation",), "inputs": ("model.inputs",),
    "metrics": ("eval.metrics",), "evaluation": ("eval.tables",), "predict": ("eval.predict",),
    "predictions": ("eval.predictions_file",),
    "train.report": ("report.training",), "train.compare": ("report.compare",), "stats": ("report.dataset_stats",),
    "bandit": ("teaching.bandit",), "widgets": ("teaching.widgets",),
}


class _MovedModule(_abc.MetaPathFinder, _abc.Loader):
    """``import vqalib.aso`` -> :mod:`vqalib.method.aso` (the same module object); an old module split in
    several (``vqalib.models``) becomes a namespace holding the public names of all of them."""

    def find_spec(self, fullname, path=None, target=None):
        old = fullname[len("vqalib."):] if fullname.startswith("vqalib.") else None
        return _util.spec_from_loader(fullname, self) if old in MOVED_MODULES else None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        import warnings

        targets = ["vqalib." + t for t in MOVED_MODULES[module.__name__[len("vqalib."):]]]
        warnings.warn(f"{module.__name__} moved to {' / '.join(targets)} (CHANGELOG.md); the old path will go",
                      DeprecationWarning, stacklevel=2)
        found = [_importlib.import_module(t) for t in targets]
        if len(found) == 1:
            _sys.modules[module.__name__] = found[0]
            return
        for m in found:
            module.__dict__.update({k: v for k, v in vars(m).items() if not k.startswith("__")})


_sys.meta_path.append(_MovedModule())
