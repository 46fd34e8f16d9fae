"""Time catalog ingestion on a synthetic generic catalog (default 500,000 rows).

    .venv/bin/python benchmarks/bench_ingest.py [--rows N] [--parquet] [--keep DIR]

Generates a realistic generic catalog CSV in a temporary folder (12 columns: sku, title,
category, description as ~300-character HTML, parent_sku, color, size, material, pattern,
price, qty, brand; about 45% of rows are variants of a parent product, each colour in several
sizes), then times ``read_catalog_table`` and ``parse_catalog`` and prints seconds per stage,
rows/s and peak RSS. It prints figures and asserts nothing about timing.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zimage_assets.domain.catalog import parse_catalog, read_catalog_table  # noqa: E402

CATEGORIES = [
    "Men > Tops > Hoodies & Sweatshirts", "Men > Tops > Tees", "Men > Bottoms > Pants",
    "Women > Tops > Jackets", "Women > Tops > Bras & Tanks", "Women > Bottoms > Shorts",
    "Gear > Bags", "Gear > Watches", "Home > Kitchen > Mugs", "Shoes > Running",
    "Accessories > Hats", "Kids > Tops > Tees",
]
NOUNS = ["Hoodie", "Tee", "Jacket", "Pant", "Short", "Tank", "Backpack", "Watch", "Mug",
         "Sneaker", "Cap", "Sweater", "Legging", "Duffle", "Bottle"]
ADJS = ["Chaz", "Teton", "Bruno", "Frankie", "Hollister", "Aether", "Orion", "Helios", "Nadia",
        "Juno", "Selene", "Kratos", "Ida", "Summit", "Breathe-Easy", "Stellar"]
COLORS = ["Black", "Gray", "Orange", "Blue", "Red", "Green", "White", "Purple", "Yellow"]
SIZES = ["XS", "S", "M", "L", "XL"]
MATERIALS = ["Cotton", "Organic Cotton", "Wool", "Fleece", "Nylon", "Polyester", "Leather",
             "Cotton|Polyester", "Stainless Steel"]
PATTERNS = ["Solid", "Striped", "Color-Blocked", "Graphic Print", "Heathered"]
FEATURES = ["Machine wash/dry.", "Drawstring-adjustable hood.", "Ribbed cuffs &amp; hem.",
            "Moisture-wicking fabric.", "Two front pockets.", "Reflective trim.",
            "Zippered main compartment.", "Water-resistant finish."]
HEADER = ["sku", "title", "category", "description", "parent_sku", "color", "size", "material",
          "pattern", "price", "qty", "brand"]


def _description(rng: random.Random, name: str, product_no: int) -> str:
    feats = rng.sample(FEATURES, 3)
    return (
        f"<p>The {name} (model {product_no}) keeps you comfortable on the move, whether you are "
        f"training, commuting or just heading out for the weekend.</p>\n<ul>"
        + "".join(f"<li>{f}</li>" for f in feats)
        + "</ul>"
    )


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """Write ``rows`` data rows (parents, their variants and simple products)."""
    rng = random.Random(seed)
    written = 0
    product_no = 0
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        while written < rows:
            product_no += 1
            name = f"{rng.choice(ADJS)} {rng.choice(NOUNS)} {product_no}"
            cat = rng.choice(CATEGORIES)
            desc = _description(rng, name, product_no)
            material = rng.choice(MATERIALS)
            pattern = rng.choice(PATTERNS)
            price = f"{rng.uniform(9, 120):.2f}"
            brand = rng.choice(["Luma", "Acme", "Northwind", "Contoso"])
            base = f"P{product_no:07d}"
            if rng.random() < 0.12:  # configurable product: a parent row, then colours x sizes
                w.writerow([base, name, cat, desc, "", "", "", material, pattern, price, "0",
                            brand])
                written += 1
                for color in rng.sample(COLORS, 2):
                    for size in SIZES[: rng.randint(2, 5)]:
                        if written >= rows:
                            break
                        w.writerow([f"{base}-{size}-{color}", f"{name}-{size}-{color}", "", "",
                                    base, color, size, "", "", price, str(rng.randint(0, 200)),
                                    brand])
                        written += 1
            else:
                w.writerow([base, name, cat, desc, "", rng.choice(COLORS), "", material, pattern,
                            price, str(rng.randint(0, 200)), brand])
                written += 1


def peak_rss_mib() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _time_database(url: str, parsed, source: str) -> None:
    """The SKU-table upsert: a first ingest (all new), the same file again (all unchanged),
    then the file with 2,000 SKUs edited (what a daily drop looks like against a big table)."""
    from resources.state_db import StateDB

    db = StateDB(url=url)
    records = parsed.skus.to_dict("records")
    rejects = parsed.rejects.to_dict("records")
    edited = [dict(r, content_hash=f"edited-{i}") if i % (len(records) // 2000 or 1) == 0 else r for i, r in enumerate(records)][: len(records)]
    for label, rows, ingest_id in (("first ingest", records, "bench-1"), ("same file again", records, "bench-2"), ("2,000 edited", edited, "bench-3")):
        t0 = time.perf_counter()
        counts = db.record_ingest(ingest_id=ingest_id, source=source, fmt=parsed.format, rows_read=parsed.rows_read, skus=rows, rejects=rejects)
        took = time.perf_counter() - t0
        print(f"database {label:<16}: {took:7.2f} s  {len(rows) / took:>10,.0f} rows/s  {counts}  peak RSS {peak_rss_mib():,.0f} MiB")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--parquet", action="store_true", help="also time the same table as Parquet")
    ap.add_argument("--keep", type=Path, default=None, help="write the CSV here and keep it")
    ap.add_argument("--db-url", default="", help="also time the SKU-table upsert here (default: a temp SQLite file)")
    ap.add_argument("--no-db", action="store_true", help="skip the database stage")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        csv_path = folder / f"catalog_{args.rows}.csv"
        t0 = time.perf_counter()
        generate(csv_path, args.rows)
        t_gen = time.perf_counter() - t0
        size_mib = csv_path.stat().st_size / 2**20
        print(f"generated {args.rows:,} rows, {size_mib:.1f} MiB CSV in {t_gen:.2f} s "
              f"(cpus: {os.cpu_count()}, python {sys.version.split()[0]})")
        rss_before = peak_rss_mib()

        t0 = time.perf_counter()
        raw = read_catalog_table(csv_path)
        t_read = time.perf_counter() - t0
        rss_read = peak_rss_mib()
        t0 = time.perf_counter()
        parsed = parse_catalog(raw)
        t_parse = time.perf_counter() - t0
        rss_parse = peak_rss_mib()
        total = t_read + t_parse
        print(f"format={parsed.format} rows_read={parsed.rows_read:,} "
              f"accepted={len(parsed.skus):,} rejected_rows={parsed.rows_rejected:,} "
              f"kinds={parsed.skus['kind'].value_counts().to_dict()}")
        print(f"read_catalog_table : {t_read:7.2f} s  {args.rows / t_read:>10,.0f} rows/s")
        print(f"parse_catalog      : {t_parse:7.2f} s  {args.rows / t_parse:>10,.0f} rows/s")
        print(f"total              : {total:7.2f} s  {args.rows / total:>10,.0f} rows/s")
        print(f"peak RSS: {rss_before:,.0f} MiB before reading, {rss_read:,.0f} MiB after "
              f"read, {rss_parse:,.0f} MiB after parse")

        if not args.no_db:
            _time_database(args.db_url or f"sqlite:///{folder}/bench.sqlite", parsed, str(csv_path))

        if args.parquet:
            pq_path = folder / f"catalog_{args.rows}.parquet"
            raw.to_parquet(pq_path, index=False)
            del raw, parsed
            t0 = time.perf_counter()
            raw_pq = read_catalog_table(pq_path)
            t_pq = time.perf_counter() - t0
            print(f"read_catalog_table (Parquet, {pq_path.stat().st_size / 2**20:.1f} MiB): "
                  f"{t_pq:.2f} s  {len(raw_pq) / t_pq:,.0f} rows/s; "
                  f"peak RSS {peak_rss_mib():,.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
