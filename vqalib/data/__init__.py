"""Layer 2, data: the dataset schema, IO, aggregation and splits (:mod:`~vqalib.data.dataset`), the
validation rules, one checker per table (:mod:`~vqalib.data.validation`), the generated sample dataset
(:mod:`~vqalib.data.synth`), inter-annotator agreement (:mod:`~vqalib.data.agreement`) and the label files of public MOS benchmarks (:mod:`~vqalib.data.mos`).

The names of :mod:`vqalib.data.dataset` are re-exported here, so ``from vqalib.data import load_dataset`` keeps working.
"""

from vqalib.data.dataset import (  # noqa: F401
    VIDEO_COLUMNS, RATING_COLUMNS, RATIONALE_COLUMNS, PHASES, SPLITS, TABLES, HIGH_VARIANCE_STD, VQADataset,
    Issue, ValidationReport, DataValidationError, read_table, write_table, save_dataset, load_dataset,
    validate, aggregate, labels_wide, split_of, assign_splits, labelled_items, probe_video, map_scale,
    read_ratings_csv, from_ratings_csv, RatingsCsvOptions, label_coverage, label_targets, folder_schema,
    dataset_from_label_file, label_file_schema, MOS_RATER,
)
