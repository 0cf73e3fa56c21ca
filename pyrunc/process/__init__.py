"""Birth of a container process: the runtime (parent) side and the init (child) side."""
