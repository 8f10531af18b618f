"""One worker of the multi-worker test: python mw_worker.py SPEC RUNS OUT.npz [--set ...] (TF_CONFIG in the env)."""

import sys

import numpy as np

from graphspec.train.loop import train
from graphspec.train.settings import override_list

spec, runs, out, *sets = sys.argv[1:]
result = train(spec, runs_root=runs, run_name="mw", handle_signals=False,
               overrides=override_list(["train.strategy=multi-worker", *sets]))
np.savez(out, *result.model.get_weights())
print("run directory:", result.run_dir)
