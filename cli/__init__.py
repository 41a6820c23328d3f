"""The `labelgate` command: the top layer, which may import every other (server, models, bench, client)."""
