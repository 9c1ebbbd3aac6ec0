import numpy as np
import pytest

from s2jax.data import packing


def test_first_fit_places_every_sequence_without_overlap():
  rng = np.random.default_rng(0)
  for _ in range(20):
    lengths = rng.integers(1, 30, size=rng.integers(1, 40))
    row, offset, n = packing.first_fit(lengths, 32)
    used = np.zeros((n, 32), int)
    for r, o, length in zip(row, offset, lengths):
      used[r, o:o + length] += 1
    assert used.max() == 1 and used.sum() == lengths.sum()
    # First fit never leaves two rows that could have been one.
    fill = used.sum(1)
    assert all(fill[i] + fill[j] > 32 for i in range(n) for j in range(i + 1, n))


def test_first_fit_hand_case():
  # Longest first: 6 opens row 0, 5 opens row 1, 4 opens row 2; 3 fits row 1, 2 row 0.
  row, offset, n = packing.first_fit([2, 5, 3, 6, 4], 8)
  assert n == 3
  assert row.tolist() == [0, 1, 1, 0, 2]
  assert offset.tolist() == [6, 0, 5, 0, 0]


def test_pack_positions_segments_and_rows_multiple():
  p = packing.pack([[7, 8, 9], [4, 5]], width=6, pad_id=0, rows_multiple=4)
  assert p.tokens.shape == (4, 6)
  assert p.tokens[0].tolist() == [7, 8, 9, 4, 5, 0]
  assert p.positions[0].tolist() == [0, 1, 2, 0, 1, 0]
  assert p.segments[0].tolist() == [1, 1, 1, 2, 2, 0]
  assert not p.segments[1:].any()


@pytest.mark.parametrize("lengths,why", [([3, 9], "more than the row width 8"),
                                         ([3, 0], "sequence 1 is empty")])
def test_first_fit_rejects_what_cannot_be_packed(lengths, why):
  with pytest.raises(ValueError, match=why):
    packing.first_fit(lengths, 8)
