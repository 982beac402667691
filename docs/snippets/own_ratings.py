from vqalib.data.dataset import from_ratings_csv, save_dataset

ds = from_ratings_csv("my_scores.csv", video_col="clip", column_pattern=r"(?P<rater>r\d+)_(?P<dimension>\w+)",
                      dimension_map={"sharpness": "clarity_quality"}, scale=(0, 100),
                      video_dir="/data/my_videos", path_template="{video}.mp4")
save_dataset(ds, "/data/my_vqa")  # then DATA_DIR=/data/my_vqa (a notebook) or data_dir=/data/my_vqa (a config)
