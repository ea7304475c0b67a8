"""Training over several processes: launched with `accelerate launch` from the pipeline, or on every node of a
cluster with the commands and manifests written to the run folder."""
