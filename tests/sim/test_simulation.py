"""The simulation in `make test`: WPCDC_SIM_SEEDS seeds (default 1,000) over the machine's cores,
or WPCDC_SIM_SEED to replay one (`make sim SEED=n`). A failure names its seed and what the
committed topic got wrong; the seed replays exactly."""

from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import pytest

from tests.sim.simulate import RACE_SEEDS, Outcome, run_seed

SEEDS = int(os.environ.get("WPCDC_SIM_SEEDS", "1000"))
ONE = os.environ.get("WPCDC_SIM_SEED")
RACES = ("race1", "race2", "race3", "race4", "race5")
# The first seed that fails with each race fix reverted (1: 66, 2: 39, 3: 98, 4: 76, 5: 16; see
# docs/reliability.md). Seeds are only meaningful for one version of the simulation: when the
# models change, find them again (revert a fix, `make sim`) and update these and the docs.
REGRESSION_SEEDS: tuple[int, ...] = RACE_SEEDS


def _run_all(seeds: list[int]) -> list[Outcome]:
    workers = min(4, os.cpu_count() or 1)
    if workers == 1 or len(seeds) < 50:
        return [run_seed(s) for s in seeds]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(run_seed, seeds, chunksize=16))


def test_every_seed_folds_to_the_database() -> None:
    seeds = [int(ONE)] if ONE else sorted({*range(SEEDS), *REGRESSION_SEEDS})
    started = time.monotonic()
    outcomes = _run_all(seeds)
    elapsed = time.monotonic() - started
    totals: Counter[str] = Counter()
    for o in outcomes:
        totals.update(o.counters)
    failures = [f"seed {o.seed} (make sim SEED={o.seed}): " + "; ".join(o.violations[:5])
                for o in outcomes if not o.ok]
    backfills = sum(o.backfill for o in outcomes)
    print(f"\n{len(seeds)} seeds in {elapsed:.1f}s, {backfills} with a backfill, "
          f"{sum(o.transactions for o in outcomes)} transactions, counters {dict(sorted(totals.items()))}")
    assert not failures, f"{len(failures)} seeds failed:\n" + "\n".join(failures[:10])
    if ONE:
        return
    weak = [o.seed for o in outcomes if o.transactions < 50 or o.crashes < 1]
    assert not weak, f"seeds without 50 transactions and a crash: {weak[:10]}"
    assert backfills >= 0.3 * len(seeds), f"only {backfills} of {len(seeds)} seeds ran a backfill"
    if len(seeds) >= 1000:
        missing = [r for r in RACES if not any(k.startswith(r) for k in totals)]
        assert not missing, f"races never reached: {missing}"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_seed_replays_exactly(seed: int) -> None:
    a, b = run_seed(seed), run_seed(seed)
    assert (a.violations, a.counters, a.transactions, a.crashes) == (b.violations, b.counters, b.transactions,
                                                                     b.crashes)
