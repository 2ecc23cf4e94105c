"""Generate a built-in data set or convert a real one: `python -m modelzoo.data NAME ...`.

Examples:

    python -m modelzoo.data criteo --output_dir data/criteo --train_rows 3000000
    python -m modelzoo.data taobao --output_dir data/taobao --format csv
    python -m modelzoo.data movielens --data_location ../shared/data/movielens-latest-small \
        --output_dir data/movielens

Prints the meta (rows, positive rates, the hidden model's ceiling AUC).
"""

import argparse
import json
import os
import sys

from modelzoo.data import datasets


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m modelzoo.data",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=datasets.DATASETS)
    parser.add_argument("--output_dir", required=True, help="where the data set is written")
    parser.add_argument("--data_location", default=None,
                        help="real data sets: the directory of the downloaded files")
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--train_rows", type=int, default=1_000_000)
    parser.add_argument("--test_rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocab_scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    if args.dataset in datasets.REAL:
        if args.data_location is None or not os.path.isdir(args.data_location):
            parser.error(f"--data_location must be the directory of the {args.dataset} files, "
                         f"got {args.data_location!r}")
        meta = datasets.convert_real(args.dataset, args.data_location, args.output_dir,
                                     fmt=args.format)
    else:
        _, meta = datasets.prepare(args.dataset, args.output_dir, work_dir=args.output_dir,
                                   train_rows=args.train_rows, test_rows=args.test_rows,
                                   fmt=args.format, seed=args.seed,
                                   vocab_scale=args.vocab_scale)
    meta = dict(meta, schema=meta["schema"].to_json())
    json.dump(meta, sys.stdout, indent=2, sort_keys=True)
    print()
    return meta


if __name__ == "__main__":
    main()
