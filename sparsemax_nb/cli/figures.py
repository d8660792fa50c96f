"""``sparsemax-nb figures OUTDIR``: PNG figures of sparsemax (matplotlib, Agg backend).

1. ``two_class.png``: ``p_1`` of softmax and sparsemax against ``t = z_1 - z_2``;
2. ``simplex.png``: both mappings on the 3-class simplex: where a grid of scores
   ``(z_1, z_2, 0)`` lands (sparsemax fills the edges and corners, softmax never reaches them);
   ``three_class.png``: each ``p_j(z_1, z_2, 0)`` as a heat map, with sparsemax's zero set;
3. ``losses.png``: the binary sparsemax loss against the logistic, hinge and modified Huber
   losses, as functions of the margin ``t``;
4. ``attention.png``: one sparsemax attention map, its exact zeros marked.
"""

FILES = ("two_class.png", "simplex.png", "three_class.png", "losses.png", "attention.png")


def add_arguments(parser):
    parser.add_argument("outdir", help="directory for the PNG files (created if missing)")
    parser.add_argument("--dpi", type=int, default=120, help="resolution (default 120)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the attention example")


def _two_class(plt, np, sm, path, dpi):
    t = np.linspace(-3, 3, 601)
    z = np.stack([t, np.zeros_like(t)], axis=1)
    soft = 1.0 / (1.0 + np.exp(-t))
    sparse = sm.sparsemax(z)[:, 0]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(t, soft, label="softmax", lw=2)
    ax.plot(t, sparse, label="sparsemax", lw=2)
    ax.set_xlabel("t = z1 - z2")
    ax.set_ylabel("p1")
    ax.set_title("Two classes: sparsemax saturates at |t| >= 1")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def _simplex_points(plt, np, sm, path, dpi):
    from .bench._numpy_ref import numpy_softmax

    g = np.linspace(-2.5, 2.5, 41)
    z1, z2 = np.meshgrid(g, g)
    Z = np.stack([z1.ravel(), z2.ravel(), np.zeros(z1.size)], axis=1)
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, (name, P) in zip(axes, (("softmax", numpy_softmax(Z)), ("sparsemax", sm.sparsemax(Z)))):
        xy = P @ corners  # barycentric coordinates to the plane
        ax.fill(*corners.T, facecolor="#f4f4f4", edgecolor="k", lw=1)
        ax.scatter(xy[:, 0], xy[:, 1], s=4, c=Z[:, 0] - Z[:, 1], cmap="coolwarm")
        on_face = np.mean(np.any(P == 0, axis=1))
        ax.set_title(f"{name}: {100 * on_face:.0f}% of points on an edge or corner")
        for c, lab in zip(corners, ("p1 = 1", "p2 = 1", "p3 = 1")):
            ax.annotate(lab, c, textcoords="offset points", xytext=(0, -12 if c[1] == 0 else 5), ha="center")
        ax.set_aspect("equal")
        ax.axis("off")
    fig.suptitle("Scores (z1, z2, 0) on a 41 x 41 grid in [-2.5, 2.5]^2 mapped onto the simplex")
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def _simplex(plt, np, sm, path, dpi):
    from .bench._numpy_ref import numpy_softmax

    g = np.linspace(-3, 3, 301)
    z1, z2 = np.meshgrid(g, g)
    Z = np.stack([z1, z2, np.zeros_like(z1)], axis=-1)
    fig, axes = plt.subplots(2, 3, figsize=(11, 6.6), gridspec_kw={"wspace": 0.35})
    for row, (name, P) in enumerate((("softmax", numpy_softmax(Z)), ("sparsemax", sm.sparsemax(Z)))):
        for j in range(3):
            ax = axes[row, j]
            im = ax.imshow(
                P[..., j], origin="lower", extent=(g[0], g[-1], g[0], g[-1]),
                vmin=0, vmax=1, cmap="viridis",
            )
            if name == "sparsemax":
                # the boundary of the support of p_j: exactly zero outside it
                ax.contour(z1, z2, P[..., j] > 0, levels=[0.5], colors="w", linewidths=1)
            ax.set_title(f"{name}: p{j + 1}(z1, z2, 0)")
            ax.set_xlabel("z1")
            ax.set_ylabel("z2")
        fig.colorbar(im, ax=axes[row].tolist(), shrink=0.85)
    fig.suptitle("Three classes, z3 = 0 (white lines: where sparsemax turns exactly 0)")
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def _losses(plt, np, sm, path, dpi):
    t = np.linspace(-3, 3, 601)
    z = np.stack([t, np.zeros_like(t)], axis=1)
    sparsemax_loss = sm.sparsemax_loss(z, np.zeros(t.size, np.int64))
    logistic = np.logaddexp(0, -t)  # softmax cross-entropy for two classes
    hinge = np.maximum(0, 1 - t)
    huber = np.where(t >= -1, np.maximum(0, 1 - t) ** 2, -4 * t)  # Zhang's modified Huber
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot(t, sparsemax_loss, lw=2.5, label="sparsemax loss")
    ax.plot(t, logistic, label="logistic (softmax)")
    ax.plot(t, hinge, label="hinge")
    ax.plot(t, huber / 4, "--", label="modified Huber / 4")
    ax.set_ylim(-0.1, 4)
    ax.set_xlabel("t = z1 - z2 (true class 1)")
    ax.set_ylabel("loss")
    ax.set_title("Binary losses (sparsemax = modified Huber / 4)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def _attention(plt, np, sm, path, dpi, seed):
    from ..apps.attention import sparsemax_attention

    rng = np.random.default_rng(seed)
    Lq, Lk, d = 12, 16, 8
    k = rng.normal(size=(Lk, d))
    # queries near a few keys, so each attends to a handful of them
    q = 0.6 * k[rng.integers(0, Lk, Lq)] + 0.6 * rng.normal(size=(Lq, d))
    _, w = sparsemax_attention(q, k, np.eye(Lk))
    fig, ax = plt.subplots(figsize=(6, 4.6))
    im = ax.imshow(np.ma.masked_equal(w, 0.0), cmap="magma_r", vmin=0, vmax=1)
    ax.set_facecolor("#dddddd")
    for i, j in zip(*np.nonzero(w == 0)):
        ax.text(j, i, "0", ha="center", va="center", fontsize=6, color="#888888")
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    zeros = int(np.sum(w == 0))
    ax.set_title(f"Sparsemax attention: {zeros} of {w.size} weights\nexactly 0 (grey cells)")
    fig.colorbar(im, ax=ax, shrink=0.85)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def main(args):
    import os
    import sys

    try:
        import matplotlib
    except ImportError:
        print("error: the figures need matplotlib: pip install 'sparsemax_nb[plot]'", file=sys.stderr)
        return 2
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    import sparsemax_nb as sm

    os.makedirs(args.outdir, exist_ok=True)
    paths = [os.path.join(args.outdir, f) for f in FILES]
    _two_class(plt, np, sm, paths[0], args.dpi)
    _simplex_points(plt, np, sm, paths[1], args.dpi)
    _simplex(plt, np, sm, paths[2], args.dpi)
    _losses(plt, np, sm, paths[3], args.dpi)
    _attention(plt, np, sm, paths[4], args.dpi, args.seed)
    for p in paths:
        print(p)
    return 0
