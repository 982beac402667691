python -m vqalib sample-data --size smoke --schema int10 --root runs/sample_int10   # 32 clips rated on 3 dimensions, integers 1-10
python -m vqalib train sft --config env/train_configs/sft_tiny.yaml --set data_dir=runs/sample_int10 output_dir=runs/int10/sft
python -m vqalib train aso --config env/train_configs/aso_tiny.yaml --set data_dir=runs/sample_int10 init_from=runs/int10/sft output_dir=runs/int10/aso
python -m vqalib train grpo --config env/train_configs/grpo_tiny.yaml --set data_dir=runs/sample_int10 init_from=runs/int10/sft output_dir=runs/int10/grpo
python -m vqalib score runs/sample_int10/clips --model runs/int10/aso -o runs/scores/int10.csv
