python -m vqalib run-notebooks --params qwen7b_lora -p DATA_DIR /data/my_vqa --run-dir runs/real
python -m vqalib train sft  --config env/train_configs/sft_7b_lora.yaml --set data_dir=/data/my_vqa
python -m vqalib train grpo --config env/train_configs/grpo_7b_lora.yaml --set data_dir=/data/my_vqa
python -m vqalib train aso  --config env/train_configs/aso_7b.yaml --set data_dir=/data/my_vqa finetune=lora lr=5e-5 grad_accum=32
mkdir -p runs/real   # one notebook with papermill itself (it does not create the output folder):
.venv/bin/papermill notebooks/04_sft.ipynb runs/real/04_sft.ipynb -f notebooks/params/04_sft.qwen7b_lora.yaml \
    -p DATA_DIR /data/my_vqa -p RUN_DIR runs/real
# several GPUs: accelerate runs the same trainers (DeepSpeed is an extra: uv sync --extra multigpu)
accelerate launch --config_file env/accelerate_ddp.yaml              -m vqalib train sft --config env/train_configs/sft_7b_lora.yaml
accelerate launch --config_file env/accelerate_deepspeed_zero2.yaml  -m vqalib train sft --config env/train_configs/sft_7b.yaml
accelerate launch --config_file env/accelerate_fsdp.yaml             -m vqalib train aso --config env/train_configs/aso_7b.yaml
