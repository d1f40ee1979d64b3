import io

from pavflow.progress import progress


def test_bar_counts_and_finishes():
    buf = io.StringIO()
    assert list(progress(range(5), desc="steps", file=buf)) == list(range(5))
    assert "steps" in buf.getvalue() and "5/5" in buf.getvalue()


def test_log_file_gets_few_redraws():
    buf = io.StringIO()  # not a TTY, like a Snakemake log file
    for _ in progress(range(20_000), desc="rollouts", file=buf):
        pass
    text = buf.getvalue()
    assert text.count("\r") <= 3 and text.count("\n") <= 1, text[:500]
    assert "20000/20000" in text


def test_manual_updates():
    buf = io.StringIO()
    with progress(desc="batches", total=10, file=buf) as bar:
        for _ in range(4):
            bar.update(2)
    assert "8/10" in buf.getvalue()
