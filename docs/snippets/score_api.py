from vqalib.inference.scorer import Scorer

run = Scorer("tiny", mode="fast").score("runs/sample/clips", "runs/scores/api.csv")
print(run.summary())  # listed / skipped (resumed) / scored / failed, and every failure with its error
print(run.rows.filter(like="_expected").describe())  # the expected score of each dimension
