"""tune: the sweep platform on Ray Tune (the only Ray-aware code).

Ray token authentication is switched on here, before anything imports Ray (Ray reads the mode at
import): every process of a cluster needs ``RAY_AUTH_MODE=token`` and the same token.
"""

import os

os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
