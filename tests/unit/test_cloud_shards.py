"""How tests/realcloud/ci.sh shares the cloud tests between side-by-side sessions."""

import pytest

from tests.cloud_targets import shard_items


def test_the_shares_deal_every_test_once_in_turn() -> None:
    tests = [f"t{n}" for n in range(7)]
    shares = [shard_items(tests, f"{k}/3") for k in (1, 2, 3)]
    assert [mine for mine, _ in shares] == [["t0", "t3", "t6"], ["t1", "t4"], ["t2", "t5"]]
    for mine, rest in shares:
        assert sorted(mine + rest) == tests
    assert sorted(t for mine, _ in shares for t in mine) == tests


@pytest.mark.parametrize("shard", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_a_malformed_share_stops_the_session(shard: str) -> None:
    with pytest.raises(pytest.UsageError):
        shard_items(["t0"], shard)
