# resumable: rerun the same command and the videos already scored are skipped, failed ones tried again (their new row is appended)
python -m vqalib score runs/sample/clips --model tiny -o runs/scores/tiny_fast.csv
python -m vqalib score runs/sample/clips --model tiny --mode generate --max-new-tokens 32 -o runs/scores/tiny_gen.parquet
# a Table 2 row on a public benchmark: scores the videos present, SRCC / PLCC / logistic PLCC / KRCC with 95 % bootstrap CIs
python -m vqalib benchmark KoNViD --videos /data/KoNViD_1k_videos --model tiny --n-boot 200
