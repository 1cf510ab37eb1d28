"""Benchmark: decoding export data files of the example spec (its json map column), in-process.

Measures, on the same generated file (`--lines` items of the example spec, the devstack's
generator) and in the same run, the median of `--repeat` timings of:
  - `decode_full_file` as shipped (maps read as Arrow structs, written column-wise);
  - the same with the per-value path for every map (the widened read turned off, as for a
    file whose maps are keyed by data): the path every map took before `typed_arrow`;
  - four such files decoded one after the other, and two at a time on two threads (what
    `parquet/day_builder` does).

    .venv/bin/python -m bench.decode --lines 200000 --repeat 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import sys
from concurrent.futures import ThreadPoolExecutor

import yaml

from migration_assets.devstack import synthetic
from migration_assets.dynamodb import shapes
from migration_assets.dynamodb.decode import decode_full_file
from migration_assets.dynamodb.export_writer import encode_full_line
from migration_assets.spec import EXAMPLE_SPEC, parse_spec

from .common import median_time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    spec = parse_spec(yaml.safe_load(EXAMPLE_SPEC.read_text()))
    batch = synthetic.generate_day(spec, dt.date(2025, 6, 1), args.lines, 7)
    data = gzip.compress(
        b"".join(encode_full_line(item) for item in synthetic.dynamodb_items(spec, batch)), 1
    )

    def decode() -> None:
        decoded = decode_full_file(data, "bench", spec)
        assert decoded.rows.num_rows == args.lines and not decoded.rejects

    decode()  # warm up (imports, first Arrow calls)
    column_wise = median_time(decode, args.repeat)
    limit, shapes.MAX_FIELDS = shapes.MAX_FIELDS, 0  # every file read plainly: maps per value
    try:
        per_value = median_time(decode, args.repeat)
    finally:
        shapes.MAX_FIELDS = limit
    one_by_one = median_time(lambda: [decode() for _ in range(4)], args.repeat)

    def two_at_a_time() -> None:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda _: decode(), range(4)))

    two_threads = median_time(two_at_a_time, args.repeat)
    print(f"{args.lines:,} lines of the example spec, median of {args.repeat}:")
    print(f"  column-wise maps: {column_wise:.2f} s ({args.lines / column_wise:,.0f} lines/s)")
    print(f"  per-value maps:   {per_value:.2f} s ({per_value / column_wise:.1f}x slower)")
    print(
        f"  4 files one by one {one_by_one:.2f} s, two at a time {two_threads:.2f} s "
        f"({one_by_one / two_threads:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
