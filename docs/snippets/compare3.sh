python -m vqalib run-notebooks --only 04,05,06,07 --run-dir runs/compare3 -p SEEDS 3 -p BUDGET_S 40 -p EVAL_EVERY_S 10 -p CURVE_LIMIT 0
