"""Callables of the daily sales ETL example: extract a day's orders to CSV, aggregate them,
and load the totals into a SQLite table. Paths come from the DAG's templated kwargs."""

import csv
import json
import os
import random
import sqlite3


def extract_sales(ds, out_path, ti):
    """Write the day's orders (generated, reproducible per day) and push the row count."""
    rng = random.Random(ds)
    rows = [
        {"order_id": f"{ds}-{i}", "region": rng.choice(["eu", "us", "apac"]), "amount": round(rng.uniform(5, 500), 2)}
        for i in range(rng.randint(50, 150))
    ]
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["order_id", "region", "amount"])
        writer.writeheader()
        writer.writerows(rows)
    ti.xcom_push("row_count", len(rows))
    return out_path


def transform_sales(in_path, out_path):
    """Total and count per region."""
    totals = {}
    with open(in_path, newline="") as f:
        for row in csv.DictReader(f):
            region = totals.setdefault(row["region"], {"orders": 0, "amount": 0.0})
            region["orders"] += 1
            region["amount"] = round(region["amount"] + float(row["amount"]), 2)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(totals, f, sort_keys=True)
    return sorted(totals)


def load_sales(ds, in_path, db_path, expected_rows):
    """Replace the day's rows in the `daily_sales` table; check nothing was lost."""
    with open(in_path) as f:
        totals = json.load(f)
    loaded = sum(region["orders"] for region in totals.values())
    if loaded != int(expected_rows):
        raise ValueError(f"loaded {loaded} orders but extract counted {expected_rows}")
    db = sqlite3.connect(db_path)
    with db:
        db.execute("CREATE TABLE IF NOT EXISTS daily_sales (ds TEXT, region TEXT, orders INTEGER, amount REAL, PRIMARY KEY (ds, region))")
        db.execute("DELETE FROM daily_sales WHERE ds = ?", (ds,))
        db.executemany(
            "INSERT INTO daily_sales VALUES (?, ?, ?, ?)",
            [(ds, region, t["orders"], t["amount"]) for region, t in sorted(totals.items())],
        )
    db.close()
    return loaded
