"""The cold phase's critical path: the upstream latencies a first /positions cannot avoid."""

from __future__ import annotations

import pytest

from bench.harness import critical_path_ms


@pytest.mark.parametrize(
    ("clients", "latencies"),
    [
        (100, 1),  # one page: read once, nothing to check it against
        (250, 3),  # page 1; pages 2 and 3; page 1 again
        (500, 3),  # page 1; pages 2 to 5; page 1 again
        (501, 4),  # page 1; pages 2 to 5; page 6; page 1 again
        (5_000, 15),  # page 1; 49 pages 4 at a time (13); page 1 again
        (50_000, 127),
    ],
)
def test_the_critical_path_counts_page_one_read_again_after_the_others(
    clients: int, latencies: int
) -> None:
    path = critical_path_ms(clients, 50.0, 4)
    assert path["finsync_ms"] == 50.0 * latencies
    assert path["critical_path_ms"] == max(50.0 * latencies, path["finqware_ms"])
