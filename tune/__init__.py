"""tune: the sweep platform on Ray Tune (the only Ray-aware code)."""
