"""``sparsemax-nb demo``: what sparsemax does, on built-in data, in a few seconds."""

import numpy as np


def add_arguments(parser):
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--no-speed", action="store_true", help="skip the speed comparison"
    )


def _row(label, values):
    return f"  {label:<10}" + " ".join(f"{v:7.4f}" for v in values)


def main(args):
    import sparsemax_nb as sm
    from sparsemax_nb.cli.bench._numpy_ref import numpy_softmax, numpy_sparsemax

    np.set_printoptions(precision=4, suppress=True)
    rng = np.random.default_rng(args.seed)

    print("1. softmax versus sparsemax: sparsemax gives exact zeros\n")
    rows = np.array(
        [
            [-2.0, 0.0, 0.5, 0.1, -1.0],
            [3.0, 1.0, 0.5, -0.5, 2.8],
            [0.0, 0.0, 0.0, 0.0, 0.0],
            [0.4, -np.inf, 0.2, 0.1, -np.inf],
        ]
    )
    for z in rows:
        p = sm.sparsemax(z)
        tau, k = sm.sparsemax_threshold(z)
        print(_row("z", z).replace("   -inf", "   -inf"))
        print(_row("softmax", numpy_softmax(z)))
        print(_row("sparsemax", p) + f"   tau = {tau:.4f}, support = {k}")
        print(f"  {'':<10}exact zeros: {int(np.sum(p == 0))} of {p.size}\n")

    print("2. the sparsemax loss on a small multi-label example\n")
    y = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 1, 0]])
    z = np.round(rng.normal(size=y.shape) + 1.5 * y, 2)
    q = sm.labels_to_proportions(y)
    loss, grad = sm.sparsemax_loss_and_grad(z, q)
    p = sm.sparsemax(z)
    for i in range(len(y)):
        print(f"  labels {y[i]}  scores {z[i]}")
        print(f"    q = {q[i]}  sparsemax = {p[i]}  predicted labels {(p[i] > 0).astype(int)}")
        print(f"    loss = {loss[i]:.4f}   gradient = {grad[i]}")
    print(f"  mean loss: {sm.sparsemax_loss(z, q, reduction='mean'):.4f}\n")

    if args.no_speed:
        return 0
    import numba

    from sparsemax_nb.cli.bench import _timing as _bench

    x = rng.standard_normal((4096, 1000)).astype(np.float32)
    out = np.empty_like(x)
    for method in ("sort", "select"):
        sm.sparsemax(x, out=out, method=method)  # compile, or load from the disk cache
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "none started (serial)"
    rounds = 7
    print(
        f"3. speed: {rounds} rounds, {numba.get_num_threads()} threads "
        f"(threading layer: {layer})\n"
    )
    # Every function and every reference runs once in each round, and a figure is the median
    # over rounds of a ratio of two times *from the same round* (as ``sparsemax-nb bench``
    # does): load drift on a shared machine cancels, and a reference against itself is 1.
    fns = {
        "select": lambda: sm.sparsemax(x, out=out, method="select"),
        "sort": lambda: sm.sparsemax(x, out=out, method="sort"),
        "softmax": lambda: numpy_softmax(x),
        "numpy_sparsemax": lambda: numpy_sparsemax(x),
        "copyto": lambda: np.copyto(out, x),
    }
    times = _bench._time_rounds(fns, 1, rounds)
    print("  (4096, 1000) float32: median over rounds of same-round time ratios (lower is faster)")
    print(f"  {'':<28}{'/ copyto':>10}{'/ softmax':>11}{'/ NumPy sort':>14}")
    for name, key in [
        ("sparsemax_nb method=select", "select"),
        ("sparsemax_nb method=sort", "sort"),
        ("NumPy softmax", "softmax"),
        ("NumPy sort-based sparsemax", "numpy_sparsemax"),
    ]:
        r_copy, r_soft, r_np = (
            _bench._median_ratio(times[key], times[ref])
            for ref in ("copyto", "softmax", "numpy_sparsemax")
        )
        print(f"  {name:<28}{r_copy:10.2f}{r_soft:11.2f}{r_np:14.3f}")
    err = np.max(np.abs(sm.sparsemax(x).astype(np.float64) - numpy_sparsemax(x.astype(np.float64))))
    print(f"\n  max |difference| from the NumPy float64 reference: {err:.1e}")
    return 0
