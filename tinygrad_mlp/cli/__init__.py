"""``python -m tinygrad_mlp COMMAND``: each command lives in its own module here."""
