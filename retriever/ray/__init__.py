"""Ray (the ``[ray]`` extra, imported on use): the cluster connection, encoding on Ray Data, and the
engine's parts as Ray Serve deployments."""
