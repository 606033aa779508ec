"""tune: the sweep platform on Ray Tune (the only Ray-aware code).

Ray token authentication is switched on here, before anything imports Ray (Ray reads the mode at
import): every process of a cluster needs ``RAY_AUTH_MODE=token`` and the same token.
"""

import os

os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
# Ray Tune's legacy console output honours verbose=0 (the new engine prints its banner regardless);
# slr prints its own concise progress and shows Ray's tables only with -v.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# Results without dev_wer are legitimate (train.eval_every > 1, a trial ending on a non-finite loss);
# the searcher and ASHA skip them, so Ray's strict check must not fail the trial.
os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
