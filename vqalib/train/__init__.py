"""SFT, GRPO and ASO trainers (small ``transformers.Trainer`` subclasses with video batches).

``train_sft(cfg)``, ``train_grpo(cfg)``, ``train_aso(cfg)`` take a config from
:func:`vqalib.train.common.load_config`; ``python -m vqalib train STAGE --config FILE`` calls them.
Submodules are imported on demand.
"""
