"""``layerwise download``: fetch a data set from its official location (``layerwise.data.download``)."""
from __future__ import annotations

import argparse

HELP = "fetch a data set from its official location"
DESCRIPTION = ("Download a data set with checksum checks; without network, the message says where to put the files "
               "by hand.")
EXAMPLES = """
    layerwise download cifar10 --root ~/data/cifar10
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="mnist, fashion_mnist, cifar10 or cifar100")
    p.add_argument("--root", required=True)


def run(args: argparse.Namespace) -> int:
    from ..data import download

    path = download(args.name, args.root)
    print(f"{args.name}: ready in {path}")
    return 0
