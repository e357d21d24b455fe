"""Writes transactions.csv: 1,500 card transactions, about 4% of them fraud (seeded, so the
file is the same on every run). Fraud is likelier far from home, at night, without the card,
for large amounts and in a few kinds of shop; no single column gives it away.

    python examples/fraud/make_data.py
"""

import csv
from pathlib import Path

import numpy as np

ROWS = 1500
KINDS = ["grocery", "fuel", "travel", "electronics", "restaurant", "online"]


def main() -> None:
    rng = np.random.default_rng(7)
    amount = np.round(rng.lognormal(3.5, 1.0, ROWS), 2)
    hour = rng.integers(0, 24, ROWS)
    distance = np.round(rng.exponential(12.0, ROWS), 1)
    card_present = rng.random(ROWS) < 0.7
    kind = rng.choice(KINDS, ROWS, p=[0.3, 0.15, 0.1, 0.1, 0.2, 0.15])
    previous = rng.poisson(20, ROWS)
    risk = (
        -6.3
        + 0.9 * np.log1p(distance)
        + 1.2 * ((hour < 6) | (hour > 22))
        + 1.3 * ~card_present
        + 0.5 * np.log1p(amount / 50)
        + 1.0 * np.isin(kind, ["electronics", "online"])
        - 0.03 * previous
    )
    fraud = rng.random(ROWS) < 1 / (1 + np.exp(-risk))
    path = Path(__file__).parent / "transactions.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "transaction_id",
                "amount",
                "hour",
                "distance_from_home_km",
                "card_present",
                "merchant_kind",
                "previous_transactions",
                "fraud",
            ]
        )
        for i in range(ROWS):
            writer.writerow(
                [
                    f"T{i:05d}",
                    amount[i],
                    hour[i],
                    distance[i],
                    "yes" if card_present[i] else "no",
                    kind[i],
                    previous[i],
                    "yes" if fraud[i] else "no",
                ]
            )
    print(f"wrote {path}: {ROWS} rows, {fraud.mean():.1%} fraud")


if __name__ == "__main__":
    main()
