"""The ``sparsemax-nb`` command (also ``python -m sparsemax_nb``).

Each subcommand lives in its own module, imported only when that subcommand runs, which
exposes ``add_arguments(parser)`` and ``main(args) -> int``.
"""

import argparse
import importlib
import sys

# name: (module, one-line help)
SUBCOMMANDS = {
    "demo": ("sparsemax_nb.cli.demo", "softmax versus sparsemax, the loss and a speed check on built-in data"),
    "bench": ("sparsemax_nb.cli.bench.cpu", "every kernel timed against copyto, NumPy softmax/sparsemax and peers"),
    "multilabel": ("sparsemax_nb.cli.multilabel", "the paper's multi-label experiment: logistic, softmax and sparsemax (and entmax15) linear models"),
    "figures": ("sparsemax_nb.cli.figures", "PNG figures: sparsemax versus softmax, the losses, a sparse attention map"),
    "apply": ("sparsemax_nb.cli.apply", "sparsemax of the arrays in a .npy/.npz file or Zarr store, in bounded memory"),
}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="sparsemax-nb",
        description="Exact sparsemax, its Jacobian and its loss (Numba CPU and CUDA kernels).",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(importlib.import_module(args._module).main(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
