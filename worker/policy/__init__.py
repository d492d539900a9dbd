"""The shop's policy: typed settings loaded from TOML, the seven guards, and the engine."""
