"""``sparsemax-nb figures OUTDIR`` (placeholder replaced below)."""


def add_arguments(parser):
    parser.add_argument("outdir")


def main(args):
    return 0
