# the standard cross-dataset protocol: LSVQ-test, LSVQ-1080p, KoNViD-1k, LIVE-VQC, YouTube-UGC from locked label files,
# one table with the published numbers beside ours (runs/benchmarks/suite/suite.md; every column in suite.csv)
python -m vqalib benchmark-suite --model runs/demo/checkpoints/aso --videos-root /data/vqa
# one benchmark's folder named on its own (the others from --videos-root, or NaN rows that say why)
python -m vqalib benchmark-suite --model runs/demo/checkpoints/aso --videos-root /data/vqa --videos KoNViD=/data/KoNViD_1k_videos
