"""`factory ARGS` with every suite name read as the test's own SUITE.yaml, on one process or under torchrun:

    python tests/eval_worker.py SUITE.yaml eval glue --model M --data D --out O
    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/eval_worker.py SUITE.yaml eval glue ...

(tests/test_tasks.py: the task types and SiFT give the same numbers on 2 processes as on 1; a test cannot
mock a suite inside a torchrun child, so this file does it there.)
"""

import sys
from unittest import mock

from factory.cli.main import cli
from factory.evaluate import suite as suites

if __name__ == "__main__":
    own, load = sys.argv[1], suites.load_suite
    with mock.patch("factory.evaluate.suite.load_suite", lambda name: load(own)):
        cli(sys.argv[2:], prog_name="factory")
