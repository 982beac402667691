python -m vqalib sample-data --size smoke --root runs/sample     # 32 generated clips (runs/sample/clips) with ratings
python -m vqalib score runs/sample/clips --model tiny -o runs/scores/sample.csv
