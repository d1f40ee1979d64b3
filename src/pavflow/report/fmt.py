"""How the report prints numbers: fractions as percentages, tokens, paired differences in points,
compute-efficiency ratios with their bound; '–' for a missing number."""
import math


def ok(x) -> bool:
    """x is a number (not None, not nan)."""
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def num(x, digits: int = 3) -> str:
    return f"{x:.{digits}g}" if ok(x) else "–"


def range_str(lo, hi) -> str:
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def pct(x) -> str:
    return f"{100 * x:.1f}" if ok(x) else "–"


def acc_ci(acc, lo, hi) -> str:
    return f"{pct(acc)} [{pct(lo)}, {pct(hi)}]" if ok(acc) else "–"


def tok(x) -> str:
    return f"{x:,.0f}" if ok(x) else "–"


def fmt_diff(d, lo, hi) -> str:
    return f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]" if ok(d) else "–"


def fmt_eff(r, bound, lo=None, hi=None) -> str:
    if not ok(r):
        return "–"
    out = {"=": f"{r:.2f}×", ">": f"> {r:.2f}×", "<=": f"≤ {r:.2f}×"}[bound]
    if ok(lo) and ok(hi):
        out += f" [{lo:.2f}, {'∞' if math.isinf(hi) else f'{hi:.2f}'}]"
    return out
