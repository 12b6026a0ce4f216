"""A full snapshot sent as parts (``shared.snapshot_parts``): what the control plane cuts, the
node puts back together byte for byte, answering nothing before the last part; parts that do
not make one snapshot refuse that push once and leave the next push unharmed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.pb import control_pb2
from shared.snapshot_parts import PartError, Reassembly, part_responses


def _parts(nonce: str, snapshot: bytes, size: int) -> list[control_pb2.SnapshotResponse]:
    return [
        control_pb2.SnapshotResponse.FromString(encoded)
        for encoded in part_responses(nonce, snapshot, size)
    ]


@given(snapshot=st.binary(min_size=1, max_size=5000), size=st.integers(1, 700))
def test_the_parts_of_a_snapshot_make_it_again_after_the_last(snapshot: bytes, size: int) -> None:
    parts = _parts("n-1", snapshot, size)
    assert len(parts) == -(-len(snapshot) // size)
    assert all(p.nonce == "n-1" and p.part.total_size == len(snapshot) for p in parts)
    reassembly = Reassembly()
    for response in parts[:-1]:
        assert reassembly.add(response.nonce, response.part) is None
    whole = reassembly.add(parts[-1].nonce, parts[-1].part)
    assert whole is not None
    assert bytes(whole) == snapshot


def test_pushes_follow_one_another_and_a_new_one_drops_an_unfinished_one() -> None:
    reassembly = Reassembly()
    first, second = _parts("n-1", b"a" * 10, 4), _parts("n-2", b"b" * 6, 4)
    assert reassembly.add("n-1", first[0].part) is None
    for response in second:
        whole = reassembly.add(response.nonce, response.part)
    assert whole is not None
    assert bytes(whole) == b"b" * 6
    with pytest.raises(PartError, match="not begun"):
        reassembly.add("n-1", first[1].part)  # the push it belonged to is gone


BROKEN = {
    "a gap": (lambda p: [p[0], p[2]], "after 4 of 12"),
    "a part twice": (lambda p: [p[0], p[1], p[1]], "after 8 of 12"),
    "another total": (
        lambda p: [p[0], control_pb2.SnapshotPart(total_size=13, offset=4, data=b"x" * 4)],
        "of 13 bytes after 4 of 12",
    ),
    "past the end": (
        lambda p: [p[0], control_pb2.SnapshotPart(total_size=12, offset=4, data=b"x" * 9)],
        "ending at 13 of 12",
    ),
    "an empty part": (
        lambda p: [p[0], control_pb2.SnapshotPart(total_size=12, offset=4)],
        "ending at 4 of 12",
    ),
    "nothing begun": (lambda p: [p[1]], "not begun"),
    "no size": (lambda p: [control_pb2.SnapshotPart(offset=0, data=b"x")], "of 0 bytes"),
    "too large": (
        lambda p: [control_pb2.SnapshotPart(total_size=1001, offset=0, data=b"x")],
        "of 1001 bytes",
    ),
}


@pytest.mark.parametrize(("broken", "reason"), BROKEN.values(), ids=BROKEN.keys())
def test_parts_that_do_not_make_one_snapshot_refuse_the_push_once(
    broken: object, reason: str
) -> None:
    parts = [r.part for r in _parts("n-1", bytes(range(12)), 4)]
    sequence = broken(parts)  # type: ignore[operator]
    reassembly = Reassembly(max_bytes=1000)
    for part in sequence[:-1]:
        assert reassembly.add("n-1", part) is None
    with pytest.raises(PartError, match=reason):
        reassembly.add("n-1", sequence[-1])
    # The rest of that push is ignored, not refused again; the next push goes through.
    assert all(reassembly.add("n-1", part) is None for part in parts[1:])
    again = [r.part for r in _parts("n-2", b"next", 3)]
    assert reassembly.add("n-2", again[0]) is None
    whole = reassembly.add("n-2", again[1])
    assert whole is not None
    assert bytes(whole) == b"next"
