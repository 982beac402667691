python -m vqalib train sft --config env/train_configs/sft_tiny.yaml --set data_dir=runs/sample output_dir=runs/mine/sft
python -m vqalib train aso --config env/train_configs/aso_tiny.yaml --set data_dir=runs/sample init_from=runs/mine/sft output_dir=runs/mine/aso
python -m vqalib score runs/sample/clips --model runs/mine/aso -o runs/scores/mine.csv
python -m vqalib run-notebooks -p DATA_DIR runs/sample --run-dir runs/mine_notebooks   # or: every notebook on it
