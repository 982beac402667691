# N processes (one per GPU; on the CPU, processes sharing the cores): rank r scores every N-th listed video into
# <output>.parts/rank<r>-of-<N>, rank 0 merges the parts into the one output, in the listed order; rerun to resume
torchrun --standalone --nproc_per_node 4 -m vqalib score /data/LSVQ/videos --model Qwen/Qwen2.5-VL-7B-Instruct -o runs/scores/lsvq_q7b.parquet
torchrun --standalone --nproc_per_node 4 -m vqalib benchmark LSVQ --split 1080p --videos /data/LSVQ/videos --model Qwen/Qwen2.5-VL-7B-Instruct
