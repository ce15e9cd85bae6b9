"""bench.timing: the wall, CPU and peak-memory figures every benchmark takes."""

import sys

from bench.timing import peak_rss_mib, run_timed, timed

BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"


def test_a_child_process_is_timed_from_outside():
    done, t = run_timed([sys.executable, "-c", BUSY], capture_output=True)
    assert done.returncode == 0
    assert t.children_cpu_s >= 0.3 and t.wall_s >= t.children_cpu_s * 0.5  # the child's own work, start-up included
    assert t.cpu_s < 0.3  # this process only waited


def test_this_process_cpu_and_wall():
    with timed() as t:
        exec(BUSY)
    assert t.cpu_s >= 0.3 and t.wall_s >= 0.3 and t.children_cpu_s == 0


def test_the_figures_are_there_when_the_block_raises():
    try:
        with timed() as t:
            raise ValueError
    except ValueError:
        pass
    assert t.wall_s > 0


def test_peak_rss_is_this_process_in_mib():
    assert 10 < peak_rss_mib() < 1 << 20
