# the tiny preset of each family: random weights, the real config (shrunk), processor, tokenizer and chat template
python -m vqalib score runs/sample/clips --model tiny-qwen3-vl -o runs/scores/tiny_qwen3vl.csv
python -m vqalib score runs/sample/clips --model tiny-qwen3.5 -o runs/scores/tiny_qwen35.csv
# a real run on Qwen3-VL-8B-Instruct (LoRA, bf16, one GPU): the parameter set and the training configs
python -m vqalib run-notebooks --params qwen3vl8b_lora -p DATA_DIR /data/my_vqa --run-dir runs/real_qwen3vl
python -m vqalib train sft --config env/train_configs/sft_qwen3vl_8b_lora.yaml --set data_dir=/data/my_vqa
# any family by hub id or folder: the same configs with another model
python -m vqalib train sft --config env/train_configs/sft_7b_lora.yaml --set data_dir=/data/my_vqa model=Qwen/Qwen3.5-9B \
    output_dir=runs/qwen35/checkpoints/sft   # a folder of its own: the 7B configs' stages read runs/ultravqa
