"""Suite-wide pytest configuration (top level: plugins must be declared here)."""

pytest_plugins = ["pytester"]
