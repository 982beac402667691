"""vqalib.core.distributed in one process (the multi-process behaviour: tests/system/test_multiprocess.py)."""

import pytest

from vqalib.core.distributed import gather_dict, is_main_process, num_processes, process_index, shard


def test_one_process_is_the_main_one_and_owns_everything():
    assert (num_processes(), process_index(), is_main_process()) == (1, 0, True)
    assert shard(["a", "b", "c"]) == ["a", "b", "c"]
    assert gather_dict({"a": 1}) == {"a": 1}


def test_shards_cover_every_item_once():
    items = list(range(11))
    parts = [shard(items, r, 4) for r in range(4)]
    assert sorted(i for p in parts for i in p) == items
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_rank_outside_the_world_raises():
    with pytest.raises(ValueError, match="rank 2 is not in 0..1"):
        shard([1, 2, 3], 2, 2)
